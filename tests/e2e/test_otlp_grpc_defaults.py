"""The OpenTelemetry front door on real parts: ``pystrument serve`` with OTLP/gRPC, reached by SDKs on their
defaults.

- A Flask app under ``opentelemetry-instrument`` with nothing but ``OTEL_SERVICE_NAME`` and
  ``OTEL_EXPORTER_OTLP_HEADERS`` (plus logging auto-instrumentation on): the distro's defaults send traces,
  metrics and logs over gRPC to localhost:4317. Traces, function spans and log lines are stored; metrics are
  answered; the app's output has no export error. (When another server holds 4317 on this machine the test
  serves gRPC on a free port and adds ``OTEL_EXPORTER_OTLP_ENDPOINT``, the only difference.)
- The OpenTelemetry JavaScript SDK (npm's ``@opentelemetry/sdk-trace-node`` with the gRPC trace exporter).
- The trace page in Debian's Chromium shows the log lines beside their spans.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
DEFAULT_GRPC_PORT = 4317
EXPORT_ERRORS = ("Failed to export", "Transient error", "StatusCode.", "Exception while exporting", "Traceback")

FLASK_APP = """
import logging
import sys
import time

from flask import Flask

app = Flask(__name__)
log = logging.getLogger("shop.checkout")
log.setLevel(logging.INFO)


def load_cart():
    time.sleep(0.03)
    log.info("cart loaded with %d items", 3)
    return [1, 2, 3]


def charge(items):
    deadline = time.perf_counter() + 0.03
    while time.perf_counter() < deadline:
        sum(i * 1.07 for i in range(200))
    log.warning("payment slow for card ending %s", "4242", extra={"authorization": "Bearer secret"})
    return len(items)


@app.get("/checkout")
def checkout():
    return {"charged": charge(load_cart())}


@app.get("/hello")
def hello():
    return "hello"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]))
"""

JS_APP = """
const { NodeTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-node');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-grpc');
const { SpanKind } = require('@opentelemetry/api');
const { detectResources, envDetector } = require('@opentelemetry/resources');

