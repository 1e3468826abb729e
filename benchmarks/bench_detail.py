"""Record-detail latency on a 2,000-span trace: the current endpoint side by side with the former ORM version.

One run, one Postgres (embedded in a temp dir, or ``PYSTRUMENT_DATABASE_URL``; a fresh database is made on it):

1. the trace of ``tests/e2e/test_ui_big_trace.py``: one request span, 1,700 function spans nested up to 14 deep,
   299 DB spans parented to the request span (the server nests them under the functions), built with the
   OpenTelemetry SDK and posted to the real receiver (``POST /v1/traces``, protobuf) of the real app;
2. ``GET /api/v1/performance/records/{trace_id}`` through the real app (``create_app``, lifespan run) with an
   in-process ASGI client, and the same trace through ``/bench/legacy/{trace_id}``: a handler registered on the
   same app that runs the former implementation (ORM entities, ``place_spans`` on them, per-span structs), kept
   here as the baseline. Calls alternate between the two, sequentially; p50/p95/p99 in milliseconds. Both
   answers are checked to be the same JSON document.

Unknown arguments are ignored (``nox -s bench -- …`` passes the same ones to every script); positional words
select benchmarks: this one runs when there are none or one of them is ``detail``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

SPANS = 2000
FUNCTIONS = 1700


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("select", nargs="*", help="benchmark names to run (this one is 'detail')")
    parser.add_argument("--runs", type=int, default=100, help="timed calls per implementation (default 100)")
    parser.add_argument("--quick", action="store_true", help="30 runs")
    args, _unknown = parser.parse_known_args(argv)
    if args.quick:
        args.runs = min(args.runs, 30)
    return args


# -- the trace ----------------------------------------------------------------------------------------------


def big_trace() -> bytes:
    """The 2,000-span trace of ``tests/e2e/test_ui_big_trace.py`` as an OTLP/HTTP protobuf body."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    rng = random.Random(7)
    provider = TracerProvider(resource=Resource.create({"service.name": "big"}))
    tracer = provider.get_tracer("bench-detail")
    ms = 1_000_000
    t0 = time.time_ns() - 5_000 * ms
    total = 2_400 * ms
    attributes = {"http.request.method": "GET", "url.path": "/reports/7", "http.route": "/reports/{id}"}
    root = tracer.start_span(
        "GET /reports/{id}",
        kind=trace.SpanKind.SERVER,
        start_time=t0,
        attributes={**attributes, "http.response.status_code": 200},
    )
    finished: list[tuple[Any, int | None]] = []
    queue = [(root, t0, t0 + total, 0)]
    leaves = []
    made = 0
    while queue and made < FUNCTIONS:
        parent, start, end, depth = queue.pop(0)
        kids = rng.randint(1, 4) if depth < 14 else 0
        if kids == 0:
            leaves.append((start, end))
            continue
        width = (end - start) // kids
        for k in range(kids):
            if made >= FUNCTIONS:
                break
            s = start + k * width + width // 20
            e = s + int(width * rng.uniform(0.5, 0.9))
            name = f"app.module{depth}.func_{rng.randint(0, 60)}"
            span = tracer.start_span(
                name,
                context=trace.set_span_in_context(parent),
                start_time=s,
                attributes={
                    "pystrument.synthetic": True,
                    "code.function.name": name,
                    "code.file.path": "/srv/app.py",
                    "code.line.number": 10 + k,
                    "pystrument.library": rng.random() < 0.2,
                    "pystrument.self_time_ms": (e - s) / ms / 3,
                },
            )
            made += 1
            finished.append((span, e))
            queue.append((span, s, e, depth + 1))
    leaves.extend((s, e) for _, s, e, _ in queue)
    for i in range(SPANS - 1 - FUNCTIONS):
        start, end = leaves[i % len(leaves)]
        s = start + (end - start) // 4
        db = tracer.start_span(
            "SELECT",
            context=trace.set_span_in_context(root),
            kind=trace.SpanKind.CLIENT,
            start_time=s,
            attributes={"db.system": "postgresql", "db.statement": f"SELECT {i}"},
        )
        db.end(end_time=s + (end - start) // 3)
        finished.append((db, None))
    for span, end_ns in finished:
        if end_ns is not None:
            span.end(end_time=end_ns)
    root.end(end_time=t0 + total)
    spans = [s for s, _ in finished] + [root]
    provider.shutdown()
    return bytes(encode_spans(spans).SerializeToString())


# -- the former implementation, the baseline ----------------------------------------------------------------


def _legacy_place_spans(spans: Iterable[Any]) -> dict[str, tuple[str | None, int]]:
    """``place_spans`` as it was: datetime arithmetic on ORM entities."""

    def end_of(span: Any) -> datetime:
        return span.start_time + timedelta(seconds=span.duration)

    def slack_of(parent: Any) -> timedelta:
        value = parent.attributes.get("pystrument.profile.interval_ms")
        seconds = value / 1000.0 if isinstance(value, int | float) and 0 < value <= 1000 else 0.001
        return timedelta(seconds=seconds)

    def overlap(a: Any, b: Any) -> float:
        lo, hi = max(a.start_time, b.start_time), min(end_of(a), end_of(b))
        return max((hi - lo).total_seconds(), 0.0)

    def enclosing(child: Any, parent: Any, functions_under: dict[str, list[Any]]) -> Any:
        slack = slack_of(parent)
        start, end = child.start_time, end_of(child)
        found = None
        node_id = parent.span_id
        for _ in range(10_000):
            candidates = [
                f
                for f in functions_under.get(node_id, ())
                if f.span_id != child.span_id and f.start_time - slack <= start and end_of(f) + slack >= end
            ]
            if not candidates:
                break
            found = max(candidates, key=lambda f: (overlap(f, child), -f.duration))
            node_id = found.span_id
        return found

    by_id = {s.span_id: s for s in spans}
    functions_under: dict[str, list[Any]] = {}
    for s in by_id.values():
        if s.synthetic and s.parent_span_id:
            functions_under.setdefault(s.parent_span_id, []).append(s)
    display_parent: dict[str, str | None] = {}
    for s in by_id.values():
        parent = by_id.get(s.parent_span_id) if s.parent_span_id else None
        target = s.parent_span_id
        if not s.synthetic and parent is not None and parent.span_id in functions_under:
            found = enclosing(s, parent, functions_under)
            if found is not None:
                target = found.span_id
        display_parent[s.span_id] = target
    placements = {}
    for span_id, target in display_parent.items():
        depth, seen, node = 0, {span_id}, target
        while node is not None and node in by_id and node not in seen:
            seen.add(node)
            depth += 1
            node = display_parent.get(node)
        placements[span_id] = (target, depth)
    return placements


async def _legacy_detail(session: Any, project_key: str, trace_id: str) -> Any:
    """The record-detail service as it was: ORM entities for the record and every span."""
    from pystrument_analysis.api import schemas
    from pystrument_analysis.api.errors import NotFound
    from pystrument_analysis.api.services import span_store
    from pystrument_analysis.api.services._common import project_by_key, utc
    from pystrument_collector.db.models import PerformanceRecord
    from sqlalchemy import select

    project = await project_by_key(session, project_key)
    records = list(
        await session.scalars(
            select(PerformanceRecord)
            .where(PerformanceRecord.project_id == project.id, PerformanceRecord.trace_id == trace_id)
            .order_by(PerformanceRecord.timestamp, PerformanceRecord.span_id)
        )
    )
    if not records:
        raise NotFound(f"trace not found in this project: {trace_id!r}")
    record = records[0]
    spans = await span_store.trace_spans(session, project.id, trace_id)  # rows and packed function spans
    placements = _legacy_place_spans(spans)
    origin = min([record.timestamp, *(s.start_time for s in spans)])
    items = [
        schemas.SpanItem(
            span_id=s.span_id,
            parent_span_id=s.parent_span_id,
            display_parent_span_id=placements[s.span_id][0],
            name=s.name,
            kind=s.kind,
            start_time=utc(s.start_time),
            offset=(s.start_time - origin).total_seconds(),
            duration=s.duration,
            depth=placements[s.span_id][1],
            status_code=s.status_code,
            status_message=s.status_message,
            service_name=s.service_name,
            synthetic=s.synthetic,
            attributes=s.attributes,
            events=s.events,
        )
        for s in spans
    ]
    items.sort(key=lambda i: (i.start_time, i.depth, -i.duration))
    full = schemas.RecordDetailItem(
        trace_id=record.trace_id,
        request_path=record.path,
        duration=record.duration,
        status_code=record.status_code,
        timestamp=utc(record.timestamp),
        span_id=record.span_id,
        method=record.method,
        route=record.route,
        service_name=record.service_name,
        cpu_time=record.cpu_time,
        is_error=record.is_error,
        memory=record.memory,
    )
    return schemas.RecordDetailResponse(data=schemas.RecordDetail(record=full, spans=items))


def legacy_handler() -> Any:
    from litestar import get
    from litestar.di import NamedDependency
    from pystrument_analysis.api import schemas
    from pystrument_collector.db import Database

    names = {"NamedDependency": NamedDependency, "Database": Database, "schemas": schemas}

    @get("/bench/legacy/{trace_id:str}", include_in_schema=False, signature_namespace=names)
    async def legacy(db: NamedDependency[Database], trace_id: str, project_key: str) -> schemas.RecordDetailResponse:
        async with db.session() as session:
            return await _legacy_detail(session, project_key, trace_id)

    return legacy


# -- measuring ----------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))]


async def prepare(admin_url: str) -> str:
    """A fresh, migrated database with span partitions around today; returns its URL."""
    import asyncpg
    from pystrument_collector.db import Database
    from pystrument_collector.retention import ensure_partitions
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    name = f"bench_detail_{uuid.uuid4().hex[:10]}"
    engine = create_async_engine(admin_url)
    _, params = engine.dialect.create_connect_args(engine.url)
    conn = await asyncpg.connect(**params)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    db = Database(url)
    await db.start()
    try:
        await db.migrate()
        await ensure_partitions(db, behind=2, ahead=1)
    finally:
        await db.stop()
    return url


async def run(admin_url: str, args: argparse.Namespace) -> None:
    from litestar.testing import AsyncTestClient
    from pystrument_analysis.app import create_app
    from pystrument_collector.settings import Settings

    print(f"bench_detail: one {SPANS}-span trace ({FUNCTIONS} function spans), {args.runs} calls each")
    url = await prepare(admin_url)
    app = create_app(Settings(database_url=url, retention_days=0), api_token=None)
    app.register(legacy_handler())
    body = big_trace()
    async with AsyncTestClient(app=app, timeout=120) as client:
        key = (await client.post("/api/v1/projects", json={"name": "big", "framework": "flask"})).json()["data"][
            "project_key"
        ]
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        request = ExportTraceServiceRequest.FromString(body)
        trace_id = request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
        sent = await client.post(
            "/v1/traces", content=body, headers={"content-type": "application/x-protobuf", "x-project-key": key}
        )
        assert sent.status_code == 200, sent.text
        paths = {
            "current": f"/api/v1/performance/records/{trace_id}",
            "former (ORM)": f"/bench/legacy/{trace_id}",
        }
        params = {"project_key": key}
        deadline = time.monotonic() + 60
        while True:
            answer = await client.get(paths["current"], params=params)
            if answer.status_code == 200 and len(answer.json()["data"]["spans"]) == SPANS:
                break
            assert time.monotonic() < deadline, f"the {SPANS} spans were not all stored: {answer.text[:200]}"
            await asyncio.sleep(0.2)
        documents = {label: (await client.get(path, params=params)).json() for label, path in paths.items()}
        assert documents["current"] == documents["former (ORM)"], "the two implementations answer differently"
        size = len(answer.content)
        for _ in range(5):  # warm-up
            for path in paths.values():
                assert (await client.get(path, params=params)).status_code == 200
        times: dict[str, list[float]] = {label: [] for label in paths}
        load_before = os.getloadavg()[0]
        for _ in range(args.runs):
            for label, path in paths.items():
                started = time.perf_counter()
                response = await client.get(path, params=params)
                times[label].append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
        load_after = os.getloadavg()[0]
    print(f"  GET record detail, {size / 1e6:.2f} MB of JSON, in-process ASGI client, sequential:")
    for label, t in times.items():
        print(
            f"  {label:<14} p50 {statistics.median(t):7.1f} ms  p95 {percentile(t, 0.95):7.1f} ms"
            f"  p99 {percentile(t, 0.99):7.1f} ms"
        )
    ratio = statistics.median(times["former (ORM)"]) / statistics.median(times["current"])
    print(f"  former / current at the median: {ratio:.1f}x")
    print(f"  (load average {load_before:.1f} before, {load_after:.1f} after; {os.cpu_count()} CPUs)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.select and "detail" not in args.select:
        print("bench_detail: not selected")
        return 0
    url = os.environ.get("PYSTRUMENT_DATABASE_URL")
    if url:
        asyncio.run(run(url, args))
        return 0
    from pystrument_collector.db.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="pystrument-bench-detail-") as tmp:
        os.chmod(tmp, 0o755)  # pgserver runs Postgres as its own user when we are root
        embedded = EmbeddedPostgres(Path(tmp))
        admin = embedded.start()
        try:
            asyncio.run(run(admin, args))
        finally:
            embedded.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
