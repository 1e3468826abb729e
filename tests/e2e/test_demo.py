"""``pystrument demo`` as a user runs it: a real process that serves on an embedded Postgres, starts the
Flask and FastAPI sample apps under ``opentelemetry-instrument``, sends bounded traffic, keeps serving,
and stops everything on SIGTERM."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
READY_TIMEOUT = 150  # a first run initialises the embedded Postgres cluster, then 60 requests
REQUESTS = 60
# The demo runs as a user who protects the API with a token: its own REST calls must carry it.
TOKEN = "demo-test-" + os.urandom(12).hex()
AUTH = {"Authorization": f"Bearer {TOKEN}"}
APP_LINE = re.compile(
    r"^(?P<service>[\w-]+) \((?P<framework>\w+)\) on (?P<url>http://127\.0\.0\.1:\d+)\s+pid (?P<pid>\d+)"
)


@dataclass
class DemoRun:
    proc: subprocess.Popen[str]
    url: str
    data_dir: Path
    lines: list[str] = field(default_factory=list)
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    ready_after: float = 0.0

    def output(self) -> str:
        return "\n".join(self.lines)


def _read_lines(proc: subprocess.Popen[str], lines: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))


@pytest.fixture(scope="module")
def demo(get_free_port: Any) -> Iterator[DemoRun]:
    port = get_free_port()
    # Not under pytest's basetemp: each pytest session resets that tree to mode 0700, which locks out the
    # embedded Postgres (it runs as its own user when the tests run as root) if another session starts.
    data_dir = Path(tempfile.mkdtemp(prefix="pystrument-demo-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSTRUMENT_", "OTEL_"))}
    env["PYSTRUMENT_API_TOKEN"] = TOKEN
    stderr_log = data_dir / "demo-stderr.log"
    stderr_file = stderr_log.open("w")
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            str(BIN / "pystrument"),
            "demo",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--requests",
            str(REQUESTS),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr_file,
        text=True,
    )
    run = DemoRun(proc, f"http://127.0.0.1:{port}", data_dir)
    threading.Thread(target=_read_lines, args=(proc, run.lines), daemon=True).start()
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not any(line.startswith("pystrument demo is ready") for line in run.lines):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(stderr_log.read_text(errors="replace").splitlines()[-40:])
                pytest.fail(f"demo not ready (exit code {proc.poll()}):\n{run.output()}\n--- stderr ---\n{tail}")
            time.sleep(0.2)
        run.ready_after = time.monotonic() - started
        for line in run.lines:
            match = APP_LINE.match(line)
            if match:
                run.apps[match["service"]] = {"url": match["url"], "pid": int(match["pid"])}
        yield run
    finally:
        if proc.poll() is None:  # a failed test: still stop politely so the embedded Postgres stops too
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for app in run.apps.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(app["pid"], signal.SIGKILL)
        stderr_file.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def _get(url: str, **params: Any) -> Any:
    response = httpx.get(url, params=params, headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == 0, body
    return body["data"]


@pytest.fixture(scope="module")
def project_key(demo: DemoRun) -> str:
    projects = _get(demo.url + "/api/v1/projects", page=1, size=100)["projects"]
    matches = [p for p in projects if p["name"] == "demo-shop"]
    assert len(matches) == 1, projects
    key: str = matches[0]["project_key"]
    assert any(key in line for line in demo.lines), "the demo should print the project key it uses"
    return key


def _function_spans(demo: DemoRun, key: str, path_part: str, service: str) -> tuple[dict[str, Any], list[Any]]:
    """The detail of a recorded request whose path contains ``path_part``, and its function spans."""
    records = _get(demo.url + "/api/v1/performance/records", project_key=key, service=service, path=path_part, size=20)[
        "records"
    ]
    assert records, f"no {service} record for {path_part}"
    best: tuple[dict[str, Any], list[Any]] = ({}, [])
    for record in records[:5]:
        detail = _get(demo.url + f"/api/v1/performance/records/{record['trace_id']}", project_key=key)
        functions = [s for s in detail["spans"] if s["attributes"].get("pystrument.synthetic") is True]
        if len(functions) > len(best[1]):
            best = (detail, functions)
    return best


def test_demo_prints_the_dashboard_and_both_apps(demo: DemoRun) -> None:
    assert set(demo.apps) == {"shop-web", "catalog-api"}, demo.output()
    ready = next(line for line in demo.lines if line.startswith("pystrument demo is ready"))
    link = re.search(r"open (http://\S+)", ready)
    assert link and re.fullmatch(rf"{re.escape(demo.url)}/projects/\d+", link[1]), ready  # its id, not its key
    page = httpx.get(link[1])  # the UI's client-side route: the server answers with the app page
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    sent = next(line for line in demo.lines if line.startswith("sent "))
    assert sent.startswith(f"sent {REQUESTS} requests"), sent
    assert "; 0 failed" in sent, sent
    assert httpx.get(demo.url + "/health").status_code == 200
    assert httpx.get(demo.url + "/api/v1/projects").status_code == 401  # the token protects the API
    assert any("?token=" in line for line in demo.lines), "the demo should say how to open the UI with a token"
    for app in demo.apps.values():
        assert httpx.get(app["url"] + "/health").status_code == 200


def test_records_arrive_for_both_services(demo: DemoRun, project_key: str) -> None:
    totals = {
        service: _get(demo.url + "/api/v1/performance/records", project_key=project_key, service=service, size=1)[
            "total"
        ]
        for service in ("shop-web", "catalog-api")
    }
    assert totals["shop-web"] >= 10 and totals["catalog-api"] >= 10, totals
    # Readiness probes are excluded from tracing, so records are the demo's own traffic.
    assert sum(totals.values()) <= REQUESTS, totals
    assert sum(totals.values()) >= REQUESTS * 0.9, totals


def test_flask_records_hold_the_apps_own_functions(demo: DemoRun, project_key: str) -> None:
    detail, functions = _function_spans(demo, project_key, "/recommendations/", "shop-web")
    names = {s["attributes"].get("code.function.name", s["name"]).rsplit(".", 1)[-1] for s in functions}
    assert "compute_recommendations" in names, sorted(names)
    compute = next(s for s in functions if s["name"].endswith("compute_recommendations"))
    # The sample app runs from the data directory, outside site-packages, like a user's code.
    assert compute["attributes"]["code.file.path"] == str(demo.data_dir.resolve() / "demo" / "apps" / "shop_web.py")
    assert compute["attributes"].get("pystrument.library") is False
    assert detail["record"]["duration"] >= 0.02


def test_fastapi_records_hold_the_blocking_call_in_async_route(demo: DemoRun, project_key: str) -> None:
    _, functions = _function_spans(demo, project_key, "/inventory", "catalog-api")
    names = {s["name"].rsplit(".", 1)[-1] for s in functions}
    assert "query_warehouse_stock" in names, sorted(names)
    blocking = next(s for s in functions if s["name"].endswith("query_warehouse_stock"))
    assert blocking["duration"] >= 0.08, blocking  # the 120 ms time.sleep inside ``async def inventory``


def test_n_plus_one_queries_are_real_sqlite_spans(demo: DemoRun, project_key: str) -> None:
    records = _get(
        demo.url + "/api/v1/performance/records", project_key=project_key, service="shop-web", path="/orders", size=1
    )["records"]
    assert records
    detail = _get(demo.url + f"/api/v1/performance/records/{records[0]['trace_id']}", project_key=project_key)
    queries = [s for s in detail["spans"] if s["kind"] == "CLIENT" and "order_items" in str(s["attributes"])]
    assert len(queries) >= 25, "one order_items query per order: the N+1 the demo shows"
    # The builtin analysis names it first, with the loop's own work (the scan in fetchall) counted in, however much of
    # that the loaded demo machine shows as waiting rather than running.
    trace_id = records[0]["trace_id"]
    r = httpx.post(demo.url + "/api/v1/analysis/trigger", json={"trace_id": trace_id}, headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    analysis_id = r.json()["data"]["analysis_id"]
    deadline = time.monotonic() + 30
    while (result := _get(demo.url + f"/api/v1/analysis/results/{analysis_id}"))["status"] != "completed":
        assert time.monotonic() < deadline and result["status"] != "failed", result
        time.sleep(0.3)
    found = [(b["detector"], b["function"]) for b in result["bottleneck_analysis"]]
    assert found[0] == ("n_plus_one_query", "fetch_order_items"), found


def _analyze(demo: DemoRun, trace_id: str) -> dict[str, Any]:
    r = httpx.post(
        demo.url + "/api/v1/analysis/trigger",
        json={"trace_id": trace_id, "ai_service": "builtin"},
        headers=AUTH,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    analysis_id = r.json()["data"]["analysis_id"]
    deadline = time.monotonic() + 30
    while (result := _get(demo.url + f"/api/v1/analysis/results/{analysis_id}"))["status"] != "completed":
        assert time.monotonic() < deadline and result["status"] != "failed", result
        time.sleep(0.3)
    return result


def _records_since(demo: DemoRun, key: str, service: str, path: str, since: str, count: int) -> list[dict[str, Any]]:
    """This test's own requests to ``path`` (recorded after ``since``), once ``count`` of them have arrived."""
    deadline = time.monotonic() + 30
    while True:
        records = _get(demo.url + "/api/v1/performance/records", project_key=key, service=service, path=path, size=100)[
            "records"
        ]
        mine = [r for r in records if r["timestamp"] >= since and path in r["request_path"]]
        if len(mine) >= count or time.monotonic() > deadline:
            assert len(mine) >= count, (path, len(mine), count)
            return mine


