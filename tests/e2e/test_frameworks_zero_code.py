"""Flask, Django (WSGI and ASGI) and FastAPI under real servers, run by ``opentelemetry-instrument`` with no code
change, exporting OTLP/HTTP protobuf to pystrument's real receiver; traces are read back through the REST API.

Eight concurrent requests hit eight routes; every route calls functions named after it (apps/routes.py), so each
trace must hold its own route's functions and no other's, whatever thread, threadpool or event loop ran it.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

APPS = Path(__file__).parent / "apps"
BIN = Path(sys.executable).parent
SDK_DIR = str(Path(__file__).parents[2] / "instrumentation" / "pystrument")
ROUTES = [f"r{i}" for i in range(8)]
ROUTE_FUNCTION = re.compile(r"^(r\d+)_")
SAMPLES = "pystrument.profile.samples"
GC_PAUSE = "pystrument.gc.pause_ms"
# Each route takes 70 ms or more, 14 samples or more at 5 ms. But a full garbage collection of the app's heap
# (~100k objects) stops every thread for 100-150 ms on this machine, the sampler's too, and it comes every few
# bursts: requests running then get few samples, and their view may not become a span. Such a request must show
# what stopped it: the collection's pause covers at least half of it (``pystrument.gc.pause_ms``). It must hold no
# other route's functions either way.
STARVED_SAMPLES = 10


@dataclass(frozen=True)
class Case:
    """One framework under one server: the command (``{port}`` filled in) and what to expect of each route."""

    command: list[str]
    # Route -> True when its handler is a coroutine (runs on the loop): the request span's pystrument.async.
    is_async: Callable[[str], bool]
    # Route -> True when its handler runs in a worker thread of an event-loop request (a lane of its own).
    in_worker_thread: Callable[[str], bool] = lambda route: False


# The documented hot end of a library chain (docs/integration.md): at least this share of its caller's time, this long.
HOT_SHARE, HOT_MIN_S = 0.5, 0.02
DISPATCHERS = {"BaseHandler._get_response", "BaseHandler._get_response_async", "Flask.dispatch_request"}


def package(span: dict[str, Any]) -> str:
    """The installed package a library function span's file belongs to."""
    path = str(span["attributes"].get("code.file.path", ""))
    return path.split("-packages/", 1)[-1].split("/", 1)[0] if "-packages/" in path else "stdlib"


def even(route: str) -> bool:
    return int(route[1:]) % 2 == 0


GUNICORN = [str(BIN / "gunicorn"), "--workers", "1", "--threads", "8", "--bind", "127.0.0.1:{port}"]
UVICORN = [str(BIN / "uvicorn"), "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"]
CASES = {
    # Flask's sync views on gunicorn's thread workers (forked from the instrumented master).
    "flask-gunicorn": Case([*GUNICORN, "flask_routes:app"], is_async=lambda r: False),
    # Flask's sync views on Werkzeug's threaded development server (one thread per request, no fork).
    "flask-werkzeug": Case(
        [str(BIN / "flask"), "--app", "flask_routes", "run", "--with-threads", "--port", "{port}"],
        is_async=lambda r: False,
    ),
    # Django under WSGI: even routes are sync views; odd ones async views, which Django runs on a private event
    # loop in a worker thread (async_to_sync).
    "django-wsgi-gunicorn": Case([*GUNICORN, "djshop.wsgi:application"], is_async=lambda r: not even(r)),
    # Django under ASGI: the OTel middleware runs in asgiref's thread, sync views there too; async views run
    # as a task on uvicorn's loop (async_to_sync), adopted by the request.
    "django-asgi-uvicorn": Case([*UVICORN, "djshop.asgi:application"], is_async=lambda r: not even(r)),
    # FastAPI: the request span starts on the loop; even routes are ``def`` (anyio threadpool), odd ``async def``.
    "fastapi-uvicorn": Case([*UVICORN, "fastapi_routes:app"], is_async=lambda r: True, in_worker_thread=even),
}


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
        time.sleep(0.15)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


@pytest.fixture
def project_key(live_server: Any) -> str:
    r = httpx.post(live_server.url + "/api/v1/projects", json={"name": "frameworks", "framework": "mixed"})
    assert r.status_code in (200, 201), r.text
    key: str = r.json()["data"]["project_key"]
    return key


