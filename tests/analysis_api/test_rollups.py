"""Statistics rollups (migration 0004): the triggers keep them equal to the records; stats and totals read them."""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pystrument_analysis.api.services import rollups
from rollup_truth import MISMATCHES
from sqlalchemy import text

T0 = datetime(2024, 8, 24, 10, 0, 0, tzinfo=UTC)

INSERT = """
INSERT INTO performance_records (trace_id, span_id, project_id, service_name, method, route, path, status_code,
                                 duration, cpu_time, memory, is_error, timestamp)
SELECT t, s, :project, sv, m, r, pa, sc, d, NULL, '{}'::jsonb, err, ts
FROM unnest(CAST(:t AS text[]), CAST(:s AS text[]), CAST(:sv AS text[]), CAST(:m AS text[]), CAST(:r AS text[]),
            CAST(:pa AS text[]), CAST(:sc AS int[]), CAST(:d AS float8[]), CAST(:err AS bool[]),
            CAST(:ts AS timestamptz[])) AS u(t, s, sv, m, r, pa, sc, d, err, ts)
ON CONFLICT DO NOTHING
"""


async def insert(db: Any, project_id: int, rows: list[dict[str, Any]]) -> None:
    """Records in one INSERT … ON CONFLICT DO NOTHING statement, as the collector writes them."""
    cols: dict[str, list[Any]] = {k: [] for k in ("t", "s", "sv", "m", "r", "pa", "sc", "d", "err", "ts")}
    for row in rows:
        cols["t"].append(row["trace_id"])
        cols["s"].append(row.get("span_id", "00000000000000aa"))
        cols["sv"].append(row.get("service", "svc"))
        cols["m"].append(row.get("method", "GET"))
        cols["r"].append(row.get("route", "/users/{id}"))
        cols["pa"].append(row.get("path", "/users/1"))
        cols["sc"].append(row.get("status", 200))
        cols["d"].append(row["duration"])
        cols["err"].append(row.get("status", 200) >= 500)
        cols["ts"].append(row["timestamp"])
    async with db.session() as s:
        await s.execute(text(INSERT), {"project": project_id, **cols})


async def mismatches(db: Any) -> int:
    async with db.session() as s:
        return int(await s.scalar(text(MISMATCHES)) or 0)


def traffic(n: int, seed: int = 1, start: datetime = T0, seconds: float = 3 * 3600) -> list[dict[str, Any]]:
    """Requests over ``seconds`` on three routes (one without a route template), log-normal durations."""
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        kind = rnd.random()
        route, path = ("/users/{id}", f"/users/{i % 7}") if kind < 0.6 else ("/orders", "/orders")
        if kind > 0.9:
            route, path = "", f"/static/{i % 3}.css"
        rows.append(
            {
                "trace_id": f"{seed:08x}{i:024x}",
                "route": route,
                "path": path,
                "method": "POST" if route == "/orders" and i % 2 else "GET",
                "duration": rnd.lognormvariate(math.log(0.05), 0.8),
                "status": 500 if rnd.random() < 0.03 else 200,
                "timestamp": start + timedelta(seconds=rnd.uniform(0, seconds)),
            }
        )
    return rows


async def test_triggers_keep_rollups_equal_to_records(db: Any, perf: Any) -> None:
    project = await perf.project()
    other = await perf.project("other")
    rows = traffic(1200)
    await insert(db, project.id, rows[:500])
    await insert(db, project.id, rows[500:])
    await insert(db, other.id, traffic(100, seed=2))
    assert await mismatches(db) == 0

    await insert(db, project.id, rows[:300])  # sent again: nothing inserted, nothing added
    assert await mismatches(db) == 0
    async with db.session() as s:
        assert await s.scalar(text("SELECT sum(count) FROM route_rollups WHERE bucket_seconds = 3600")) == 2 * 1300

    async with db.session() as s:  # retention-like: part of an hour goes
        await s.execute(
            text("DELETE FROM performance_records WHERE timestamp < :cut"), {"cut": T0 + timedelta(minutes=75)}
        )
        await s.execute(
            text("UPDATE performance_records SET duration = duration * 3 WHERE trace_id LIKE '00000001%' AND is_error")
        )
    assert await mismatches(db) == 0

    await perf.request(project, "f" * 32, start=T0 + timedelta(hours=2), duration=0.25)  # through the ORM
    assert await mismatches(db) == 0

    async with db.session() as s:
        await s.execute(text("DELETE FROM projects WHERE id = :p"), {"p": project.id})
    async with db.session() as s:
        left = (await s.execute(text("SELECT DISTINCT project_id FROM route_rollups"))).scalars().all()
    assert left == [other.id]
    assert await mismatches(db) == 0