def _utc_now() -> str:
    """Now as the API writes record timestamps (ISO 8601, microseconds, Z): comparable as strings."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"


def _held_up_catalog(demo: DemoRun, key: str, catalog: str) -> dict[str, Any]:
    """A /catalog request that awaited its price call (40 ms) while /inventory blocked the loop (120 ms), so it
    waited for the loop: the two are sent 15 ms apart on warm connections. On a loaded machine the victim can be
    done before /inventory arrives; the pair is then sent again, until the victim's request span says it waited."""
    with httpx.Client(timeout=30) as first, httpx.Client(timeout=30) as second:
        assert first.get(catalog + "/health").status_code == second.get(catalog + "/health").status_code == 200
        for _ in range(5):
            sent = _utc_now()
            victim = threading.Thread(target=first.get, args=(catalog + "/catalog?page=2&size=10",))
            victim.start()
            time.sleep(0.015)
            assert second.get(catalog + "/inventory?limit=5").status_code == 200
            victim.join()
            records = _records_since(demo, key, "catalog-api", "/catalog", sent, 1)
            (record,) = [r for r in records if r["timestamp"] >= sent]
            detail = _get(demo.url + f"/api/v1/performance/records/{record['trace_id']}", project_key=key)
            request = next(s for s in detail["spans"] if s["span_id"] == record["span_id"])
            if float(request["attributes"].get("pystrument.loop_wait_ms") or 0) >= 50:
                return record
    raise AssertionError("no /catalog request ran beside /inventory in 5 tries")


