"""``route_rollups`` after ingest (the records trigger with 0005's histogram merge) equal a from-scratch aggregation
of the records, through OTLP and the seed's collect endpoint, with retries and overlapping exports counted once."""

from __future__ import annotations

import asyncio
import math
import random
import time
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from pystrument_collector.ingest import Ingestor, ProtoTraces
from rollup_truth import MISMATCHES
from sqlalchemy import text

ROUTES = ["/users/{id}", "/orders", "", '/a,b ("quoted")']  # "": grouped by path; odd characters in the key


def kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def traffic(n: int, seed: int, now_ns: int) -> list[Span]:
    """``n`` traces of a SERVER span and two function spans, over the last two days (across minute, hour and day
    boundaries), with durations from 50 µs to 5 s, 10% errors."""
    rnd = random.Random(seed)
    spans = []
    for i in range(n):
        trace_id, root = rnd.randbytes(16), rnd.randbytes(8)
        start = now_ns - rnd.randrange(2 * 86400 * 10**9)
        duration_ns = int(math.exp(rnd.uniform(math.log(5e4), math.log(5e9))))
        route = ROUTES[i % len(ROUTES)]
        path = f"/static/{i % 3}.css" if route == "" else route.replace("{id}", str(i))
        status = 500 if rnd.random() < 0.1 else 200
        spans.append(
            Span(
                trace_id=trace_id,
                span_id=root,
                name=f"GET {route}",
                kind=Span.SPAN_KIND_SERVER,
                start_time_unix_nano=start,
                end_time_unix_nano=start + duration_ns,
                status=Status(code=Status.STATUS_CODE_ERROR if status == 500 else Status.STATUS_CODE_UNSET),
                attributes=[
                    kv("http.request.method", "POST" if i % 5 == 0 else "GET"),
                    *([kv("http.route", route)] if route else []),
                    kv("url.path", path),
                    kv("http.response.status_code", status),
                ],
            )
        )
        for j in range(2):
            spans.append(
                Span(
                    trace_id=trace_id,
                    span_id=rnd.randbytes(8),
                    parent_span_id=root,
                    name=f"f{j}",
                    kind=Span.SPAN_KIND_INTERNAL,
                    start_time_unix_nano=start + j,
                    end_time_unix_nano=start + j + 10,
                )
            )
    return spans


def body(spans: list[Span], service: str = "shop") -> bytes:
    resource = Resource(attributes=[kv("service.name", service)])
    rs = ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])
    return ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()


async def scalar(db: Any, sql: str, **params: Any) -> Any:
    async with db.session() as s:
        return (await s.execute(text(sql), params)).scalar_one()


async def test_rollups_equal_the_records_through_both_paths_with_retries(client, db, make_project) -> None:
    project_id, key = await make_project()
    _, other_key = await make_project("other")
    spans = traffic(900, seed=1, now_ns=time.time_ns())
    ingestor = Ingestor()
    try:

        async def store(data: bytes, project_key: str = key) -> Any:
            return await ingestor.store(db, ProtoTraces(data), project_key, len(data))

        await store(body(spans[:1200]))
        await store(body(spans[:1200]))  # an exporter's retry: nothing new
        overlapping = [body(spans[900:2400]), body(spans[1500:2700]), body(spans[900:2700], "api")]
        results = await asyncio.gather(*(store(b) for b in overlapping))  # same spans, concurrently
        assert sum(r.records for r in results) == 500
        await store(body(traffic(150, seed=2, now_ns=time.time_ns()), "worker"), other_key)
        big = traffic(800, seed=3, now_ns=time.time_ns())  # 2,400 spans: more than one chunk in one request
        assert (await store(body(big))).records == 800
    finally:
        await ingestor.close()

    reports = []
    for i in range(12):
        report = {
            "trace_id": f"legacy-{i}",
            "timestamp": time.time() - i * 1800,
            "request_info": {"method": "GET", "path": f"/legacy/{i % 3}", "status_code": 503 if i % 4 == 0 else 200},
            "performance_metrics": {"total_duration": 0.001 * (i + 1) ** 2},
            "function_calls": [{"function": "handler", "duration": 0.0005}],
        }
        reports.append(report)
        for _ in range(2 if i % 3 == 0 else 1):  # some sent twice: the second is absorbed
            r = await client.post("/api/v1/performance/collect", json=report, headers={"x-project-key": key})
            assert r.status_code == 200, r.text

    async with db.session() as s:  # a writer outside the collector
        await s.execute(
            text(
                "INSERT INTO performance_records (trace_id, span_id, project_id, service_name, method, route, path, "
                "status_code, duration, memory, is_error, timestamp) VALUES ('ff', '01', :p, 'svc', 'GET', "
                "'/orders', '/orders', 200, 0.25, '{}', false, now()), ('ff', '02', :p, 'svc', 'GET', '/orders', "
                "'/orders', 200, 0.5, '{}', true, now())"
            ),
            {"p": project_id},
        )

    records = 900 + 150 + 800 + 12 + 2
    assert await scalar(db, "SELECT count(*) FROM performance_records") == records
    assert await scalar(db, "SELECT count(*) FROM performance_records WHERE route = '' AND path LIKE '/static/%'") > 0
    assert await scalar(db, "SELECT sum(count) FROM route_rollups WHERE bucket_seconds = 60 AND all_routes") == records
    assert await scalar(db, "SELECT sum(count) FROM route_rollups WHERE bucket_seconds = 86400") == 2 * records
    assert await scalar(db, MISMATCHES) == 0
