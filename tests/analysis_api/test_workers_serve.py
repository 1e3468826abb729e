"""``pystrument serve --workers 2`` as a real process tree: two workers on one port, one migration, each analysis
job run once, every span stored."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

BIN = Path(sys.executable).parent


def _children(pid: int) -> list[int]:
    """Child processes of ``pid`` (from /proc: no psutil in the test dependencies)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("PPid:") and int(line.split()[1]) == pid:
                found.append(int(status.parent.name))
    return found


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _body(i: int) -> dict[str, Any]:
    now = time.time_ns() - 10_000_000_000
    trace, root = f"{0xBEEF00 + i:032x}", f"{i * 4 + 1:016x}"

    def attr(k: str, v: Any) -> dict[str, Any]:
        return {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}

    spans = [
        {
            "traceId": trace, "spanId": root, "name": "GET /orders", "kind": 2,
            "startTimeUnixNano": str(now), "endTimeUnixNano": str(now + 50_000_000),
            "attributes": [attr("http.request.method", "GET"), attr("http.route", "/orders"),
                           attr("http.response.status_code", 200)],
        },
    ] + [
        {
            "traceId": trace, "spanId": f"{i * 4 + 2 + q:016x}", "parentSpanId": root, "name": "SELECT order",
            "kind": 3, "startTimeUnixNano": str(now + 1_000_000 + q * 5_000_000),
            "endTimeUnixNano": str(now + 4_000_000 + q * 5_000_000),
            "attributes": [attr("db.system", "postgresql"), attr("db.statement", "SELECT * FROM orders WHERE id = %s")],
        }
        for q in range(2)
    ]  # fmt: skip
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [attr("service.name", "orders")]},
                "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}],
            }
        ]
    }


def test_two_workers_share_the_port_and_the_database(database_url: str, tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSTRUMENT_", "OTEL_"))}
    env.update(PYSTRUMENT_DATABASE_URL=database_url, PYSTRUMENT_RETENTION_DAYS="0")
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "pystrument"), "serve", "--port", str(port), "--grpc-port", "0", "--workers", "2"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        workers: list[int] = []
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            workers = _children(proc.pid)
            try:
                healthy = httpx.get(url + "/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                healthy = False
            text = log.read_text(errors="replace")
            if healthy and len(workers) >= 2 and text.count("pystrument ready on") >= 2:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("two workers did not become ready: " + log.read_text(errors="replace")[-3000:])

        api = url + "/api/v1"
        key = httpx.post(api + "/projects", json={"name": "orders"}, timeout=30).json()["data"]["project_key"]

        def send(i: int) -> int:
            with httpx.Client(timeout=60) as client:  # a new connection each: the kernel spreads them
                return client.post(url + "/v1/traces", json=_body(i), headers={"x-project-key": key}).status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(send, range(60)))
        assert codes == [200] * 60
        listing = httpx.get(api + "/performance/records", params={"project_key": key, "size": 1}, timeout=30).json()
        assert listing["data"]["total"] == 60

        trace = f"{0xBEEF00:032x}"
        trigger = httpx.post(
            api + "/analysis/trigger", json={"trace_id": trace, "project_key": key, "ai_service": "builtin"}, timeout=30
        ).json()
        analysis_id = trigger["data"]["analysis_id"]
        result: dict[str, Any] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            result = httpx.get(api + f"/analysis/results/{analysis_id}", timeout=30).json()["data"]
            if result["status"] in ("completed", "failed"):
                break
            time.sleep(0.1)
        assert result["status"] == "completed" and result["attempts"] == 1, result
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    text = log.read_text(errors="replace")
    assert text.count("Running upgrade 0007 -> 0008") == 1, "the schema is migrated once, before the workers start"
    assert text.count("Started server process") == 2
    assert text.count("pystrument ready on") == 2
