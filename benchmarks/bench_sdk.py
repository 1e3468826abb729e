"""SDK overhead: p50 latency of a real Flask app under four configurations, measured side by side in one run.

1. latency: benchmarks/apps/bench_app.py served by gunicorn (1 worker, 4 threads), one server process per
   configuration, all running at once:

   - ``bare``: no OpenTelemetry;
   - ``otel``: ``opentelemetry-instrument`` (Flask instrumentation, BatchSpanProcessor, OTLP/HTTP protobuf
     exporter) with pystrument disabled (``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=pystrument``);
   - ``default``: the same plus pystrument's default stack sampler;
   - ``precise``: the same with ``PYSTRUMENT_SAMPLER=pyinstrument``;
   - ``otel-again``: a second OTel-only server, the control: its ratio to ``otel`` is the noise of the run.

   Every request is profiled (``PYSTRUMENT_PROFILE_RATE=1``) and keeps its function spans (the default tail
   rule keeps all of them, ``PYSTRUMENT_KEEP_RATE=1``). The exporters post to a local OTLP/HTTP sink (its own
   process) that counts bytes and discards them. A loopback client sends one request at a time; rounds
   interleave every endpoint and configuration (in a shuffled order) so that drift on a shared machine hits
   all of them alike. Endpoints: hello (a string), JSON (60 items), a Jinja page (150 rows), call-heavy CPU
   (~60k small calls), 50 ms of I/O (sleep).
2. span building cost, in this process: the same app through Flask's test client with the Flask
   instrumentation, a BatchSpanProcessor and a discarding exporter; time spent in pystrument's hooks on the
   request thread (``on_start`` + the end hook + ``on_end``) and in building and emitting function spans on
   its worker thread, per request; and the sampler thread's time per sample.

3. concurrency (issue #14): process CPU per request and p50 latency with many requests in flight, OTel only (and its
   control) against OTel + pystrument's default sampler: FastAPI on uvicorn, a 50 ms await and a small JSON body, 50
   requests in flight; Flask on gunicorn gthread (8 threads), a 50 ms sleep and a small JSON body, 8 in flight. An
   asyncio loopback client keeps that many keep-alive connections busy for a few seconds per configuration and round.
   Besides the totals, the median over the rounds of each configuration's ratio to OTel only in the same round.

Targets (issue #14): CPU per request <= 1.10x OTel-only on the five endpoints and the two concurrency scenarios; p50
latency <= 1.03x OTel-only on the five endpoints; pystrument's work on the request thread <= 50 us per request.
Unknown arguments are ignored (``nox -s bench -- ...`` passes the same ones to every
script); positional words select benchmarks: this one runs when there are none or one of them is ``sdk``.
``--quick`` halves the rounds; ``--instructions`` adds a load-independent count of the instructions pystrument
adds on the request thread (valgrind, about three more minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
BIN = Path(sys.executable).parent
CONFIGS = ["bare", "otel", "otel-again", "default", "precise"]
# Endpoint -> requests per configuration per round (fewer for the slow ones, so each round stays short).
ENDPOINTS = {"hello": 12, "json": 12, "page": 8, "cpu": 6, "io": 2}
#: BatchSpanProcessor's export delay in the servers, and the pause after each endpoint's phase before its CPU time is
#: read: an export (its encoding grows with the spans, pystrument's included) is counted with the requests it carries,
#: not with whichever phase its 5-second timer happens to fall in (which made the longest phase, 50 ms I/O, look the
#: most expensive).
EXPORT_DELAY_MS = 100
PHASE_SETTLE = 0.3
LABELS = {"hello": "hello", "json": "JSON", "page": "Jinja page", "cpu": "call-heavy CPU", "io": "50 ms I/O"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("select", nargs="*", help="benchmark names to run (this one is 'sdk')")
    parser.add_argument("--quick", action="store_true", help="half the rounds")
    parser.add_argument("--rounds", type=int, default=24, help="interleaved rounds (default 24)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count request-thread instructions with valgrind (about 3 more minutes)",
    )
    parser.add_argument("--sink-port", type=int, help=argparse.SUPPRESS)  # internal: run as the OTLP sink
    args, _unknown = parser.parse_known_args(argv)
    return args


# -- the OTLP sink (its own process) -------------------------------------------------------------------------


def run_sink(port: int) -> None:
    """Accept OTLP/HTTP exports on ``/<config>/v1/traces``, count requests and bytes, answer an empty success."""
    counts: dict[str, list[int]] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            config = self.path.strip("/").split("/")[0]
            with lock:
                entry = counts.setdefault(config, [0, 0])
                entry[0] += 1
                entry[1] += len(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            with lock:
                data = json.dumps(counts).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


# -- servers ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(port: int, path: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not answer {path} within {timeout}s")


def start_app(
    config: str,
    port: int,
    sink: int,
    home: str,
    extra_env: dict[str, str] | None = None,
    server: str = "gunicorn",
) -> subprocess.Popen[bytes]:
    """One server of ``config``: ``gunicorn`` (bench_app, 1 worker, 4 threads), ``gthread`` (bench_app, 1 worker,
    gthread with 8 threads) or ``uvicorn`` (bench_async_app, one process, asyncio loop)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSTRUMENT_", "OTEL_"))}
    env.update(HOME=home, PYTHONPATH=str(APPS))  # gunicorn keeps a control socket under $HOME
    if server == "uvicorn":
        command = [
            str(BIN / "uvicorn"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--loop",
            "asyncio",
            "--http",
            "h11",
            "bench_async_app:app",
        ]
    else:
        threads = "8" if server == "gthread" else "4"
        command = [
            str(BIN / "gunicorn"),
            "--workers",
            "1",
            "--worker-class",
            "gthread",
            "--threads",
            threads,
            "--bind",
            f"127.0.0.1:{port}",
            "bench_app:app",
        ]
    if config != "bare":
        env.update(
            OTEL_SERVICE_NAME=f"bench-{config}",
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"http://127.0.0.1:{sink}/{config}/v1/traces",
            PYSTRUMENT_PROFILE_RATE="1",
            PYSTRUMENT_KEEP_RATE="1",
            # Exports every 100 ms rather than 5 s: a phase's exports land in the phase (``PHASE_SETTLE``).
            OTEL_BSP_SCHEDULE_DELAY=str(EXPORT_DELAY_MS),
        )
        if config in ("otel", "otel-again"):
            env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = "pystrument"
        else:
            env["PYSTRUMENT_SAMPLER"] = "default" if config == "default" else "pyinstrument"
        command = [str(BIN / "opentelemetry-instrument"), *command]
    env.update(extra_env or {})
    return subprocess.Popen(
        command, cwd=APPS, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=pin_server
    )


def worker_pid(master: int) -> int:
    """gunicorn's (only) worker process: the master's child."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        except OSError:
            children = []
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn master {master} has no worker")


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of a process so far (Linux schedstat, nanoseconds), in seconds."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):  # a thread that just ended
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def pin_server() -> None:
    """Servers share the last CPU and the client keeps the first (when there are two or more): every configuration
    runs on the same core, so core-to-core differences do not pass for overhead."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > 1:
        os.sched_setaffinity(0, {cpus[-1]})


def pin_client() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > 1:
        os.sched_setaffinity(0, set(cpus[:-1]))


# -- latency ---------------------------------------------------------------------------------------------------


class Client:
    """One keep-alive loopback connection; ``get`` returns the request's wall time in seconds."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def get(self, path: str) -> float:
        t0 = time.perf_counter()
        try:
            self.conn.request("GET", path)
            response = self.conn.getresponse()
            response.read()
        except (http.client.HTTPException, OSError):  # the server closed an idle keep-alive connection
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            t0 = time.perf_counter()
            self.conn.request("GET", path)
            response = self.conn.getresponse()
            response.read()
        elapsed = time.perf_counter() - t0
        if response.status != 200:
            raise RuntimeError(f"GET {path} on port {self.port}: {response.status}")
        return elapsed


class Run:
    """What one latency run measured."""

    def __init__(self) -> None:
        self.times: dict[str, dict[str, list[float]]] = {e: {c: [] for c in CONFIGS} for e in ENDPOINTS}
        # Server CPU seconds (all threads of the worker process) spent during each endpoint's phases.
        self.cpu: dict[str, dict[str, float]] = {e: dict.fromkeys(CONFIGS, 0.0) for e in ENDPOINTS}
        self.received: dict[str, Any] = {}
        self.seconds = 0.0


def measure_latency(rounds: int, seed: int) -> Run:
    """Per endpoint and configuration, every request's latency and the server's CPU time; what the sink got."""
    started = time.monotonic()
    home = tempfile.mkdtemp(prefix="bench-sdk-")
    sink_port = free_port()
    sink = subprocess.Popen([sys.executable, __file__, "--sink-port", str(sink_port)])
    pin_client()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports = {config: free_port() for config in CONFIGS}
    try:
        time.sleep(0.3)
        for config in CONFIGS:
            procs[config] = start_app(config, ports[config], sink_port, home)
        for config in CONFIGS:
            wait_for(ports[config], "/hello", procs[config])
        workers = {config: worker_pid(procs[config].pid) for config in CONFIGS}
        clients = {config: Client(ports[config]) for config in CONFIGS}
        for client in clients.values():  # warm-up: imports, template compilation, the SDK's threads
            for endpoint in ENDPOINTS:
                for _ in range(3):
                    client.get("/" + endpoint)
        rng = random.Random(seed)
        run = Run()
        for _ in range(rounds):
            for endpoint, n in ENDPOINTS.items():
                before = {config: cpu_seconds(pid) for config, pid in workers.items()}
                for _ in range(n):  # request by request, each configuration in a new random order
                    order = CONFIGS[:]
                    rng.shuffle(order)
                    for config in order:
                        run.times[endpoint][config].append(clients[config].get("/" + endpoint))
                time.sleep(PHASE_SETTLE)  # the phase's exports, and the sampler parking, belong to it
                for config, pid in workers.items():
                    run.cpu[endpoint][config] += cpu_seconds(pid) - before[config]
        time.sleep(1)  # let the last batches reach the sink
        conn = http.client.HTTPConnection("127.0.0.1", sink_port, timeout=5)
        conn.request("GET", "/stats")
        run.received = json.loads(conn.getresponse().read())
        run.seconds = time.monotonic() - started
        return run
    finally:
        for proc in [*procs.values(), sink]:
            proc.terminate()
        for proc in [*procs.values(), sink]:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


# -- concurrency: many requests in flight ---------------------------------------------------------------------

#: Configurations of the concurrency scenarios (OTel only, its control, OTel + pystrument's default sampler).
CONCURRENT_CONFIGS = ["otel", "otel-again", "default"]
#: Scenario -> (label, server kind, requests in flight).
SCENARIOS = {
    "fastapi": ("FastAPI on uvicorn, 50 ms await + small JSON", "uvicorn", 50),
    "gthread": ("Flask on gunicorn gthread (8 threads), 50 ms sleep + small JSON", "gthread", 8),
}


class Concurrent:
    """What one concurrency scenario measured, per configuration."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = {c: [] for c in CONCURRENT_CONFIGS}
        self.cpu: dict[str, float] = dict.fromkeys(CONCURRENT_CONFIGS, 0.0)
        self.load_seconds: dict[str, float] = dict.fromkeys(CONCURRENT_CONFIGS, 0.0)
        #: Per configuration, the process CPU seconds at the start of each of its slots (and at the end): a round's
        #: CPU runs from its slot's start to the next one's (the slot's late exports included).
        self.marks: dict[str, list[float]] = {c: [] for c in CONCURRENT_CONFIGS}
        self.counts: dict[str, list[int]] = {c: [] for c in CONCURRENT_CONFIGS}

    def round_ratio(self, config: str) -> float:
        """Median over the rounds of ``config``'s CPU per request over OTel only's in the same round: one slot
        disturbed by the machine (a round's ratio on this VM ranges up to 0.1-0.3 either way) moves it less than it
        moves the totals."""
        ratios = []
        for r in range(len(self.counts[config])):
            mine = (self.marks[config][r + 1] - self.marks[config][r]) / max(1, self.counts[config][r])
            base = (self.marks["otel"][r + 1] - self.marks["otel"][r]) / max(1, self.counts["otel"][r])
            ratios.append(mine / base if base > 0 else 0.0)
        return statistics.median(ratios) if ratios else 0.0


async def _load(port: int, path: str, inflight: int, seconds: float) -> list[float]:
    """``inflight`` keep-alive loopback connections, each sending its next request as soon as the last one answered,
    for ``seconds``: every request's latency."""
    import asyncio

    latencies: list[float] = []
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    deadline = time.perf_counter() + seconds

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                writer.write(request)
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):  # an idle keep-alive connection closed
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"GET {path} on port {port}: {head[:40]!r}")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(inflight)))
    return latencies


