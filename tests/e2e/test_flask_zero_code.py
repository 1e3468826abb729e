"""The foundation chain on real parts: Flask under ``opentelemetry-instrument`` → OTLP/HTTP →
``pystrument serve`` (embedded Postgres) → REST, with function spans nested under the request span."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e

APPS = Path(__file__).parent / "apps"
BIN = Path(sys.executable).parent


def wait_until(probe, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, get_free_port) -> Iterator[str]:
    """``pystrument serve`` as a real process on its own embedded Postgres."""
    port = get_free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSTRUMENT_", "OTEL_"))}
    data_dir = tmp_path_factory.mktemp("serve")
    proc = subprocess.Popen(
        [str(BIN / "pystrument"), "serve", "--port", str(port), "--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(url + "/health").status_code == 200, 90, "pystrument serve /health")
        yield url
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        if proc.returncode not in (0, -15):
            print(out)


@pytest.fixture(scope="module")
def project_key(server: str) -> str:
    r = httpx.post(server + "/api/v1/projects", json={"name": "shop", "description": "e2e", "framework": "flask"})
    assert r.status_code in (200, 201), r.text
    body = r.json()
    assert body["code"] == 0
    key: str = body["data"]["project_key"]
    assert key.startswith("proj_")
    return key


@pytest.fixture(scope="module")
def flask_app(server: str, project_key: str, get_free_port) -> Iterator[str]:
    port = get_free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSTRUMENT_", "OTEL_"))}
    env.update(
        OTEL_SERVICE_NAME="flask-shop",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_ENDPOINT=server,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_HEADERS=f"x-project-key={project_key}",
        OTEL_BSP_SCHEDULE_DELAY="200",
        PYSTRUMENT_PROFILE_RATE="1",
        PYSTRUMENT_SLOW_MS="0",
    )
    proc = subprocess.Popen(
        [str(BIN / "opentelemetry-instrument"), sys.executable, str(APPS / "flask_shop.py"), str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(url + "/hello").status_code == 200, 30, "the Flask app")
        yield url
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
        print(out)


def test_flask_request_arrives_with_function_spans(server: str, project_key: str, flask_app: str) -> None:
    r = httpx.get(flask_app + "/checkout")
    assert r.status_code == 200

    def checkout_record() -> dict | None:  # type: ignore[type-arg]
        resp = httpx.get(server + "/api/v1/performance/records", params={"project_key": project_key, "size": 50})
        records = resp.json()["data"]["records"]
        return next((rec for rec in records if rec["request_path"] == "/checkout"), None)

    record = wait_until(checkout_record, 30, "the /checkout record in the REST list")
    assert record["status_code"] == 200
    assert record["duration"] >= 0.06

    # Function spans are built off the request thread after the request span ends, so they may
    # arrive in a later OTLP batch than the record: poll until the deepest one is there.
    def spans_with_functions() -> list[dict] | None:  # type: ignore[type-arg]
        detail = httpx.get(
            server + f"/api/v1/performance/records/{record['trace_id']}", params={"project_key": project_key}
        ).json()
        assert detail["code"] == 0
        found = detail["data"]["spans"]
        return found if any(s["name"].endswith("load_items") for s in found) else None

    spans = wait_until(spans_with_functions, 30, "function spans of the /checkout trace")
    by_id = {s["span_id"]: s for s in spans}
    request = next(s for s in spans if s["kind"] == "SERVER")
    functions = {s["name"].rsplit(".", 1)[-1]: s for s in spans if s["attributes"].get("pystrument.synthetic")}
    assert {"checkout", "compute_totals", "load_items"} <= functions.keys(), sorted(functions)

    def ancestors(span: dict) -> list[str]:  # type: ignore[type-arg]
        chain = []
        while span.get("parent_span_id") in by_id:
            span = by_id[span["parent_span_id"]]
            chain.append(span["span_id"])
        return chain

    load_items = functions["load_items"]
    compute = functions["compute_totals"]
    assert compute["span_id"] in ancestors(load_items), "load_items should nest under compute_totals"
    assert request["span_id"] in ancestors(compute), "function spans should nest under the request span"
    assert load_items["attributes"]["code.function.name"].endswith("load_items")
    assert load_items["attributes"]["code.file.path"].endswith("flask_shop.py")
    # Reconstructed from samples: 30 ms of sleep, within a few sampling intervals.
    assert 0.015 <= load_items["duration"] <= 0.08
    assert compute["duration"] >= load_items["duration"]