async def test_concurrent_writers_do_not_wait_on_each_other(db: Any, perf: Any) -> None:
    """Two open transactions writing the same route and minute use different shard rows."""
    project = await perf.project()
    engine = db.engine
    conns = [await engine.connect() for _ in range(2)]
    try:
        for _ in range(5):  # shards are the backend pid mod 16: make sure the two differ
            pids = [await c.scalar(text("SELECT pg_backend_pid()")) for c in conns]
            if pids[0] % 16 != pids[1] % 16:
                break
            await conns[1].close()
            conns[1] = await engine.connect()
        for i, conn in enumerate(conns):
            await conn.execute(text("SET lock_timeout = '2s'"))
            await conn.execute(
                text(INSERT),
                {
                    "project": project.id,
                    **{
                        k: [v]
                        for k, v in zip(
                            ("t", "s", "sv", "m", "r", "pa"), (f"{i:032x}", "a", "svc", "GET", "/x", "/x"), strict=True
                        )
                    },
                    "sc": [200],
                    "d": [0.1 * (i + 1)],
                    "err": [False],
                    "ts": [T0],
                },
            )  # the second would time out if it waited for the first's uncommitted rollup row
        for conn in conns:
            await conn.commit()
    finally:
        for conn in conns:
            await conn.close()
    async with db.session() as s:
        rows = (
            await s.execute(text("SELECT count, shard FROM route_rollups WHERE bucket_seconds = 60 AND NOT all_routes"))
        ).all()
    assert sorted(r.count for r in rows) == [1, 1] and len({r.shard for r in rows}) == 2
    assert await mismatches(db) == 0


def test_histogram_quantiles_are_within_one_bucket() -> None:
    rnd = random.Random(5)
    values = sorted(rnd.lognormvariate(math.log(0.08), 1.0) for _ in range(5000))
    figures = rollups.Figures(count=len(values), low=values[0], high=values[-1])
    for v in values:
        k = rollups.bucket_of(v)
        figures.hist[k] = figures.hist.get(k, 0) + 1
        lo, hi = rollups.bucket_bounds(k)
        assert lo < v <= hi or (k == 0 and v <= hi)
    for q in (0.5, 0.95, 0.99):
        exact = values[int(q * (len(values) - 1))]
        assert figures.quantile(q) == pytest.approx(exact, rel=0.1)
    single = rollups.Figures(count=3, low=0.2, high=0.2, hist={rollups.bucket_of(0.2): 3})
    assert single.quantile(0.5) == pytest.approx(0.2)  # clamped to the exact min and max
    assert rollups.Figures().quantile(0.5) is None
    assert rollups.bucket_of(0.0) == 0 and rollups.bucket_of(1e9) == rollups.LAST_BUCKET