def measure_concurrency(scenario: str, rounds: int, seconds: float, seed: int) -> Concurrent:
    """One scenario: a server per configuration (all up at once, loaded in turn, rounds in a shuffled order); each
    server's process CPU from after its warm-up to after its last export, per request it answered."""
    import asyncio

    _label, server, inflight = SCENARIOS[scenario]
    home = tempfile.mkdtemp(prefix="bench-sdk-")
    sink_port = free_port()
    sink = subprocess.Popen([sys.executable, __file__, "--sink-port", str(sink_port)])
    pin_client()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports = {config: free_port() for config in CONCURRENT_CONFIGS}
    out = Concurrent()
    try:
        time.sleep(0.3)
        for config in CONCURRENT_CONFIGS:
            procs[config] = start_app(config, ports[config], sink_port, home, server=server)
        for config in CONCURRENT_CONFIGS:
            wait_for(ports[config], "/wait", procs[config])
        pids = {
            config: procs[config].pid if server == "uvicorn" else worker_pid(procs[config].pid)
            for config in CONCURRENT_CONFIGS
        }
        for config in CONCURRENT_CONFIGS:  # warm-up: imports, the SDK's threads, the span budget's estimates
            asyncio.run(_load(ports[config], "/wait", inflight, 1.0))
        time.sleep(1)  # the warm-up's exports
        before = {config: cpu_seconds(pid) for config, pid in pids.items()}
        rng = random.Random(seed)
        for _ in range(rounds):
            order = CONCURRENT_CONFIGS[:]
            rng.shuffle(order)
            for config in order:
                out.marks[config].append(cpu_seconds(pids[config]))
                t0 = time.perf_counter()
                latencies = asyncio.run(_load(ports[config], "/wait", inflight, seconds))
                out.load_seconds[config] += time.perf_counter() - t0
                out.latencies[config] += latencies
                out.counts[config].append(len(latencies))
        time.sleep(1)  # the last exports (every EXPORT_DELAY_MS) count too
        for config, pid in pids.items():
            out.marks[config].append(cpu_seconds(pid))
            out.cpu[config] = out.marks[config][-1] - before[config]
        return out
    finally:
        for proc in [*procs.values(), sink]:
            proc.terminate()
        for proc in [*procs.values(), sink]:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


