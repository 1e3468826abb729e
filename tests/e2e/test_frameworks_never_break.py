"""The SDK never breaks the host: with the receiver down or slow, the exporter raising, the sampler failing or a
request span ended on another thread, real apps under real servers answer exactly as before, nothing reaches the
app, and pystrument logs at most once per failure.
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pystrument
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pystrument import _safety

pytestmark = pytest.mark.e2e

APPS = Path(__file__).parent / "apps"
BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _log_once_per_test() -> None:
    """Each test sees the SDK's first warning per failure site (the log-once memory is process-wide)."""
    _safety.reset()


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
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def pystrument_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "pystrument" in line and "Traceback" not in line]


# -- the zero-code app (gunicorn threads) with a broken receiver --------------------------------------------------


@pytest.fixture
def gunicorn_app(tmp_path: Path, get_free_port: Callable[[], int]) -> Iterator[Callable[..., tuple[str, Any]]]:
    """Start flask_routes.py under ``opentelemetry-instrument gunicorn`` exporting to ``endpoint``."""
    procs: list[subprocess.Popen[str]] = []

    def start(endpoint: str, export_timeout: str = "10") -> tuple[str, Callable[[], str]]:
        port = get_free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSTRUMENT_", "OTEL_"))}
        env.update(
            HOME=str(tmp_path),
            PYTHONPATH=str(APPS),
            OTEL_SERVICE_NAME="never-break",
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_TIMEOUT=export_timeout,
            OTEL_BSP_SCHEDULE_DELAY="100",
            PYSTRUMENT_PROFILE_RATE="1",
            PYSTRUMENT_SLOW_MS="0",
        )
        command = [str(BIN / "gunicorn"), "--workers", "1", "--threads", "8", "--bind", f"127.0.0.1:{port}"]
        proc = subprocess.Popen(
            [str(BIN / "opentelemetry-instrument"), *command, "flask_routes:app"],
            cwd=APPS,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert proc.poll() is None, proc.communicate()[0]
            return httpx.get(url + "/hello", timeout=5).status_code == 200

        wait_until(up, 30, "the app")

        def stop() -> str:
            proc.terminate()
            try:
                return proc.communicate(timeout=20)[0]
            except subprocess.TimeoutExpired:
                proc.kill()
                return proc.communicate()[0]

        return url, stop

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        if proc.stdout is not None and not proc.stdout.closed:
            print(proc.communicate()[0])  # the app's log: shown by pytest when the test failed


def hit_routes(url: str, rounds: int = 2) -> list[float]:
    """Eight routes at once, ``rounds`` times; every answer must be the app's own; returns the latencies."""
    latencies: list[float] = []

    def get(route: str) -> None:
        t0 = time.perf_counter()
        response = httpx.get(f"{url}/{route}", timeout=10)
        latencies.append(time.perf_counter() - t0)
        assert response.status_code == 200, response.text
        assert response.json()["route"] == route and response.json()["n"] > 0

    with ThreadPoolExecutor(8) as pool:
        for _ in range(rounds):
            list(pool.map(get, [f"r{i}" for i in range(8)]))
    return latencies


def test_receiver_down(gunicorn_app: Callable[..., tuple[str, Callable[[], str]]], get_free_port: Any) -> None:
    closed = f"http://127.0.0.1:{get_free_port()}"  # nothing listens there: connection refused
    url, stop = gunicorn_app(closed, export_timeout="2")
    hit_routes(url)
    time.sleep(0.5)  # exports fail meanwhile (and are retried in the background)
    latencies = hit_routes(url)
    assert statistics.median(latencies) < 2.0
    output = stop()
    assert "Traceback" not in output or "opentelemetry.exporter" in output, output
    assert pystrument_lines(output) == [], output  # nothing of pystrument failed


class SlowReceiver:
    """An OTLP/HTTP receiver on loopback that takes ``delay`` seconds to answer each export, and keeps the bodies."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.bodies: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.bodies.append(body)
                time.sleep(receiver.delay)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spans(self) -> list[Any]:
        out = []
        for body in list(self.bodies):
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            out.extend(s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans)
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_receiver_slow(gunicorn_app: Callable[..., tuple[str, Callable[[], str]]]) -> None:
    receiver = SlowReceiver(delay=2.0)
    try:
        url, stop = gunicorn_app(receiver.url)
        hit_routes(url, rounds=1)
        wait_until(lambda: receiver.bodies, 5, "the first export to reach the slow receiver")
        latencies = hit_routes(url, rounds=3)  # the exporter is stuck in a 2 s call meanwhile
        assert max(latencies) < 2.0, latencies
        # Function spans were built and exported all the same, nested under their request spans.
        spans = wait_until(
            lambda: [s for s in receiver.spans() if s.name.endswith("_view")], 15, "function spans at the receiver"
        )
        assert {s.name for s in spans} >= {f"r{i}_view" for i in range(8)}
        assert pystrument_lines(stop()) == []
    finally:
        receiver.close()


# -- in-process apps on real servers, with a provider the test controls -------------------------------------------


class RaisingExporter(SpanExporter):
    def __init__(self) -> None:
        self.calls = 0

    def export(self, spans: Any) -> SpanExportResult:
        self.calls += 1
        raise ConnectionError("collector exploded")

    def shutdown(self) -> None:
        pass


def make_flask_app(provider: TracerProvider) -> Any:
    from flask import Flask, jsonify
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    app = Flask("never_break")

    def handed_over_work() -> None:
        time.sleep(0.02)

    @app.get("/work/<int:n>")
    def work(n: int) -> Any:
        time.sleep(0.03)
        return jsonify(n=n, total=sum(i * i for i in range(20_000)))

    def background_job() -> None:
        """A job in a thread of its own (a root span, so a request to pystrument), ended by yet another thread."""
        job = provider.get_tracer("app").start_span("nightly job")
        handed_over_work()
        ender = threading.Thread(target=job.end)
        ender.start()
        ender.join(5)

    @app.get("/handoff")
    def handoff() -> Any:
        worker = threading.Thread(target=background_job)
        worker.start()
        worker.join(5)
        return jsonify(done=True)

    FlaskInstrumentor().instrument_app(app, tracer_provider=provider)
    return app


@pytest.fixture
def wsgi_server() -> Iterator[Callable[[Any], str]]:
    """Serve a WSGI app with werkzeug's threaded server on a free loopback port."""
    from werkzeug.serving import make_server

    servers: list[Any] = []

    def serve(app: Any) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.server_port}"

    yield serve
    for server in servers:
        server.shutdown()


