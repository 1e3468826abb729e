"""Migration 0008 upgrades a database holding data from 0007 in place: every row kept, the new keys enforced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

DAY = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)

SEED = [
    "INSERT INTO projects (id, project_key, name, description, framework, status) VALUES "
    "(1, 'proj_a', 'a', '', 'flask', 'active'), (2, 'proj_b', 'b', '', 'flask', 'active')",
    # one day partition (as retention makes them) and the default one
    "CREATE TABLE spans_p20260310 (LIKE spans)",
    "ALTER TABLE spans ATTACH PARTITION spans_p20260310 "
    "FOR VALUES FROM ('2026-03-10 00:00:00+00') TO ('2026-03-11 00:00:00+00')",
]

SPAN = (
    "INSERT INTO spans (trace_id, span_id, project_id, parent_span_id, name, kind, start_time, duration, status_code, "
    "status_message, service_name, synthetic, attributes, events) VALUES "
    "(:t, :s, :p, NULL, 'GET /', 'SERVER', :st, 0.1, 0, '', 'svc', false, '{\"http.route\": \"/\"}', '[]')"
)
RECORD = (
    "INSERT INTO performance_records (trace_id, span_id, project_id, service_name, method, route, path, status_code, "
    "duration, cpu_time, memory, is_error, timestamp) VALUES (:t, :s, :p, 'svc', 'GET', '/', '/', 200, 0.1, NULL, "
    "'{}', false, :st)"
)
ANALYSIS = (
    "INSERT INTO analyses (id, project_id, trace_id, analysis_type, ai_service, status, result, error, attempts) "
    "VALUES (:i, :p, :t, 'manual', 'builtin', 'completed', '{}', '', 1)"
)


async def _counts(conn: Any) -> dict[str, int]:
    out = {}
    for table in ("spans", "spans_p20260310", "spans_default", "performance_records", "analyses", "route_rollups"):
        out[table] = int(await conn.scalar(text(f"SELECT count(*) FROM {table}")))
    return out


async def _primary_key(conn: Any, table: str) -> str:
    return str(
        await conn.scalar(
            text(
                f"SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = '{table}'::regclass "
                "AND contype = 'p'"
            )
        )
    )


async def test_0008_upgrades_a_0007_database_with_data_in_place(database_url: str) -> None:
    from pystrument_collector.db import Database
    from pystrument_collector.db.migrate import upgrade

    db = Database(database_url)
    await db.start()
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(upgrade, "0007")
        async with db.engine.begin() as conn:
            for sql in SEED:
                await conn.execute(text(sql))
            for i in range(20):
                project = 1 + i % 2
                start = DAY + timedelta(minutes=i) if i < 10 else DAY + timedelta(days=5, minutes=i)
                trace = f"{i:032x}"
                await conn.execute(text(SPAN), {"t": trace, "s": f"{i:016x}", "p": project, "st": start})
                await conn.execute(text(RECORD), {"t": trace, "s": f"{i:016x}", "p": project, "st": start})
                await conn.execute(text(ANALYSIS), {"i": f"analysis_{i}", "p": project, "t": trace})
            before = await _counts(conn)
            assert await _primary_key(conn, "spans") == "PRIMARY KEY (trace_id, span_id, start_time)"

        async with db.engine.begin() as conn:
            await conn.run_sync(upgrade, "0008")  # this migration alone (later ones may add rows, e.g. 0010's)

        async with db.engine.begin() as conn:
            assert await _counts(conn) == before
            assert before["spans_p20260310"] == 10 and before["spans_default"] == 10
            assert await conn.scalar(text("SELECT version_num FROM alembic_version")) == "0008"
            assert await _primary_key(conn, "spans") == "PRIMARY KEY (project_id, trace_id, span_id, start_time)"
            assert await _primary_key(conn, "spans_p20260310") == (
                "PRIMARY KEY (project_id, trace_id, span_id, start_time)"
            )
            assert await _primary_key(conn, "performance_records") == "PRIMARY KEY (project_id, trace_id, span_id)"
            assert await _primary_key(conn, "analyses") == "PRIMARY KEY (project_id, id)"
            assert await conn.scalar(text("SELECT to_regclass('ix_spans_project_start')")) is None
            # The same span, record and analysis id are another row in another project, and a duplicate in its own.
            requests = (
                "SELECT sum(count) FROM route_rollups WHERE project_id = 2 AND bucket_seconds = 60 AND all_routes"
            )
            counted = int(await conn.scalar(text(requests)))
            await conn.execute(text(SPAN), {"t": f"{0:032x}", "s": f"{0:016x}", "p": 2, "st": DAY})
            await conn.execute(text(RECORD), {"t": f"{0:032x}", "s": f"{0:016x}", "p": 2, "st": DAY})
            assert int(await conn.scalar(text(requests))) == counted + 1  # the rollup trigger runs on the new key
            await conn.execute(text(ANALYSIS), {"i": "analysis_0", "p": 2, "t": f"{0:032x}"})
            dup = await conn.execute(
                text(SPAN + " ON CONFLICT (project_id, trace_id, span_id, start_time) DO NOTHING"),
                {"t": f"{0:032x}", "s": f"{0:016x}", "p": 1, "st": DAY},
            )
            assert dup.rowcount == 0
    finally:
        await db.stop()