# -- span building cost ---------------------------------------------------------------------------------------


class Timed:
    """Accumulates the CPU time of the calling thread spent in a wrapped callable (waits for the GIL excluded);
    with ``thread``, only calls made on that thread count."""

    def __init__(self, fn: Callable[..., Any], thread: int | None = None) -> None:
        self.fn = fn
        self.thread = thread
        self.total = 0.0
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.thread is not None and threading.get_ident() != self.thread:
            return self.fn(*args, **kwargs)
        t0 = time.thread_time()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.total += time.thread_time() - t0
            self.calls += 1


def measure_building(requests: int) -> dict[str, dict[str, float]]:
    """Per endpoint: microseconds per request in pystrument's hooks on the request thread and on its worker."""
    sys.path.insert(0, str(APPS))
    import bench_app
    import pystrument
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.sdk import trace as sdk_trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from pystrument._sampler import get_sampler

    class Discard(SpanExporter):
        spans = 0

        def export(self, spans: Any) -> SpanExportResult:
            Discard.spans += len(spans)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard(), max_queue_size=100_000))
    # No cost budget: this measures what a profiled request with function spans costs, not how often the budget allows
    # one (the test client runs requests back to back, which would spend any budget).
    processor = pystrument.configure(provider, sampler="default", profile_rate=1, keep_rate=1, span_budget=1)
    assert processor is not None
    FlaskInstrumentor().instrument_app(bench_app.app, tracer_provider=provider)
    request_thread = threading.get_ident()  # the test client runs the app on this thread
    hooks = {
        "on_start": Timed(processor.on_start, request_thread),
        "end hook": Timed(processor._finish_recording, request_thread),
        "on_end": Timed(processor.on_end, request_thread),
        "build": Timed(processor._build),
    }
    processor.on_start = hooks["on_start"]  # type: ignore[method-assign]
    processor._finish_recording = hooks["end hook"]  # type: ignore[method-assign]
    processor.on_end = hooks["on_end"]  # type: ignore[method-assign]
    processor._build = hooks["build"]  # type: ignore[method-assign]
    sampler = get_sampler()
    sample_once = Timed(sampler.sample_once)
    sampler.sample_once = sample_once  # type: ignore[method-assign]
    # The yardstick: OpenTelemetry's own work for the same request spans, on the same thread (its start_span and
    # Span.end, less pystrument's hooks inside them; the span worker's spans are not counted).
    otel = {
        "start": Timed(sdk_trace.Tracer.start_span, request_thread),
        "end": Timed(sdk_trace.Span.end, request_thread),
    }

    def start_span(self: Any, *args: Any, **kwargs: Any) -> Any:  # functions, so that they bind as methods
        return otel["start"](self, *args, **kwargs)

    def end(self: Any, *args: Any, **kwargs: Any) -> Any:
        return otel["end"](self, *args, **kwargs)

    sdk_trace.Tracer.start_span = start_span  # type: ignore[method-assign]
    sdk_trace.Span.end = end  # type: ignore[method-assign]
    client = bench_app.app.test_client()
    results: dict[str, dict[str, float]] = {}
    for endpoint in ("hello", "page", "cpu"):
        for _ in range(20):
            client.get("/" + endpoint)
        processor.force_flush()
        for timed in (*hooks.values(), sample_once, *otel.values()):
            timed.total, timed.calls = 0.0, 0
        spans_before = Discard.spans
        for _ in range(requests):
            client.get("/" + endpoint)
        processor.force_flush()
        provider.force_flush()
        on_thread = sum(hooks[k].total for k in ("on_start", "end hook", "on_end"))
        results[endpoint] = {
            "request_us": on_thread / requests * 1e6,
            "on_start_us": hooks["on_start"].total / requests * 1e6,
            "end_us": (hooks["end hook"].total + hooks["on_end"].total) / requests * 1e6,
            "worker_us": hooks["build"].total / requests * 1e6,
            "spans": (Discard.spans - spans_before) / requests,
            "sample_us": sample_once.total / max(1, sample_once.calls) * 1e6,
            "otel_span_us": (otel["start"].total - hooks["on_start"].total + otel["end"].total - hooks["on_end"].total)
            / requests
            * 1e6,
        }
    sdk_trace.Tracer.start_span = otel["start"].fn  # type: ignore[method-assign]
    sdk_trace.Span.end = otel["end"].fn  # type: ignore[method-assign]
    provider.shutdown()
    return results


