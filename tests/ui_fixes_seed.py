"""Data for the issue-17 UI tests (tests/e2e/test_ui_fixes_*.py), sent the way apps send it: OTLP/HTTP spans
through the real exporter into the live server. Two services, three routes, failed requests, and an N+1 route
whose handler calls ``shop.orders.fetch_order_items`` 25 times per request, each call running the same query."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

N_PLUS_ONE = 25
FETCH_FN = "shop.orders.fetch_order_items"
FETCH_FILE = "/srv/shop/orders.py"
N1_QUERY = "SELECT product_id, qty, unit_price FROM order_items WHERE order_id = ?"
PRODUCT_QUERY = "SELECT id, name, price FROM products WHERE id = ?"


@dataclass
class Seeded:
    key: str
    project_id: int
    traces: dict[str, list[str]] = field(default_factory=dict)  # route -> trace ids
    by_service: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def create_project(base: str, name: str) -> tuple[str, int]:
    r = httpx.post(base + "/api/v1/projects", json={"name": name, "framework": "flask"})
    assert r.status_code == 200, r.text
    key = r.json()["data"]["project_key"]
    listed = httpx.get(base + "/api/v1/projects", params={"size": 100}).json()["data"]["projects"]
    [pid] = [p["id"] for p in listed if p["project_key"] == key]
    return key, pid


def _provider(service: str) -> tuple[Any, Any]:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


def _fn_attrs(name: str, file: str, line: int, self_ms: float) -> dict[str, Any]:
    return {
        "pystrument.synthetic": True,
        "code.function.name": name,
        "code.file.path": file,
        "code.line.number": line,
        "pystrument.self_time_ms": self_ms,
        "pystrument.library": False,
        "pystrument.samples": 3,
    }


def seed(base: str, name: str = "Shop", *, requests_per_route: int = 8, spread_s: float = 240.0) -> Seeded:
    """Sends the traces (ending about now, spread over ``spread_s`` seconds) and waits until all are stored."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    key, pid = create_project(base, name)
    out = Seeded(key=key, project_id=pid)
    ms = 1_000_000
    now = time.time_ns()
    routes = [
        ("shop-web", "GET", "/orders", "/orders", 0),
        ("shop-web", "GET", "/products/{id}", "/products/7", 1),
        ("catalog-api", "GET", "/catalog/search", "/catalog/search", 2),
    ]
    total = 0
    for service, method, route, path, kind in routes:
        provider, memory = _provider(service)
        tracer = provider.get_tracer("ui-fixes")
        for i in range(requests_per_route):
            t0 = now - int((spread_s * (i + 1) / (requests_per_route + 1) + kind * 3) * 1e9)
            failed = kind == 1 and i % 4 == 0
            duration_ms = 40 + 10 * i + (60 if kind == 0 else 0)
            request = tracer.start_span(
                f"{method} {route}",
                kind=trace.SpanKind.SERVER,
                start_time=t0,
                attributes={
                    "http.request.method": method,
                    "url.path": path,
                    "http.route": route,
                    "http.response.status_code": 500 if failed else 200,
                },
            )
            ctx = trace.set_span_in_context(request)
            handler = tracer.start_span(
                f"shop.views.{route.strip('/').split('/')[0]}",
                context=ctx,
                start_time=t0 + 1 * ms,
                attributes=_fn_attrs(f"shop.views.{route.strip('/').split('/')[0]}", "/srv/shop/views.py", 10, 5.0),
            )
            if kind == 0:  # the N+1: one call (and one identical query) per order
                step = (duration_ms - 10) * ms // N_PLUS_ONE
                for n in range(N_PLUS_ONE):
                    s0 = t0 + 2 * ms + n * step
                    fn = tracer.start_span(
                        FETCH_FN,
                        context=trace.set_span_in_context(handler),
                        start_time=s0,
                        attributes=_fn_attrs(FETCH_FN, FETCH_FILE, 99, 0.5),
                    )
                    db = tracer.start_span(
                        "SELECT",
                        context=ctx,
                        kind=trace.SpanKind.CLIENT,
                        start_time=s0 + ms // 10,
                        attributes={"db.system": "sqlite", "db.statement": N1_QUERY},
                    )
                    db.end(end_time=s0 + step - ms // 5)
                    # As the SDK does: the call claims the query it started (hot functions count them).
                    fn.set_attribute("pystrument.child_span_ids", [format(db.get_span_context().span_id, "016x")])
                    fn.end(end_time=s0 + step - ms // 10)
            else:
                db = tracer.start_span(
                    "SELECT",
                    context=ctx,
                    kind=trace.SpanKind.CLIENT,
                    start_time=t0 + 3 * ms,
                    attributes={"db.system": "sqlite", "db.statement": PRODUCT_QUERY},
                )
                db.end(end_time=t0 + 8 * ms)
            handler.end(end_time=t0 + (duration_ms - 2) * ms)
            if failed:
                request.set_status(trace.Status(trace.StatusCode.ERROR))
            request.end(end_time=t0 + duration_ms * ms)
            trace_id = format(request.get_span_context().trace_id, "032x")
            out.traces.setdefault(route, []).append(trace_id)
            if failed:
                out.errors.append(trace_id)
            out.by_service[service] = out.by_service.get(service, 0) + 1
            total += 1
        provider.force_flush()
        exporter = OTLPSpanExporter(endpoint=base + "/v1/traces", headers={"x-project-key": key}, timeout=10)
        try:
            assert exporter.export(memory.get_finished_spans()) is SpanExportResult.SUCCESS
        finally:
            exporter.shutdown()
            provider.shutdown()

    deadline = time.monotonic() + 30
    while True:
        got = httpx.get(base + "/api/v1/performance/records", params={"project_key": key, "size": 1}).json()
        if got["data"]["total"] >= total:
            break
        assert time.monotonic() < deadline, f"only {got['data']['total']} of {total} requests stored"
        time.sleep(0.2)
    return out


LABELS = {
    "en": {"monitor": "Monitor", "requests": "requests"},
    "zh": {"monitor": "性能监控", "requests": "个请求"},
}


def open_page(browser: Any, lang: str, width: int = 1366, height: int = 900, dark: bool = False) -> Any:
    """A page in ``lang`` (the UI's own switch, remembered in localStorage) that records uncaught errors."""
    context = browser.new_context(
        viewport={"width": width, "height": height},
        locale="zh-CN" if lang == "zh" else "en-US",
        color_scheme="dark" if dark else "light",
    )
    context.add_init_script(f"localStorage.setItem('pystrument.locale', '{lang}')")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))  # type: ignore[attr-defined]
    return page


def no_errors(page: Any) -> None:
    assert not page.errors, f"uncaught errors in the page: {page.errors}"


def analyse(base: str, key: str, trace_id: str, language: str) -> str:
    r = httpx.post(
        base + "/api/v1/analysis/trigger",
        json={"trace_id": trace_id, "project_key": key, "language": language, "analysis_type": "manual"},
    )
    assert r.status_code == 200, r.text
    analysis_id = r.json()["data"]["analysis_id"]
    deadline = time.monotonic() + 30
    while True:
        got = httpx.get(base + f"/api/v1/analysis/results/{analysis_id}", params={"project_key": key}).json()
        if got["data"]["status"] in ("completed", "failed"):
            assert got["data"]["status"] == "completed", got
            return str(analysis_id)
        assert time.monotonic() < deadline, got
        time.sleep(0.2)