def test_plan_tiles_the_window_exactly() -> None:
    start = T0 + timedelta(seconds=30)  # 10:00:30
    end = T0 + timedelta(days=2, hours=5, minutes=7, seconds=15)  # two days later, 15:07:15
    tiles = rollups.plan(start, end)
    day = timedelta(days=1)
    midnight = datetime(2024, 8, 25, tzinfo=UTC)
    assert tiles.rows[86400] == ((midnight, midnight + day),)
    assert tiles.rows[3600] == (
        (T0 + timedelta(hours=1), midnight),
        (midnight + day, midnight + day + timedelta(hours=15)),
    )
    assert tiles.rows[900] == ((T0 + timedelta(minutes=15), T0 + timedelta(hours=1)),)  # migration 0010
    assert tiles.rows[60] == (
        (T0 + timedelta(minutes=1), T0 + timedelta(minutes=15)),
        (midnight + day + timedelta(hours=15), midnight + day + timedelta(hours=15, minutes=7)),
    )
    assert tiles.raw == ((start, T0 + timedelta(minutes=1)), (end - timedelta(seconds=15), end))
    pieces = sorted([r for rs in tiles.rows.values() for r in rs] + list(tiles.raw))
    assert pieces[0][0] == start and pieces[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
    assert rollups.plan(start, start + timedelta(seconds=20)) == rollups.Plan(
        raw=((start, start + timedelta(seconds=20)),)
    )
    assert set(rollups.plan(start, end, 60).rows) == {60}
    assert (rollups.grain_for(7200), rollups.grain_for(86400 * 2), rollups.grain_for(600)) == (3600, 86400, 60)
    assert (rollups.grain_for(900), rollups.grain_for(1800), rollups.grain_for(2700)) == (900, 900, 900)


def test_signed_plans_add_up_to_the_window() -> None:
    """Whole days with the outside parts subtracted cover each instant of the window once, and nothing else."""
    rnd = random.Random(3)

    def pieces(tiles: rollups.Plan) -> list[tuple[datetime, datetime]]:
        return [r for rs in tiles.rows.values() for r in rs] + list(tiles.raw)

    for _ in range(200):
        start = T0 + timedelta(seconds=rnd.uniform(-3 * 86400, 3 * 86400))
        end = start + timedelta(seconds=rnd.choice([1, 600, 5000, 86400, 3 * 86400, 7.5 * 86400]) * rnd.random())
        if end <= start:
            continue
        now = end + timedelta(seconds=rnd.choice([0.0, 30.0, 7200.0, 90000.0]))
        signed = rollups.signed_plans(start, end, now)
        for _ in range(40):
            t = start + (end - start) * rnd.uniform(-0.5, 1.5)
            covered = sum(sign for tiles, sign in signed for lo, hi in pieces(tiles) if lo <= t < hi)
            assert covered == (1 if start <= t < end else 0), (start, end, now, t, signed)
    week_to_now = rollups.signed_plans(T0 - timedelta(days=7), T0, T0)
    assert week_to_now[0][0].rows == {86400: ((datetime(2024, 8, 17, tzinfo=UTC), datetime(2024, 8, 25, tzinfo=UTC)),)}
    assert any(sign == -1 for _, sign in week_to_now)  # the rest of today is subtracted (it is empty: the future)


WINDOW = {"start": "2024-08-24T10:00:30Z", "end": "2024-08-26T12:59:45Z"}  # a whole day, hours, minutes, seconds


async def stats(client: Any, key: str, **params: Any) -> dict[str, Any]:
    r = await client.get("/api/v1/performance/stats", params={"project_key": key, **WINDOW, **params})
    assert r.status_code == 200, r.text
    return r.json()["data"]


@pytest.mark.parametrize("bucket", ["1d", "1h", "45m", "15m", "10m"])  # 45m, 15m: quarter-hour rows (0010)
async def test_rollup_stats_match_exact_ones(client: Any, db: Any, perf: Any, bucket: str) -> None:
    project = await perf.project()
    await insert(db, project.id, traffic(4000, seconds=3 * 86400))
    key = project.project_key
    exact = await stats(client, key, mode="exact", bucket=bucket)
    approx = await stats(client, key, mode="rollup", bucket=bucket)
    assert exact["approximate"] is False and approx["approximate"] is True
    assert (await stats(client, key, bucket=bucket))["approximate"] is False  # auto: few requests, exact

    def same(a: dict[str, Any], b: dict[str, Any]) -> None:
        assert (a["count"], a["error_count"]) == (b["count"], b["error_count"])
        assert a["error_rate"] == pytest.approx(b["error_rate"]) and a["throughput"] == pytest.approx(b["throughput"])
        if a["count"] == 0:
            assert a["p50"] is None and b["p50"] is None
            return
        assert a["avg"] == pytest.approx(b["avg"], rel=1e-9) and a["max"] == pytest.approx(b["max"])
        for q in ("p50", "p95", "p99"):
            assert a[q] == pytest.approx(b[q], rel=0.1), (q, a, b)

    same(exact["summary"], approx["summary"])
    assert 2000 < exact["summary"]["count"] < 4000  # the window cut some off, mid-minute at both ends
    assert [(r["method"], r["route"]) for r in exact["routes"]] == [(r["method"], r["route"]) for r in approx["routes"]]
    assert "/static/0.css" in {r["route"] for r in approx["routes"]}  # no template: grouped by path
    for a, b in zip(exact["routes"], approx["routes"], strict=True):
        same(a, b)
    assert [p["time"] for p in exact["timeseries"]] == [p["time"] for p in approx["timeseries"]]
    for a, b in zip(exact["timeseries"], approx["timeseries"], strict=True):
        same(a, b)
    only = await stats(client, key, mode="rollup", route="/orders", method="post", bucket=bucket)
    assert {(r["method"], r["route"]) for r in only["routes"]} == {("POST", "/orders")}
    assert (
        only["summary"]["count"]
        == (await stats(client, key, mode="exact", route="/orders", method="POST"))["summary"]["count"]
    )


async def test_rollup_mode_needs_whole_minutes(client: Any, perf: Any) -> None:
    project = await perf.project()
    r = await client.get(
        "/api/v1/performance/stats", params={"project_key": project.project_key, "mode": "rollup", "bucket": "90s"}
    )
    assert r.status_code == 400 and "whole number of minutes" in r.json()["msg"]


async def test_large_totals_come_from_rollups_or_estimates(client: Any, db: Any, perf: Any) -> None:
    from pystrument_analysis.api.services.records import COUNT_CAP

    project = await perf.project()
    n = COUNT_CAP + 150
    rows = traffic(n, seed=9, start=T0, seconds=6 * 3600)
    await insert(db, project.id, rows)
    await insert(db, (await perf.project("noise")).id, traffic(400, seed=10))
    key = project.project_key

    async def page(**params: Any) -> dict[str, Any]:
        r = await client.get("/api/v1/performance/records", params={"project_key": key, "size": 5, **params})
        assert r.status_code == 200, r.text
        return r.json()["data"]

    everything = await page()
    assert (everything["total"], everything["total_estimated"]) == (n, False)
    users = sum(1 for x in rows if x["route"] == "/users/{id}")
    assert users > COUNT_CAP // 2
    start, end = "2024-08-24T10:00:10Z", "2024-08-24T15:59:50Z"
    lo, hi = datetime(2024, 8, 24, 10, 0, 10, tzinfo=UTC), datetime(2024, 8, 24, 15, 59, 50, tzinfo=UTC)
    windowed = sum(1 for x in rows if lo <= x["timestamp"] < hi)
    assert windowed > COUNT_CAP
    got = await page(start=start, end=end)
    assert (got["total"], got["total_estimated"]) == (windowed, False)
    estimated = await page(path="/")  # a filter the rollups cannot count: the planner's estimate
    assert estimated["total_estimated"] is True and estimated["total"] > COUNT_CAP
    errors = sum(1 for x in rows if x["status"] >= 500)
    assert (await page(error="true"))["total"] == errors  # under the cap: exact
    assert (await page(route="/users/{id}", size=1))["total"] == users


async def test_cursor_pages_through_everything_once(client: Any, db: Any, perf: Any) -> None:
    project = await perf.project()
    rows = traffic(57, seed=3)
    for i, row in enumerate(rows):  # ties on both sort keys
        row["timestamp"] = T0 + timedelta(seconds=i // 3)
        row["duration"] = 0.01 * (i % 5)
    await insert(db, project.id, rows)
    key = project.project_key
    for sort in ("timestamp", "duration"):
        for order in ("desc", "asc"):
            base = {"project_key": key, "sort": sort, "order": order}
            by_offset = []
            for number in range(1, 5):
                got = await client.get("/api/v1/performance/records", params={**base, "page": number, "size": 20})
                by_offset += [(x["trace_id"], x["span_id"]) for x in got.json()["data"]["records"]]
            by_cursor, cursor, pages = [], None, 0
            while True:
                params = {**base, "size": 10, **({"cursor": cursor} if cursor else {})}
                data = (await client.get("/api/v1/performance/records", params=params)).json()["data"]
                by_cursor += [(x["trace_id"], x["span_id"]) for x in data["records"]]
                cursor, pages = data["next_cursor"], pages + 1
                assert data["total"] == 57
                if cursor is None:
                    break
            assert pages == 6 and len(set(by_cursor)) == 57
            assert by_cursor == by_offset
    first = (await client.get("/api/v1/performance/records", params={"project_key": key, "size": 2})).json()["data"]
    for bad in ("nonsense!", "", first["next_cursor"] + "x"):
        if not bad:
            continue
        r = await client.get("/api/v1/performance/records", params={"project_key": key, "cursor": bad})
        assert r.status_code == 400 and r.json()["code"] == 40001 and "cursor" in r.json()["msg"]
    r = await client.get(
        "/api/v1/performance/records", params={"project_key": key, "cursor": first["next_cursor"], "sort": "duration"}
    )
    assert r.status_code == 400 and "same sort and order" in r.json()["msg"]


async def test_migration_downgrades_and_backfills(db: Any, perf: Any) -> None:
    """0004 down and up again: the rollups are rebuilt from the records already stored."""
    from alembic import command
    from pystrument_collector.db.migrate import alembic_config, upgrade

    project = await perf.project()
    await insert(db, project.id, traffic(300, seed=4))
    async with db.engine.begin() as conn:
        await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "0003"))
        assert await conn.scalar(text("SELECT to_regclass('route_rollups')")) is None
        await conn.run_sync(lambda c: upgrade(c))  # 0004 rebuilds minutes, hours, days; 0010 quarter hours from minutes
    assert await mismatches(db) == 0
    async with db.session() as s:
        assert await s.scalar(text("SELECT sum(count) FROM route_rollups WHERE bucket_seconds = 86400")) == 2 * 300