# -- instructions (optional, valgrind) -----------------------------------------------------------------------

_DRIVER = """
import sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

class Discard(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS

mode, n = sys.argv[1], int(sys.argv[2])
provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(Discard(), max_queue_size=100_000))
import pystrument
if mode == "pystrument":
    # No cost budget: back to back, these requests would spend any budget, and the unprofiled ones be counted.
    pystrument.configure(provider, sampler="default", profile_rate=1, keep_rate=1, span_budget=1)
tracer = provider.get_tracer("bench")
attributes = {"http.request.method": "GET", "url.path": "/x", "http.route": "/x"}

def request():
    span = tracer.start_span("GET /x", kind=SpanKind.SERVER, attributes=attributes)
    span.set_attribute("http.response.status_code", 200)
    span.end()

def nested(depth):  # a request runs some frames below the server's
    return nested(depth - 1) if depth else request()

for _ in range(n):
    nested(20)
provider.shutdown()
"""


def measure_instructions() -> dict[str, float] | None:
    """Instructions executed on the request thread per request span, OTel alone and with pystrument (valgrind's
    callgrind; independent of the machine's load). The difference between 300 and 1300 requests, so start-up and
    shutdown cancel out. None without valgrind."""
    import shutil

    if shutil.which("valgrind") is None:
        return None
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        driver = Path(tmp) / "driver.py"
        driver.write_text(_DRIVER)
        for mode in ("otel", "pystrument"):
            totals = []
            for n in (300, 1300):
                prefix = Path(tmp) / f"cg.{mode}.{n}"
                subprocess.run(
                    ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={prefix}.%p",
                     sys.executable, str(driver), mode, str(n)],
                    check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": "0"},  # repeatable dicts
                )  # fmt: skip
                (main_thread,) = Path(tmp).glob(f"cg.{mode}.{n}.*-01")
                text = main_thread.read_text(errors="replace")
                line = next(x for x in text.splitlines() if x.startswith(("summary:", "totals:")))
                totals.append(int(line.split()[1]))
            out[mode] = (totals[1] - totals[0]) / 1000
    return out


