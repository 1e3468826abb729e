"""Planted shop traces for the aggregated views' browser tests, sent over real OTLP/HTTP to a live server.

Each ``GET /checkout`` request: ``shop.views.checkout`` -> ``shop.cart.load_cart`` (-> ``shop.db.fetch_row`` x4),
``shop.pricing.recalculate`` (-> ``shop.pricing.tax_rate`` x3), ``jinja2.environment.render`` (library), and a DB
span under the request. In a *slow* request ``shop.pricing.recalculate`` takes 200 ms instead of 20 ms (the planted
slow function). Durations in ms below; the request lasts 1 + view + 1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

SLOW_FN = "shop.pricing.recalculate"
SLOW_FILE = "/srv/shop/pricing.py"
MS = 1_000_000


@dataclass
class Sent:
    trace_id: str
    slow: bool
    duration_ms: float


def _fn(
    tracer: Any, ctx: Any, name: str, file: str, start: int, dur_ms: float, self_ms: float, library: bool = False
) -> Any:
    from opentelemetry import trace

    span = tracer.start_span(
        name,
        context=ctx,
        kind=trace.SpanKind.INTERNAL,
        start_time=start,
        attributes={
            "pystrument.synthetic": True,
            "code.function.name": name,
            "code.file.path": file,
            "code.line.number": 10,
            "pystrument.self_time_ms": self_ms,
            "pystrument.library": library,
            "pystrument.samples": max(1, int(dur_ms)),
        },
    )
    return span


def send_checkouts(base_url: str, project_key: str, starts_ns: list[int], slow: list[bool]) -> list[Sent]:
    """One ``GET /checkout`` per start time (ns since the epoch); ``slow[i]`` plants the slow recalculation."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("flame-views-test")
    sent: list[Sent] = []
    for t0, is_slow in zip(starts_ns, slow, strict=True):
        recalc_ms = 200.0 if is_slow else 20.0
        view_ms = 1 + 20 + 1 + recalc_ms + 1 + 15 + 1
        request = tracer.start_span(
            "GET /checkout",
            kind=trace.SpanKind.SERVER,
            start_time=t0,
            attributes={
                "http.request.method": "GET",
                "url.path": "/checkout",
                "http.route": "/checkout",
                "http.response.status_code": 200,
            },
        )
        ctx = trace.set_span_in_context(request)
        at = t0 + 1 * MS
        view = _fn(tracer, ctx, "shop.views.checkout", "/srv/shop/views.py", at, view_ms, 3)
        vctx = trace.set_span_in_context(view)
        at += 1 * MS
        cart = _fn(tracer, vctx, "shop.cart.load_cart", "/srv/shop/cart.py", at, 20, 4)
        for k in range(4):
            row = _fn(
                tracer,
                trace.set_span_in_context(cart),
                "shop.db.fetch_row",
                "/srv/shop/db.py",
                at + (1 + k * 4) * MS,
                4,
                4,
            )
            row.end(end_time=at + (5 + k * 4) * MS)
        cart.end(end_time=at + 20 * MS)
        at += 21 * MS
        recalc = _fn(tracer, vctx, SLOW_FN, SLOW_FILE, at, recalc_ms, recalc_ms - 6)
        for k in range(3):
            tax = _fn(
                tracer,
                trace.set_span_in_context(recalc),
                "shop.pricing.tax_rate",
                SLOW_FILE,
                at + (1 + 2 * k) * MS,
                2,
                2,
            )
            tax.end(end_time=at + (3 + 2 * k) * MS)
        recalc.end(end_time=at + int(recalc_ms * MS))
        at += int((recalc_ms + 1) * MS)
        render = _fn(tracer, vctx, "jinja2.environment.render", "/venv/jinja2/environment.py", at, 15, 15, library=True)
        render.end(end_time=at + 15 * MS)
        db = tracer.start_span("SELECT cart", context=ctx, kind=trace.SpanKind.CLIENT, start_time=t0 + 3 * MS,
                               attributes={"db.system": "sqlite", "db.statement": "SELECT * FROM cart"})  # fmt: skip
        db.end(end_time=t0 + 5 * MS)
        view.end(end_time=t0 + int((1 + view_ms) * MS))
        request.end(end_time=t0 + int((2 + view_ms) * MS))
        sent.append(Sent(format(request.get_span_context().trace_id, "032x"), is_slow, 2 + view_ms))
    provider.force_flush()
    spans = memory.get_finished_spans()
    exporter = OTLPSpanExporter(endpoint=base_url + "/v1/traces", headers={"x-project-key": project_key}, timeout=30)
    try:
        for i in range(0, len(spans), 400):
            assert exporter.export(spans[i : i + 400]) is SpanExportResult.SUCCESS, "OTLP export failed"
    finally:
        exporter.shutdown()
        provider.shutdown()
    return sent


def new_project(base_url: str, name: str) -> tuple[int, str]:
    """Creates a project through the API; returns its id and key."""
    created = httpx.post(base_url + "/api/v1/projects", json={"name": name, "framework": "flask"}, timeout=10).json()
    key = created["data"]["project_key"]
    listed = httpx.get(base_url + "/api/v1/projects", params={"size": 100}, timeout=10).json()["data"]["projects"]
    return int(next(p["id"] for p in listed if p["project_key"] == key)), str(key)


def wait_for_records(base_url: str, key: str, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    total = -1
    while time.monotonic() < deadline:
        body = httpx.get(
            base_url + "/api/v1/performance/records", params={"project_key": key, "size": 1}, timeout=10
        ).json()
        total = body["data"]["total"]
        if total >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"only {total} of {count} records arrived in {timeout} s")
