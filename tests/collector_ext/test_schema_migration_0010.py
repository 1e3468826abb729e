"""Migration 0010 adds quarter-hour rollup rows to a database holding records, and the triggers keep them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rollup_truth import MISMATCHES
from sqlalchemy import text

DAY = datetime(2026, 3, 10, 11, 50, tzinfo=UTC)
PROJECTS = (
    "INSERT INTO projects (id, project_key, name, description, framework, status) VALUES "
    "(1, 'proj_a', 'a', '', 'flask', 'active'), (2, 'proj_b', 'b', '', 'flask', 'active')"
)
# Requests every 37 s over ~2 hours from 11:50, on three routes, one in nine failed: several quarter hours,
# partial at both ends.
RECORDS = """
INSERT INTO performance_records (trace_id, span_id, project_id, service_name, method, route, path, status_code,
                                 duration, cpu_time, memory, is_error, timestamp)
SELECT lpad(to_hex(i), 32, '0'), lpad(to_hex(i), 16, '0'), 1 + i % 2, 'svc', 'GET', '/r' || (i % 3), '/r', 200,
       0.001 * (1 + i % 17), NULL, '{}', i % 9 = 0, CAST(:t0 AS timestamptz) + i * interval '37 seconds'
FROM generate_series(CAST(:a AS int), CAST(:b AS int)) AS i
"""


async def _scalar(conn, sql: str, **params):  # type: ignore[no-untyped-def]
    return await conn.scalar(text(sql), params)


async def test_0010_makes_quarter_hour_rows_from_stored_minutes_and_the_triggers_keep_them(database_url: str) -> None:
    from pystrument_collector.db import Database
    from pystrument_collector.db.migrate import upgrade

    db = Database(database_url)
    await db.start()
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(upgrade, "0008")
            await conn.execute(text(PROJECTS))
            await conn.execute(text(RECORDS), {"t0": DAY, "a": 0, "b": 199})
            assert await _scalar(conn, "SELECT count(*) FROM route_rollups WHERE bucket_seconds = 900") == 0

        await db.migrate()

        async with db.engine.begin() as conn:
            quarters = (
                "SELECT sum(count) FROM route_rollups WHERE bucket_seconds = 900 AND project_id = :p AND all_routes"
            )
            assert await _scalar(conn, quarters, p=1) == 100
            assert await _scalar(conn, quarters, p=2) == 100
            # 11:50 to ~13:53: 11:45 and 13:45 partial, every quarter between them whole
            starts = await _scalar(
                conn, "SELECT count(DISTINCT bucket_start) FROM route_rollups WHERE bucket_seconds = 900"
            )
            assert starts == 9
            assert await _scalar(conn, MISMATCHES) == 0  # per route and per project, every grain, histograms too

            # New records (the insert trigger), a deletion and an update (the rebuild) keep them equal.
            await conn.execute(text(RECORDS), {"t0": DAY, "a": 200, "b": 260})
            await conn.execute(text("DELETE FROM performance_records WHERE is_error AND project_id = 1"))
            await conn.execute(
                text("UPDATE performance_records SET duration = duration * 3 WHERE route = '/r1' AND project_id = 2")
            )
            assert await _scalar(conn, MISMATCHES) == 0
            assert await _scalar(conn, quarters, p=1) == await _scalar(
                conn, "SELECT count(*) FROM performance_records WHERE project_id = 1"
            )
    finally:
        await db.stop()


async def test_0010_downgrade_leaves_the_three_grains_it_found(database_url: str) -> None:
    from alembic import command
    from pystrument_collector.db import Database
    from pystrument_collector.db.migrate import alembic_config

    db = Database(database_url)
    await db.start()
    try:
        await db.migrate()
        async with db.engine.begin() as conn:
            await conn.execute(text(PROJECTS))
            await conn.execute(text(RECORDS), {"t0": DAY, "a": 0, "b": 99})
            await conn.run_sync(lambda sync: command.downgrade(alembic_config(sync), "0010-1"))
            assert await _scalar(conn, "SELECT count(*) FROM route_rollups WHERE bucket_seconds = 900") == 0
            await conn.execute(text(RECORDS), {"t0": DAY + timedelta(days=1), "a": 100, "b": 149})
            assert await _scalar(conn, "SELECT count(*) FROM route_rollups WHERE bucket_seconds = 900") == 0
            assert await _scalar(conn, "SELECT sum(count) FROM route_rollups WHERE bucket_seconds = 60") == 2 * 150
    finally:
        await db.stop()