# -- report ----------------------------------------------------------------------------------------------------


def p50(values: list[float]) -> float:
    return statistics.median(values) * 1000


def report(run: Run, building: dict[str, dict[str, float]], rounds: int) -> str:
    per_config = sum(ENDPOINTS.values()) * rounds
    lines = [
        f"p50 latency in ms (ratio), {rounds} interleaved rounds, {per_config} requests per configuration, "
        f"{run.seconds:.0f} s:",
        "",
        "| endpoint | bare | OTel only | OTel only, control | OTel + pystrument default | OTel + pystrument precise |",
        "|---|---|---|---|---|---|",
    ]
    for endpoint in ENDPOINTS:
        row = {c: p50(run.times[endpoint][c]) for c in CONFIGS}
        lines.append(
            f"| {LABELS[endpoint]} | {row['bare']:.2f} | {row['otel']:.2f} ({row['otel'] / row['bare']:.2f}x bare) "
            f"| {row['otel-again']:.2f} ({row['otel-again'] / row['otel']:.3f}x) "
            f"| {row['default']:.2f} (**{row['default'] / row['otel']:.3f}x** OTel) "
            f"| {row['precise']:.2f} ({row['precise'] / row['otel']:.2f}x OTel) |"
        )
    lines += [
        "",
        "Server CPU time per request in ms (all threads of the worker process: request, sampler, span worker, "
        "exporter), same run:",
        "",
        "| endpoint | bare | OTel only | OTel only, control | OTel + pystrument default | OTel + pystrument precise |",
        "|---|---|---|---|---|---|",
    ]
    for endpoint, n in ENDPOINTS.items():
        row = {c: run.cpu[endpoint][c] / (n * rounds) * 1000 for c in CONFIGS}
        lines.append(
            f"| {LABELS[endpoint]} | {row['bare']:.2f} | {row['otel']:.2f} "
            f"| {row['otel-again']:.2f} ({row['otel-again'] / row['otel']:.3f}x) | {row['default']:.2f} "
            f"(**{row['default'] / row['otel']:.3f}x** OTel) | {row['precise']:.2f} "
            f"({row['precise'] / row['otel']:.2f}x) |"
        )
    warm = 3 * len(ENDPOINTS) + 1
    sent = ", ".join(
        f"{c} {run.received.get(c, [0, 0])[1] / (per_config + warm) / 1024:.2f} KiB"
        for c in ("otel", "default", "precise")
    )
    lines += ["", f"OTLP protobuf bytes exported per request (counted by the sink): {sent}.", ""]
    lines += [
        "pystrument's own work per request (default sampler, in-process through Flask's test client; CPU time of "
        "the thread inside pystrument's code):",
        "",
        "| endpoint | request thread: on_start + end | OTel's own span, same requests | span worker: build + emit "
        "| function spans | sampler, per sample |",
        "|---|---|---|---|---|---|",
    ]
    for endpoint, b in building.items():
        lines.append(
            f"| {LABELS[endpoint]} | {b['request_us']:.1f} µs ({b['on_start_us']:.1f} + {b['end_us']:.1f}) "
            f"| {b['otel_span_us']:.1f} µs | {b['worker_us']:.0f} µs | {b['spans']:.1f} | {b['sample_us']:.1f} µs |"
        )
    return "\n".join(lines)