def start_app(case: Case, port: int, receiver: str, key: str, home: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSTRUMENT_", "OTEL_", "DJANGO_"))}
    env.update(
        HOME=str(home),  # gunicorn keeps a control socket under $HOME
        PYTHONPATH=str(APPS),
        DJANGO_SETTINGS_MODULE="djshop.settings",
        OTEL_SERVICE_NAME="frameworks",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_HEADERS=f"x-project-key={key}",
        OTEL_BSP_SCHEDULE_DELAY="200",
        PYSTRUMENT_PROFILE_RATE="1",
        PYSTRUMENT_SLOW_MS="0",
    )
    command = [arg.format(port=port) for arg in case.command]
    return subprocess.Popen(
        [str(BIN / "opentelemetry-instrument"), *command],
        cwd=APPS,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def app_factory(tmp_path: Path, get_free_port: Callable[[], int]) -> Iterator[Callable[[Case, str, str], str]]:
    procs: list[subprocess.Popen[str]] = []

    def start(case: Case, receiver: str, key: str) -> str:
        port = get_free_port()
        proc = start_app(case, port, receiver, key, tmp_path)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert proc.poll() is None, proc.communicate()[0]
            return httpx.get(url + "/hello", timeout=5).status_code == 200

        wait_until(up, 30, "the app to answer /hello")
        return url

    yield start
    for proc in procs:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        if "Traceback" in out or "pystrument:" in out:
            print(out)


def fire_concurrently(url: str) -> dict[str, str]:
    """One request per route, all at once, each in a trace of our own (``traceparent``); route -> trace id."""
    traces = {route: secrets.token_hex(16) for route in ROUTES}
    barrier = threading.Barrier(len(ROUTES))
    results: dict[str, Any] = {}

    def get(route: str) -> None:
        headers = {"traceparent": f"00-{traces[route]}-{secrets.token_hex(8)}-01"}
        with httpx.Client(timeout=30) as client:
            barrier.wait(10)
            results[route] = client.get(f"{url}/{route}", headers=headers)

    threads = [threading.Thread(target=get, args=(route,)) for route in ROUTES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(40)
    for route in ROUTES:
        response = results[route]
        assert response.status_code == 200, (route, response.text)
        assert response.json()["route"] == route
    return traces


def trace_spans(receiver: str, key: str, trace_id: str, route: str) -> list[dict[str, Any]]:
    """The trace's spans once its record and its route's view span are stored (function spans come later)."""

    seen: list[str] = []
    first_starved: dict[str, float] = {}

    def probe() -> list[dict[str, Any]] | None:
        r = httpx.get(f"{receiver}/api/v1/performance/records/{trace_id}", params={"project_key": key})
        if r.status_code != 200:
            return None
        spans: list[dict[str, Any]] = r.json()["data"]["spans"]
        seen[:] = [
            f"{s['name']} {s['attributes'].get('pystrument.thread', '')} "
            f"{ {k: v for k, v in s['attributes'].items() if k.startswith('pystrument.')} }"
            for s in spans
        ]
        if any(s["name"] == f"{route}_view" for s in spans):
            return spans
        # A request the sampler was starved of the GIL during (see STARVED_SAMPLES) may have too few samples for
        # its view to become a span: once its own spans have had time to arrive, take what there is.
        request = next((s for s in spans if s["kind"] == "SERVER"), None)
        if request is not None and request["attributes"].get(SAMPLES, STARVED_SAMPLES) < STARVED_SAMPLES:
            first_starved.setdefault(trace_id, time.monotonic())
            if time.monotonic() - first_starved[trace_id] > 3:
                return spans
        return None

    try:
        found: list[dict[str, Any]] = wait_until(probe, 20, f"the function spans of {route}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; spans stored: {seen}") from None
    return found


def check_trace(case: Case, route: str, spans: list[dict[str, Any]]) -> bool:
    """Check one route's trace; False when the request was starved of samples (only the no-mixing rule applies)."""
    by_id = {s["span_id"]: s for s in spans}
    (request,) = [s for s in spans if s["kind"] == "SERVER"]
    attributes = request["attributes"]
    assert attributes["pystrument.profile.interval_ms"] == 5
    assert attributes["pystrument.function_spans"] is True
    assert attributes.get("pystrument.async", False) is case.is_async(route), attributes
    # A thread's CPU clock is read; on an event loop the CPU time is estimated from the samples that caught the
    # request's task running, which a short burst among eight busy requests may escape.
    if attributes.get("pystrument.cpu_time_source") == "samples":
        assert attributes["pystrument.cpu_time_ms"] >= 0
    else:
        assert attributes["pystrument.cpu_time_ms"] > 0, attributes

    functions = [s for s in spans if s["attributes"].get("pystrument.synthetic")]
    routes_seen = {m.group(1) for s in functions if (m := ROUTE_FUNCTION.match(s["name"]))}
    assert routes_seen <= {route}, f"{route}'s trace holds functions of {sorted(routes_seen - {route})}"
    names = {s["name"]: s for s in functions}
    # The view and at least one of its sleeping or computing functions; their spans nest by call.
    worker = names.get(f"{route}_work") or names.get(f"{route}_awork")
    if f"{route}_view" not in names or worker is None:
        assert attributes[SAMPLES] < STARVED_SAMPLES, f"{route}: {sorted(names)} from {attributes[SAMPLES]} samples"
        return False  # starved: nothing mixed in, but too few samples to say more
    assert routes_seen == {route}, sorted(names)
    # A garbage collection in the middle may take most of the time of the sleep and the loop around it: it shows
    # in their place (under the calls on both sides of it).
    paused = any(name.startswith("garbage collection (generation") for name in names)
    assert {f"{route}_load", f"{route}_await", f"{route}_crunch"} & names.keys() or paused, sorted(names)

    def ancestors(span: dict[str, Any]) -> list[str]:
        chain = []
        while span.get("parent_span_id") in by_id:
            span = by_id[span["parent_span_id"]]
            chain.append(span["name"])
        return chain

    view = names[f"{route}_view"]
    assert request["name"] in ancestors(view)
    assert f"{route}_view" in ancestors(worker)
    assert view["attributes"]["code.file.path"].startswith(str(APPS))
    assert view["attributes"]["pystrument.library"] is False
    thread = view["attributes"].get("pystrument.thread", "")
    assert ("Thread" in thread or "thread" in thread) is case.in_worker_thread(route), thread
    # The SDK's own wrappers (worker hand-offs, async_to_sync adoption) never show as calls.
    assert not [s["name"] for s in functions if s["attributes"]["code.file.path"].startswith(SDK_DIR)]
    # Library chains are collapsed: a library span directly under another library span of the same lane is a call
    # into another package (Django calling asgiref), a template, what a framework dispatches to (the view), or the
    # chain's hot end: where most of its time went (at least half of it and 20 ms; a starved sampler's one late
    # sample can put that much in Starlette's send wrapper).
    for span in functions:
        parent = by_id.get(span.get("parent_span_id") or "")
        if not span["attributes"]["pystrument.library"] or parent is None or parent is request:
            continue
        if parent["attributes"].get("pystrument.thread") == span["attributes"].get("pystrument.thread"):
            assert (
                not parent["attributes"].get("pystrument.library")
                or package(span) != package(parent)
                or "pystrument.template" in span["attributes"]
                or parent["name"] in DISPATCHERS
                or span["duration"] >= max(HOT_SHARE * parent["duration"], HOT_MIN_S)
            ), (parent["name"], span["name"], span["duration"], parent["duration"])
    return True


@pytest.mark.parametrize("name", list(CASES))
def test_concurrent_requests_keep_their_own_functions(
    name: str, live_server: Any, project_key: str, app_factory: Callable[[Case, str, str], str]
) -> None:
    case = CASES[name]
    url = app_factory(case, live_server.url, project_key)
    # Warm-up: the server grows its thread pool and each thread sets up its first request. Then a pause, so that the
    # measured burst does not share the GIL with the span worker building the warm-up's function spans.
    fire_concurrently(url)
    time.sleep(1.5)
    traces = fire_concurrently(url)
    spans = {route: trace_spans(live_server.url, project_key, trace_id, route) for route, trace_id in traces.items()}
    checked = [check_trace(case, route, route_spans) for route, route_spans in spans.items()]
    requests = {route: next(s for s in route_spans if s["kind"] == "SERVER") for route, route_spans in spans.items()}
    summary = {
        route: (s["attributes"].get(SAMPLES), round(s["duration"] * 1000), s["attributes"].get(GC_PAUSE))
        for route, s in requests.items()
    }
    print(f"{name}: (samples, ms, GC pause ms) per request {summary}")
    for ok, (route, request) in zip(checked, requests.items(), strict=True):
        if not ok:  # starved of samples: a garbage collection must have stopped it for most of its time, and show
            assert request["attributes"].get(GC_PAUSE, 0) >= 0.5 * request["duration"] * 1000, (route, summary)
            assert any(s["name"].startswith("garbage collection (generation") for s in spans[route]), route