// Endpoint, headers and service name come from the standard OTEL_* variables.
const provider = new NodeTracerProvider({
  resource: detectResources({ detectors: [envDetector] }),
  spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
});
provider.register(); // the async-hooks context manager, so child spans get their parent
const tracer = provider.getTracer('js-e2e');
for (let i = 0; i < 5; i++) {
  tracer.startActiveSpan(`GET /js/items/{id}`, { kind: SpanKind.SERVER, attributes: {
    'http.request.method': 'GET', 'http.route': '/js/items/{id}', 'url.path': `/js/items/${i}`,
    'http.response.status_code': 200 } }, (span) => {
    tracer.startActiveSpan('SELECT items', { kind: SpanKind.CLIENT }, (db) => db.end());
    span.end();
  });
}
provider.shutdown().then(
  () => console.log('exported'),
  (err) => { console.error('export failed', err); process.exit(1); },
);
"""


def wait_until(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    with socket.socket(socket.AF_INET6) as s:
        try:
            s.bind(("::1", port))
        except OSError:
            return False
    return True


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYSTRUMENT_", "OTEL_"))}


class Served:
    def __init__(self, url: str, grpc_port: int, log: Path) -> None:
        self.url = url
        self.grpc_port = grpc_port
        self.log = log

    @property
    def grpc_endpoint_env(self) -> dict[str, str]:
        """Nothing on the default port; the endpoint when the test had to take another one."""
        if self.grpc_port == DEFAULT_GRPC_PORT:
            return {}
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self.grpc_port}"}

    def project(self, name: str) -> str:
        r = httpx.post(self.url + "/api/v1/projects", json={"name": name, "framework": "other"})
        assert r.status_code in (200, 201), r.text
        key: str = r.json()["data"]["project_key"]
        return key


@pytest.fixture
def served(database_url: str, get_free_port: Any, tmp_path: Path) -> Iterator[Served]:
    """``pystrument serve`` in its own process; gRPC on 4317 when that port is free here, else a free port."""
    port = get_free_port()
    grpc_port = DEFAULT_GRPC_PORT if _port_free(DEFAULT_GRPC_PORT) else get_free_port()
    env = clean_env()
    env["PYSTRUMENT_DATABASE_URL"] = database_url
    log_path = tmp_path / "serve.log"
    cmd = [str(BIN / "pystrument"), "serve", "--port", str(port), "--data-dir", str(tmp_path)]
    if grpc_port != DEFAULT_GRPC_PORT:
        cmd += ["--grpc-port", str(grpc_port)]
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert proc.poll() is None, log_path.read_text()
            return httpx.get(url + "/health", timeout=5).status_code == 200

        wait_until(healthy, 90, "pystrument serve /health")
        assert "OTLP/gRPC (traces, logs, metrics) on 127.0.0.1:" in log_path.read_text()
        yield Served(url, grpc_port, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        print(log_path.read_text()[-4000:])
    assert proc.returncode in (0, -15), log_path.read_text()[-4000:]
    assert _port_free(grpc_port) or grpc_port == DEFAULT_GRPC_PORT, "the gRPC port is still open after shutdown"


def record_detail(served: Served, key: str, path: str, ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        records = httpx.get(served.url + "/api/v1/performance/records", params={"project_key": key, "size": 50}).json()[
            "data"
        ]["records"]
        record = next((r for r in records if r["request_path"] == path), None)
        if record is None:
            return None
        detail: dict[str, Any] = httpx.get(
            served.url + f"/api/v1/performance/records/{record['trace_id']}", params={"project_key": key}
        ).json()["data"]
        return detail if ready(detail) else None

    result: dict[str, Any] = wait_until(probe, 60, f"the {path} trace")
    return result


def test_python_sdk_on_the_distros_defaults(served: Served, get_free_port: Any, tmp_path: Path) -> None:
    key = served.project("grpc-defaults")
    app = tmp_path / "shop.py"
    app.write_text(FLASK_APP)
    port = get_free_port()
    env = clean_env()
    env.update(
        OTEL_SERVICE_NAME="grpc-shop",
        OTEL_EXPORTER_OTLP_HEADERS=f"x-project-key={key}",
        OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="true",
        # Not configuration, only quicker: batches every 200 ms, metrics every second.
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_BLRP_SCHEDULE_DELAY="200",
        OTEL_METRIC_EXPORT_INTERVAL="1000",
        PYSTRUMENT_PROFILE_RATE="1",
        PYSTRUMENT_SLOW_MS="0",
        **served.grpc_endpoint_env,
    )
    out_path = tmp_path / "app.log"
    with out_path.open("w") as out:
        proc = subprocess.Popen(
            [str(BIN / "opentelemetry-instrument"), sys.executable, str(app), str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(url + "/hello").status_code == 200, 30, "the Flask app")
        assert httpx.get(url + "/checkout").status_code == 200

        def complete(detail: dict[str, Any]) -> bool:
            names = {s["name"].rsplit(".", 1)[-1] for s in detail["spans"]}
            return {"load_cart", "charge"} <= names and len(detail["logs"]) >= 2

        detail = record_detail(served, key, "/checkout", complete)
        wait_until(lambda: httpx.get(served.url + "/v1/stats").json()["metrics"]["requests"] > 0, 20, "metrics")
    finally:
        proc.terminate()
        proc.wait(30)
    output = out_path.read_text()
    print(output[-4000:])
    assert not [line for line in output.splitlines() if any(e in line for e in EXPORT_ERRORS)], output[-4000:]

    spans = {s["span_id"]: s for s in detail["spans"]}
    assert any(s["kind"] == "SERVER" for s in spans.values())
    assert all(s["service_name"] == "grpc-shop" for s in spans.values())
    logs = {log["body"]: log for log in detail["logs"]}
    loaded, slow = logs["cart loaded with 3 items"], logs["payment slow for card ending 4242"]
    assert (loaded["severity_text"], slow["severity_text"]) == ("INFO", "WARN")
    assert slow["attributes"]["authorization"] == "[REDACTED]"
    assert loaded["span_id"] in spans and loaded["scope_name"] == "shop.checkout"
    stats = httpx.get(served.url + "/v1/stats").json()
    assert stats["transports"].get("grpc", 0) >= 3 and not stats["transports"].get("http")
    assert stats["logs"]["accepted"] >= 2 and stats["spans"]["rejected_total"] == 0


@pytest.fixture(scope="session")
def node_otel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the OpenTelemetry JS SDK and its gRPC trace exporter, installed from the npm registry."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is missing: the JavaScript SDK test needs Node.js 18+ and npm")
    root = tmp_path_factory.mktemp("node-otel")
    (root / "package.json").write_text(json.dumps({"name": "otel-grpc-e2e", "private": True, "version": "0.0.0"}))
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", "@opentelemetry/api",
         "@opentelemetry/resources", "@opentelemetry/sdk-trace-node",
         "@opentelemetry/exporter-trace-otlp-grpc"],
        cwd=root, check=True, timeout=600,
    )  # fmt: skip
    return root


def test_javascript_sdk_grpc_exporter(served: Served, node_otel: Path) -> None:
    key = served.project("js")
    script = node_otel / "export.js"
    script.write_text(textwrap.dedent(JS_APP))
    env = clean_env()
    env.update(
        OTEL_SERVICE_NAME="js-shop",
        OTEL_EXPORTER_OTLP_HEADERS=f"x-project-key={key}",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{served.grpc_port}",
    )
    done = subprocess.run(["node", str(script)], cwd=node_otel, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "exported" in done.stdout, done.stdout + done.stderr
    assert "rror" not in done.stderr, done.stderr

    def five() -> list[dict[str, Any]] | None:
        page = httpx.get(served.url + "/api/v1/performance/records", params={"project_key": key}).json()["data"]
        return page["records"] if page["total"] == 5 else None

    records = wait_until(five, 30, "the JS SDK's 5 request records")
    assert {r["route"] for r in records} == {"/js/items/{id}"} and {r["service_name"] for r in records} == {"js-shop"}
    detail = httpx.get(
        served.url + f"/api/v1/performance/records/{records[0]['trace_id']}", params={"project_key": key}
    ).json()["data"]
    db = next(s for s in detail["spans"] if s["name"] == "SELECT items")
    assert db["kind"] == "CLIENT" and db["parent_span_id"] == records[0]["span_id"]


@pytest.mark.parametrize(
    ("setting", "fix"),
    [
        ({"OTEL_TRACES_EXPORTER": "none"}, "OTEL_TRACES_EXPORTER=otlp"),
        ({"OTEL_PYTHON_CONFIGURATOR": "nothing-by-this-name"}, "opentelemetry-exporter-otlp"),
    ],
)
def test_no_trace_exporter_is_said_in_one_line_with_the_fix(setting: dict[str, str], fix: str, tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text("from opentelemetry import trace\ntrace.get_tracer('t').start_span('x').end()\nprint('ran')\n")
    env = {**clean_env(), "OTEL_SERVICE_NAME": "quiet", **setting}
    done = subprocess.run(
        [str(BIN / "opentelemetry-instrument"), sys.executable, str(app)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "ran" in done.stdout, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("pystrument:")]
    assert len(lines) == 1 and fix in lines[0], done.stderr
