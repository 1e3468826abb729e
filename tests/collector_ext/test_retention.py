"""Day partitions of ``spans``, retention, and the maintenance task in the app lifespan (real Postgres)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from pystrument_collector import retention
from pystrument_collector.ingest import Ingestor, ProtoTraces
from pystrument_collector.settings import Settings
from sqlalchemy import text

TODAY = date(2026, 3, 10)


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def request_body(when: datetime, n: int = 3, seed: int = 0) -> bytes:
    rnd = random.Random(seed)
    trace_id, root = rnd.randbytes(16), rnd.randbytes(8)
    start = int(when.timestamp() * 1e9)
    common = {"trace_id": trace_id, "start_time_unix_nano": start, "end_time_unix_nano": start + 10**5}
    spans = [Span(span_id=root, name="GET /", kind=Span.SPAN_KIND_SERVER, **common)]
    synthetic = [KeyValue(key="pystrument.synthetic", value=AnyValue(bool_value=True))]
    spans += [
        Span(span_id=rnd.randbytes(8), parent_span_id=root, name=f"f{i}", attributes=synthetic, **common)
        for i in range(1, n)
    ]
    rs = ResourceSpans(resource=Resource(), scope_spans=[ScopeSpans(spans=spans)])
    return ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()


async def ingest(db: Any, key: str, *bodies: bytes) -> int:
    ingestor = Ingestor()
    try:
        total = 0
        for data in bodies:
            total += (await ingestor.store(db, ProtoTraces(data), key, len(data))).inserted
        return total
    finally:
        await ingestor.close()


async def where_rows_are(db: Any) -> dict[str, int]:
    """Spans by partition: request spans' rows of ``spans``, function spans in ``function_spans``' packs."""
    async with db.session() as s:
        rows = await s.execute(
            text(
                "SELECT tableoid::regclass::text, count(*) FROM spans GROUP BY 1 UNION ALL "
                "SELECT tableoid::regclass::text, sum(n) FROM function_spans GROUP BY 1"
            )
        )
        return {name: n for name, n in rows}


async def scalar(db: Any, sql: str) -> Any:
    async with db.session() as s:
        return (await s.execute(text(sql))).scalar_one()


async def test_migration_makes_a_partitioned_table_keyed_with_start_time(db) -> None:
    strategy = "SELECT partstrat::text FROM pg_partitioned_table WHERE partrelid = 'spans'::regclass"
    assert await scalar(db, strategy) == "r"
    key = await scalar(
        db,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'spans'::regclass AND contype = 'p'",
    )
    assert key == "PRIMARY KEY (project_id, trace_id, span_id, start_time)"  # migration 0008
    async with db.engine.connect() as conn:
        assert await retention.span_partitions(conn) == {"spans_default": None}
    assert await scalar(db, "SELECT count(*) FROM pg_trigger WHERE tgname = 'projects_delete_spans'") == 1
    assert await scalar(db, "SELECT count(*) FROM pg_trigger WHERE tgname = 'projects_delete_function_spans'") == 1


async def test_partitions_are_made_ahead_and_take_over_rows_from_the_default(db, project) -> None:
    _, key = project
    later = TODAY + timedelta(days=5)
    assert await ingest(db, key, request_body(at(TODAY)), request_body(at(later), seed=1)) == 6
    assert await where_rows_are(db) == {"spans_default": 2, "function_spans_default": 4}

    report = await retention.ensure_partitions(db, TODAY)
    assert report.created == [
        retention.partition_name(TODAY + timedelta(days=d), table)
        for table in ("spans", "function_spans", "logs")
        for d in (-1, 0, 1, 2)
    ]
    assert report.moved_from_default == 2  # the request span's row and the function spans' pack
    assert await where_rows_are(db) == {
        "spans_p20260310": 1,
        "function_spans_p20260310": 2,
        "spans_default": 1,
        "function_spans_default": 2,
    }
    assert (await retention.ensure_partitions(db, TODAY)).created == []  # idempotent

    # A span sent again after its row moved to a day partition is still stored once.
    assert await ingest(db, key, request_body(at(TODAY))) == 0
    await retention.ensure_partitions(db, later, behind=0, ahead=0)
    assert await where_rows_are(db) == {
        "spans_p20260310": 1,
        "function_spans_p20260310": 2,
        "spans_p20260315": 1,
        "function_spans_p20260315": 2,
    }
    assert await ingest(db, key, request_body(at(later), seed=1), request_body(at(later), seed=2)) == 3
    assert await scalar(db, "SELECT count(*) FROM spans") == 3
    assert await scalar(db, "SELECT sum(n) FROM function_spans") == 6


async def test_retention_drops_old_days_default_rows_and_records(db, project) -> None:
    _, key = project
    old, recent = TODAY - timedelta(days=10), TODAY - timedelta(days=2)
    await retention.ensure_partitions(db, old, behind=0, ahead=0)
    await retention.ensure_partitions(db, TODAY)
    bodies = [request_body(at(old), seed=1), request_body(at(recent), seed=2), request_body(at(TODAY), seed=3)]
    bodies.append(request_body(at(TODAY - timedelta(days=30)), seed=4))  # no partition: in the default
    assert await ingest(db, key, *bodies) == 12

    assert (await retention.drop_expired(db, 0, at(TODAY))).dropped == []  # 0 keeps everything
    report = await retention.drop_expired(db, 7, at(TODAY))
    assert report.dropped == ["spans_p20260228", "function_spans_p20260228", "logs_p20260228"]
    assert (report.default_rows_deleted, report.records_deleted) == (2, 2)
    assert await where_rows_are(db) == {
        "spans_default": 1,
        "function_spans_default": 2,
        "spans_p20260310": 1,
        "function_spans_p20260310": 2,
    }
    assert await scalar(db, "SELECT count(*) FROM performance_records") == 2
    async with db.engine.connect() as conn:
        assert "spans_p20260228" not in await retention.span_partitions(conn)


async def test_a_second_server_skips_while_one_holds_the_maintenance_lock(db) -> None:
    async with db.engine.connect() as other, other.begin():
        await other.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": retention.ADVISORY_LOCK_KEY})
        report = await retention.ensure_partitions(db, TODAY)
        assert report.skipped and report.created == []
    assert (await retention.ensure_partitions(db, TODAY)).created


def test_retention_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(retention.ENV_RETENTION_DAYS, raising=False)
    assert Settings.from_env().retention_days == retention.DEFAULT_RETENTION_DAYS == 7
    monkeypatch.setenv(retention.ENV_RETENTION_DAYS, "0")
    assert Settings.from_env().retention_days == 0
    monkeypatch.setenv(retention.ENV_RETENTION_DAYS, "a week")
    with pytest.raises(ValueError, match="PYSTRUMENT_RETENTION_DAYS"):
        Settings.from_env()
    with pytest.raises(ValueError, match="keep data forever"):
        Settings(retention_days=-1).validate()


async def test_the_server_makes_todays_partition_and_runs_maintenance(live_server, project, db) -> None:
    _, key = project
    now = datetime.now(UTC)
    r = httpx.post(
        live_server.url + "/v1/traces",
        content=request_body(now),
        headers={"content-type": "application/x-protobuf", "x-project-key": key},
    )
    assert r.status_code == 200
    today = now.date()
    assert await where_rows_are(db) == {
        retention.partition_name(today): 1,
        retention.partition_name(today, "function_spans"): 2,
    }


async def test_maintenance_task_survives_a_failing_run_and_stops(db) -> None:
    maintenance = await retention.start_maintenance(db, Settings(retention_days=1), interval=0.05)
    try:
        await asyncio.wait_for(maintenance.first_run.wait(), 10)
        assert maintenance.last_report is not None
        await db.stop()  # the database goes away: runs fail, are logged, and the task carries on
        runs = maintenance.runs
        for _ in range(100):
            if maintenance.runs > runs:
                break
            await asyncio.sleep(0.05)
        assert maintenance.runs > runs and maintenance._task is not None and not maintenance._task.done()
    finally:
        await maintenance.stop()
    assert maintenance._task is None