def test_exporter_raising(wsgi_server: Callable[[Any], str], caplog: pytest.LogCaptureFixture) -> None:
    exporter = RaisingExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # exports on the ending thread: the worst case
    # These check that nothing breaks, on full profiles: the cost budget (process-wide) is another test's subject.
    processor = pystrument.configure(provider, min_span_ms=0, span_budget=1)
    assert processor is not None
    url = wsgi_server(make_flask_app(provider))
    with caplog.at_level(logging.WARNING):
        with ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(lambda n: httpx.get(f"{url}/work/{n}", timeout=10), range(8)))
        assert processor.force_flush(10_000)
    assert [r.json()["n"] for r in responses] == list(range(8))
    assert all(r.status_code == 200 for r in responses)
    assert exporter.calls >= 16  # the request spans and the function spans were all offered, and all failed
    assert [r for r in caplog.records if r.name == "pystrument"] == []  # not pystrument's failure to log
    provider.shutdown()


@pytest.mark.parametrize("sampler", ["default", "pyinstrument"])
def test_request_span_ended_on_another_thread(
    sampler: str, wsgi_server: Callable[[Any], str], caplog: pytest.LogCaptureFixture
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    pystrument.configure(provider, sampler=sampler, min_span_ms=0, span_budget=1)
    url = wsgi_server(make_flask_app(provider))
    with caplog.at_level(logging.WARNING, logger="pystrument"):
        for _ in range(3):
            response = httpx.get(f"{url}/handoff", timeout=10)
            assert response.status_code == 200 and response.json() == {"done": True}
        after = httpx.get(f"{url}/work/1", timeout=10)
    assert after.json()["n"] == 1
    provider.force_flush()
    names = [s.name for s in exporter.get_finished_spans()]
    assert names.count("nightly job") == 3
    warnings = [r for r in caplog.records if r.name == "pystrument"]
    assert len(warnings) == (1 if sampler == "pyinstrument" else 0), [r.message for r in warnings]
    # The request after the hand-offs is profiled as usual.
    (work,) = [s for s in exporter.get_finished_spans() if s.name == "GET /work/<int:n>"]
    assert work.attributes is not None and work.attributes["pystrument.profile.samples"] > 0
    provider.shutdown()


class FragileTask(asyncio.Task):  # type: ignore[type-arg]
    """A third-party task type whose introspection breaks while a flag is up (a sampler failure, for real)."""

    broken = False

    def done(self) -> bool:
        if FragileTask.broken:
            raise RuntimeError("introspection broke")
        return super().done()


def test_sampler_failing_under_uvicorn(get_free_port: Callable[[], int], caplog: pytest.LogCaptureFixture) -> None:
    import uvicorn
    from fastapi import FastAPI
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    pystrument.configure(provider, min_span_ms=0, span_budget=1)
    app = FastAPI()

    @app.on_event("startup")
    async def fragile_tasks() -> None:
        asyncio.get_running_loop().set_task_factory(lambda loop, coro, **kw: FragileTask(coro, loop=loop, **kw))

    @app.get("/fragile/{n}")
    async def fragile(n: int) -> dict[str, int]:
        FragileTask.broken = True
        await asyncio.sleep(0.03)
        FragileTask.broken = False
        return {"n": n}

    @app.get("/fine")
    async def fine() -> dict[str, str]:
        await asyncio.sleep(0.03)
        return {"ok": "yes"}

    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    port = get_free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    url = f"http://127.0.0.1:{port}"
    with caplog.at_level(logging.WARNING, logger="pystrument"):
        thread.start()
        try:
            wait_until(lambda: httpx.get(url + "/fine").status_code == 200, 15, "uvicorn")
            with ThreadPoolExecutor(4) as pool:
                responses = list(pool.map(lambda n: httpx.get(f"{url}/fragile/{n}", timeout=10), range(6)))
            assert [r.json() for r in responses] == [{"n": n} for n in range(6)]
            FragileTask.broken = False
            assert httpx.get(url + "/fine").json() == {"ok": "yes"}
        finally:
            FragileTask.broken = False
            server.should_exit = True
            thread.join(10)
    failures = [r for r in caplog.records if "sampling a request failed" in r.message]
    assert len(failures) == 1  # logged once; later failures go to debug
    # The sampler thread survived: the request after the failures was sampled.
    provider.force_flush()
    fine_spans = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER and s.name == "GET /fine"]
    assert fine_spans and all(isinstance(s, ReadableSpan) for s in fine_spans)
    assert max((s.attributes or {}).get("pystrument.profile.samples", 0) for s in fine_spans) >= 3
    provider.shutdown()
