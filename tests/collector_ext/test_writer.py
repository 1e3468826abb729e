"""The COPY writer on real Postgres: idempotent under retransmission and concurrency, all-or-nothing per request."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from pystrument_collector.ingest import Ingestor, Overloaded, PayloadError, ProtoTraces, UnknownProject, _service
from pystrument_collector.ingest import _writer as writer_module
from sqlalchemy import text

START_NS = 1_700_000_000_000_000_000


def make_spans(n: int, seed: int = 0, traces: int = 1) -> list[Span]:
    """``n`` spans over ``traces`` traces; the first span of each trace is a SERVER request span."""
    rnd = random.Random(seed)
    trace_ids = [rnd.randbytes(16) for _ in range(traces)]
    spans = []
    for i in range(n):
        attrs = [
            KeyValue(key="code.function.name", value=AnyValue(string_value=f"mod.f{i % 50}")),
            KeyValue(key="pystrument.self_time_ms", value=AnyValue(double_value=rnd.random())),
        ]
        spans.append(
            Span(
                trace_id=trace_ids[i % traces],
                span_id=rnd.randbytes(8),
                parent_span_id=b"" if i < traces else b"\x01" * 8,
                name=f"f{i}",
                kind=Span.SPAN_KIND_SERVER if i < traces else Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=START_NS + i * 1000,
                end_time_unix_nano=START_NS + i * 1000 + 500,
                attributes=attrs,
            )
        )
    return spans


def body(spans: list[Span]) -> bytes:
    rs = ResourceSpans(resource=Resource(), scope_spans=[ScopeSpans(spans=spans)])
    return ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()


async def count(db: Any, table: str = "spans") -> int:
    async with db.session() as s:
        return int((await s.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def store(ingestor: Ingestor, db: Any, key: str, data: bytes) -> Any:
    return await ingestor.store(db, ProtoTraces(data), key, len(data))


async def test_retransmissions_are_absorbed_and_only_new_spans_count(db, project) -> None:
    _, key = project
    spans = make_spans(15)
    ingestor = Ingestor()
    try:
        first = await store(ingestor, db, key, body(spans[:10]))
        assert (first.received, first.inserted, first.records) == (10, 10, 1)
        again = await store(ingestor, db, key, body(spans[5:]))  # 5 seen, 5 new: the COPY fails, the fallback skips
        assert (again.received, again.inserted, again.duplicates) == (10, 5, 5)
        twice = await store(ingestor, db, key, body([spans[0], spans[0]]))
        assert (twice.inserted, twice.duplicates) == (0, 2)
        assert await count(db) == 15 and await count(db, "performance_records") == 1
    finally:
        await ingestor.close()


async def test_concurrent_overlapping_exports_store_each_span_once(db, project) -> None:
    _, key = project
    spans = make_spans(3000, seed=1, traces=30)  # more than one chunk per request
    a, b = body(spans[:2500]), body(spans[500:])
    ingestor = Ingestor()
    try:
        results = await asyncio.gather(*(store(ingestor, db, key, data) for data in (a, b, a, b, a)))
    finally:
        await ingestor.close()
    assert await count(db) == 3000
    assert sum(r.inserted for r in results) == 3000
    assert sum(r.records for r in results) == 30 == await count(db, "performance_records")


async def test_a_bad_span_in_the_last_chunk_stores_nothing(db, project) -> None:
    _, key = project
    spans = make_spans(_service.CHUNK_SPANS * 2 + 10, seed=2)
    marker = KeyValue(key="marker", value=AnyValue(string_value="last span"))
    spans[-1].attributes.append(marker)
    data = body(spans)
    good = marker.SerializeToString()
    bad = good[:-3] + b"\xff\xfe\xfd"  # same length, not UTF-8: found only when the last chunk is mapped
    assert data.count(good) == 1
    ingestor = Ingestor()
    try:
        with pytest.raises(PayloadError, match="UTF-8"):
            await store(ingestor, db, key, data.replace(good, bad))
        assert await count(db) == 0 and await count(db, "performance_records") == 0
        # A large body is mapped chunk by chunk in a worker thread while the previous chunk is written.
        result = await ingestor.store(db, ProtoTraces(data), key, _service.THREAD_THRESHOLD_BYTES)
        assert result.inserted == len(spans) == await count(db)
    finally:
        await ingestor.close()


async def test_deleted_project_cascades_and_its_cached_key_is_refused(db, project) -> None:
    project_id, key = project
    ingestor = Ingestor()
    try:
        await store(ingestor, db, key, body(make_spans(20, seed=3, traces=2)))
        assert await count(db) == 20
        async with db.session() as s:
            await s.execute(text("DELETE FROM projects WHERE id = :i"), {"i": project_id})
        assert await count(db) == 0 and await count(db, "performance_records") == 0  # trigger and foreign key
        # The key is still cached (10 s), but the writer's project lock finds it gone: 401, nothing stored.
        with pytest.raises(UnknownProject):
            await store(ingestor, db, key, body([s for s in make_spans(5, seed=4) if s.kind != Span.SPAN_KIND_SERVER]))
        assert await count(db) == 0
    finally:
        await ingestor.close()


async def test_all_write_connections_busy_is_overloaded(db, project, monkeypatch) -> None:
    _, key = project
    monkeypatch.setattr(writer_module, "ACQUIRE_TIMEOUT_SECONDS", 0.2)
    ingestor = Ingestor(writer_module.Writer(max_connections=1))
    try:
        pool = await ingestor.writer._pool_for(db)
        held = await pool.acquire()
        try:
            with pytest.raises(Overloaded, match="busy") as info:
                await store(ingestor, db, key, body(make_spans(3, seed=5)))
            assert info.value.status == 503 and info.value.retry_after > 0
        finally:
            await pool.release(held)
        assert (await store(ingestor, db, key, body(make_spans(3, seed=5)))).inserted == 3
    finally:
        await ingestor.close()