def _slowest(demo: DemoRun, key: str, records: list[dict[str, Any]]) -> str:
    """The slowest request whose time is not mostly a garbage-collection pause (a rule of its own), once its function
    spans have arrived: the SDK's span worker batches them while requests keep coming (half a second), so they may
    reach the server one export after their request span."""
    for record in sorted(records, key=lambda r: -r["duration"]):
        detail = _get(demo.url + f"/api/v1/performance/records/{record['trace_id']}", project_key=key)
        root = next(s for s in detail["spans"] if s["span_id"] == detail["record"]["span_id"])
        if float(root["attributes"].get("pystrument.gc.pause_ms", 0.0)) < 250 * record["duration"]:
            _wait_for_functions(demo, key, str(record["trace_id"]))
            return str(record["trace_id"])
    return str(records[0]["trace_id"])


def _wait_for_functions(demo: DemoRun, key: str, trace_id: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        detail = _get(demo.url + f"/api/v1/performance/records/{trace_id}", project_key=key)
        if any(s["attributes"].get("pystrument.synthetic") for s in detail["spans"]):
            return
        time.sleep(0.2)


def _burst(url: str, n: int) -> None:
    threads = [threading.Thread(target=httpx.get, args=(url,), kwargs={"timeout": 30}) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_builtin_analysis_names_every_planted_bottleneck(demo: DemoRun, project_key: str) -> None:
    """The slowest of each planted route's requests, analysed by the builtin rules: the top finding names the planted
    function with the right category. Requests are sent here, after the demo's own traffic, so each runs alone
    (or, for the event-loop case, beside exactly the request that blocks it)."""
    shop, catalog = demo.apps["shop-web"]["url"], demo.apps["catalog-api"]["url"]
    since = _get(demo.url + "/api/v1/performance/records", project_key=project_key, size=1)["records"][0]["timestamp"]
    for path in ("/orders", "/reports/sales", "/recommendations/7", "/catalog", "/inventory"):
        base = catalog if path in ("/catalog", "/inventory") else shop
        for _ in range(3):
            assert httpx.get(base + path, timeout=30).status_code == 200
    _burst(shop + "/stock/5/reserve", 4)
    pairs_from = _utc_now()
    victim_record = _held_up_catalog(demo, project_key, catalog)

    expected = {
        ("shop-web", "/orders", 3): ("n_plus_one_query", "database", {"fetch_order_items"}),
        ("shop-web", "/reports/sales", 3): ("template_rendering", "template", {"template sales_report.html"}),
        ("shop-web", "/recommendations/", 3): ("cpu_hotspot", "cpu", {"cosine_similarity", "compute_recommendations"}),
        ("shop-web", "/reserve", 4): ("lock_wait", "lock", {"reserve_stock"}),
        ("catalog-api", "/inventory", 4): ("blocking_in_async", "blocking", {"query_warehouse_stock"}),
    }
    found = {}
    for (service, path, count), want in expected.items():
        records = _records_since(demo, project_key, service, path, since, count)
        result = _analyze(demo, _slowest(demo, project_key, records))
        top = result["bottleneck_analysis"][0]
        found[path] = (top["detector"], top["type"], top["function"])
        ranked = [(f["detector"], f["function"], f.get("time_ms")) for f in result["bottleneck_analysis"][:4]]
        assert (top["detector"], top["type"]) == want[:2] and top["function"] in want[2], (path, ranked, result)
        assert result["performance_score"] < 90, (path, result["performance_score"])
    # /catalog alone: serialising the answer; /catalog beside /inventory: held up by it, the culprit named
    records = _records_since(demo, project_key, "catalog-api", "/catalog", since, 3)
    alone = [r for r in records if r["timestamp"] < pairs_from]
    assert len(alone) == 3, (pairs_from, records)
    top = _analyze(demo, _slowest(demo, project_key, alone))["bottleneck_analysis"][0]
    assert (top["detector"], top["type"]) == ("serialization", "serialization"), top
    assert top["function"] in {"catalog", "TypeAdapter.dump_json"}, top  # the handler, when it was sampled
    _wait_for_functions(demo, project_key, victim_record["trace_id"])
    top = _analyze(demo, victim_record["trace_id"])["bottleneck_analysis"][0]
    assert (top["detector"], top["function"]) == ("loop_blocked_by_other_request", "query_warehouse_stock"), top
    inventory = _records_since(demo, project_key, "catalog-api", "/inventory", since, 4)
    assert top["culprit_trace_id"] in {r["trace_id"] for r in inventory}


def test_sigterm_stops_apps_and_server(demo: DemoRun) -> None:
    ports = [int(app["url"].rsplit(":", 1)[1]) for app in demo.apps.values()]
    ports.append(int(demo.url.rsplit(":", 1)[1]))
    started = time.monotonic()
    demo.proc.send_signal(signal.SIGTERM)
    assert demo.proc.wait(timeout=20) == 0, demo.output()
    took = time.monotonic() - started
    assert took < 20
    for app in demo.apps.values():
        with pytest.raises(ProcessLookupError):
            os.kill(app["pid"], 0)
    for port in ports:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open after the demo stopped"
    assert not (demo.data_dir / "pg" / "postmaster.pid").exists(), "the embedded Postgres should be stopped"