def report_concurrency(results: dict[str, Concurrent], rounds: int, seconds: float) -> str:
    lines = [
        f"Concurrency: process CPU per request in ms (all threads, from after the warm-up to after the last export) "
        f"and p50 latency, {rounds} rounds of {seconds:g} s per configuration in a shuffled order (in brackets: the "
        f"median over the rounds of the ratio to OTel only in the same round):",
        "",
        "| scenario | in flight | OTel only: CPU/request, p50 | OTel only, control | OTel + pystrument default "
        "| requests/s (OTel, pystrument) |",
        "|---|---|---|---|---|---|",
    ]
    for scenario, out in results.items():
        label, _server, inflight = SCENARIOS[scenario]
        cpu = {c: out.cpu[c] / max(1, len(out.latencies[c])) * 1000 for c in CONCURRENT_CONFIGS}
        lat = {c: p50(out.latencies[c]) if out.latencies[c] else 0.0 for c in CONCURRENT_CONFIGS}
        rate = {c: len(out.latencies[c]) / max(1e-9, out.load_seconds[c]) for c in CONCURRENT_CONFIGS}
        control, default = out.round_ratio("otel-again"), out.round_ratio("default")
        lines.append(
            f"| {label} | {inflight} | {cpu['otel']:.2f} ms, {lat['otel']:.1f} ms "
            f"| {cpu['otel-again']:.2f} ms ({cpu['otel-again'] / cpu['otel']:.3f}x [{control:.3f}x]), "
            f"{lat['otel-again']:.1f} ms "
            f"| {cpu['default']:.2f} ms (**{cpu['default'] / cpu['otel']:.3f}x** OTel [{default:.3f}x]), "
            f"{lat['default']:.1f} ms "
            f"({lat['default'] / lat['otel']:.3f}x) | {rate['otel']:.0f}, {rate['default']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.sink_port:
        run_sink(args.sink_port)
        return 0
    if args.select and "sdk" not in args.select:
        print("bench_sdk: not selected")
        return 0
    rounds = max(2, args.rounds // 2) if args.quick else args.rounds
    print(f"bench_sdk: {len(CONFIGS)} gunicorn servers, {rounds} rounds ...", flush=True)
    run = measure_latency(rounds, args.seed)
    building = measure_building(100 if args.quick else 300)
    print(report(run, building, rounds))
    crounds, seconds = (3, 3.0) if args.quick else (5, 4.0)
    print(f"\nbench_sdk: concurrency scenarios, {crounds} rounds ...", flush=True)
    results = {scenario: measure_concurrency(scenario, crounds, seconds, args.seed) for scenario in SCENARIOS}
    print(report_concurrency(results, crounds, seconds))
    if args.instructions:
        counted = measure_instructions()
        if counted is None:
            print("\n(valgrind not found: no instruction counts)")
        else:
            extra = counted["pystrument"] - counted["otel"]
            print(
                f"\nInstructions on the request thread per request span (callgrind, 20 frames deep): OTel alone "
                f"{counted['otel'] / 1000:.0f}k, with pystrument {counted['pystrument'] / 1000:.0f}k: pystrument adds "
                f"{extra / 1000:.0f}k ({extra / counted['otel']:.0%} of OTel's)."
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
