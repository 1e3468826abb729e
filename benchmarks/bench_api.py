"""REST API latency at scale: the records list with its total, and per-route p50/p95/p99 over 7 days.

One run, one Postgres (embedded in a temp dir, or ``PYSTRUMENT_DATABASE_URL``; a fresh database is made on it),
migrated as ``pystrument serve`` does:

1. seed: ``--requests`` request records spread over the last 7 days (30 routes, 4 services, log-normal
   durations, 2% errors) binary-COPY'd into ``performance_records`` in chunks, as one project's traffic (the
   rollup trigger runs on every COPY, as on every ingest write), plus a small second project; then
   ``--spans-per-request`` spans per request: the request span, generated inside Postgres from the records
   (``INSERT … SELECT`` per day on two connections), and the function spans with the SDK's attributes, packed in
   Python with the collector's codec (one pack per request, as the writer stores them: migration 0009) and
   binary-COPY'd into ``function_spans``; then ``VACUUM ANALYZE``. "Bytes per span" counts both tables (table,
   TOAST and indexes apart) over every span, packed ones included.
   Also timed, for the trigger's ingest cost: live records written the collector's way (25 per
   ``INSERT … ON CONFLICT DO NOTHING``, one transaction each) with the rollup trigger disabled and enabled.
2. measure: the real app (``create_app``, lifespan run) through an in-process ASGI client; each request
   ``--runs`` times after a warm-up, sequentially; p50/p95/p99 in milliseconds.

Targets: the records list with ``total`` p95 <= 50 ms; 7-day per-route statistics p95 <= 100 ms.
Unknown arguments are ignored (``nox -s bench -- …`` passes the same ones to every script); positional words
select benchmarks: this one runs when there are none or one of them is ``api``. ``--quick``: 100k requests.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROUTES = [f"/api/v1/items/{{id}}/part_{i}" if i % 3 else f"/api/v1/orders/{i}" for i in range(30)]
SERVICES = ["shop-web", "catalog-api", "billing", "search"]
CHUNK = 50_000
COMPARE_ROWS = 20_000
INGEST_BATCH = 25  # records in one OTLP request of 512 spans at ~20 spans per request
DAYS = 7


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("select", nargs="*", help="benchmark names to run (this one is 'api')")
    parser.add_argument("--requests", type=int, default=1_000_000, help="request records (default 1000000)")
    parser.add_argument("--spans-per-request", type=int, default=10, help="spans per request (default 10)")
    parser.add_argument("--runs", type=int, default=200, help="timed calls per endpoint (default 200)")
    parser.add_argument("--quick", action="store_true", help="100k requests, 50 runs")
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="use PYSTRUMENT_DATABASE_URL's database itself (e.g. a Citus coordinator's; its pystrument tables are "
        "dropped first), not a new one",
    )
    args, _unknown = parser.parse_known_args(argv)
    if args.quick:
        args.requests, args.runs = min(args.requests, 100_000), min(args.runs, 50)
    args.spans_per_request = max(1, args.spans_per_request)
    return args


# -- data ---------------------------------------------------------------------------------------------------


def record_rows(n: int, project_id: int, now: datetime, seed: int) -> list[tuple[Any, ...]]:
    """``n`` request records over the 7 days before ``now``, columns in ``RECORD_COLUMNS`` order."""
    rnd = random.Random(seed)
    weights = [1.0 / (i + 1) for i in range(len(ROUTES))]  # a few hot routes, a long tail
    routes = rnd.choices(range(len(ROUTES)), weights=weights, k=n)
    span = DAYS * 86400.0
    rows = []
    for i in range(n):
        r = routes[i]
        route = ROUTES[r]
        base = 0.01 * (1 + r % 7)
        duration = rnd.lognormvariate(math.log(base), 0.9)
        error = rnd.random() < 0.02
        rows.append(
            (
                f"{rnd.getrandbits(128):032x}",
                f"{rnd.getrandbits(64):016x}",
                project_id,
                SERVICES[r % len(SERVICES)],
                "POST" if r % 5 == 0 else "GET",
                route,
                route.replace("{id}", str(i % 1000)),
                500 if error else 200,
                duration,
                duration * 0.3,
                "{}",
                error,
                now - timedelta(seconds=rnd.uniform(0, span)),
            )
        )
    rows.sort(key=lambda row: row[-1])  # as they arrive: in time order
    return rows


RECORD_COLUMNS = (
    "trace_id", "span_id", "project_id", "service_name", "method", "route", "path", "status_code",
    "duration", "cpu_time", "memory", "is_error", "timestamp",
)  # fmt: skip

# The request spans, generated inside Postgres from the records.
SPANS_SQL = """
INSERT INTO spans (trace_id, span_id, project_id, parent_span_id, name, kind, start_time, duration, status_code,
                   status_message, service_name, synthetic, attributes, events)
SELECT r.trace_id, r.span_id, r.project_id, NULL, r.method || ' ' || r.route, 'SERVER', r."timestamp", r.duration,
       CASE WHEN r.is_error THEN 2 ELSE 0 END, '', r.service_name, false,
       jsonb_build_object('http.route', r.route, 'http.request.method', r.method,
                          'http.response.status_code', r.status_code, 'pystrument.profile.interval_ms', 1),
       '[]'::jsonb
FROM performance_records r
WHERE r.project_id = $1 AND r."timestamp" >= $2 AND r."timestamp" < $3
"""

# The function spans are packed as the collector's writer packs them (pystrument_collector.packs): one pack per
# request, made in Python from the records (times as the writer's integer microseconds since 2000-01-01).
RECORDS_OF_DAY_SQL = """
SELECT trace_id, span_id, service_name, "timestamp", duration, route FROM performance_records
WHERE project_id = $1 AND "timestamp" >= $2 AND "timestamp" < $3
"""


def function_packs(project_id: int, records: list[Any], per_request: int) -> list[tuple[Any, ...]]:
    """One pack of ``per_request - 1`` function spans (a call chain with the SDK's attributes) per record."""
    import zlib

    import msgspec
    from pystrument_collector.packs import encode_pack

    encode = msgspec.json.encode
    packs = []
    for trace_id, span_id, service, start, duration, route in records:
        rows = []
        parent = span_id
        for k in range(1, per_request):
            sid = f"{k:03x}{span_id[3:]}"
            name = f"app.module_{k % 40}.handler_{(zlib.crc32(route.encode()) + k) % 400}"
            attrs = {
                "code.function.name": name,
                "code.file.path": f"/srv/app/module_{k % 40}.py",
                "code.line.number": 10 + 7 * k,
                "pystrument.synthetic": True,
                "pystrument.samples": k,
                "pystrument.self_time_ms": round(duration * 1000 / per_request, 3),
                "pystrument.library": k % 4 == 0,
            }
            at = start + 1 + int(duration * 1e6 * (k - 1) / (2 * per_request))
            own = duration * (1 - (k - 1) / (2 * per_request))
            rows.append(
                (trace_id, sid, project_id, parent, name, "INTERNAL", at, own, 0, "", service, True,
                 encode(attrs).decode(), "[]")
            )  # fmt: skip
            parent = sid
        packs.append(encode_pack(rows))
    return packs


# -- database -----------------------------------------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _connect_params(url: str) -> dict[str, Any]:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    _, params = engine.dialect.create_connect_args(engine.url)
    return dict(params)


WIPE = """
DROP TABLE IF EXISTS spans, function_spans, logs, performance_records, route_rollups, analyses, api_sessions, projects,
    alembic_version CASCADE;
DROP FUNCTION IF EXISTS pystrument_delete_project_spans, pystrument_delete_project_logs,
    pystrument_delete_project_function_spans, pystrument_rollup_insert,
    pystrument_rollup_delete, pystrument_rollup_update, pystrument_rollup_truncate, pystrument_rollup_rebuild,
    pystrument_rollup_add, pystrument_duration_bucket CASCADE;
"""


async def prepare(admin_url: str, in_place: bool = False) -> str:
    """A fresh (or, ``in_place``, the given, wiped), migrated database with span partitions for the last 8 days;
    returns its URL."""
    import asyncpg
    from pystrument_collector.db import Database
    from pystrument_collector.retention import ensure_partitions

    conn = await asyncpg.connect(**_connect_params(admin_url))
    try:
        if in_place:
            await conn.execute(WIPE)
            url = admin_url
        else:
            name = f"bench_api_{uuid.uuid4().hex[:10]}"
            await conn.execute(f'CREATE DATABASE "{name}"')
            url = _with_database(admin_url, name)
    finally:
        await conn.close()
    db = Database(url)
    await db.start()
    try:
        await db.migrate()
        await ensure_partitions(db, behind=DAYS + 1, ahead=1)
    finally:
        await db.stop()
    return url


async def _project(conn: Any, name: str) -> tuple[int, str]:
    from pystrument_collector.keys import new_project_key

    key = new_project_key()
    project_id = await conn.fetchval(
        "INSERT INTO projects (project_key, name, description, framework, status) "
        "VALUES ($1, $2, '', 'flask', 'active') RETURNING id",
        key,
        name,
    )
    return int(project_id), key


ROLLUP_ADD_SQL = (
    "SELECT pystrument_rollup_add($1::int8[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], "
    "$7::float8[], $8::bool[])"
)


async def _copy(conn: Any, rows: list[tuple[Any, ...]]) -> float:
    """COPY the records; where there is no rollup trigger (Citus), add them to the rollups as the writer does."""
    started = time.perf_counter()
    trigger = await conn.fetchval(
        "SELECT count(*) FROM pg_trigger WHERE tgname = 'records_rollup_insert' "
        "AND tgrelid = 'performance_records'::regclass"
    )
    for i in range(0, len(rows), CHUNK):
        chunk = rows[i : i + CHUNK]
        await conn.copy_records_to_table("performance_records", records=chunk, columns=RECORD_COLUMNS)
        if not trigger:
            cols = list(zip(*chunk, strict=True))
            # project_id, timestamp, service_name, method, route, path (route '' never here), duration, is_error
            await conn.execute(ROLLUP_ADD_SQL, cols[2], cols[12], cols[3], cols[4], cols[5], cols[6], cols[8], cols[11])
    return time.perf_counter() - started


INGEST_SQL = """
INSERT INTO performance_records (trace_id, span_id, project_id, service_name, method, route, path, status_code,
                                 duration, cpu_time, memory, is_error, timestamp)
SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::int4[], $9::float8[], $10::float8[], $11::jsonb[], $12::bool[], $13::timestamptz[])
ORDER BY 1, 2
ON CONFLICT DO NOTHING
"""


async def _ingest_like(conn: Any, rows: list[tuple[Any, ...]]) -> float:
    """Seconds to write ``rows`` as the collector does: INSERT … ON CONFLICT DO NOTHING, one transaction each."""
    started = time.perf_counter()
    for i in range(0, len(rows), INGEST_BATCH):
        columns = [list(c) for c in zip(*rows[i : i + INGEST_BATCH], strict=True)]
        async with conn.transaction():
            await conn.execute(INGEST_SQL, *columns)
    return time.perf_counter() - started


async def trigger_cost(conn: Any, project_id: int, now: datetime) -> tuple[float, float]:
    """Seconds to write ``COMPARE_ROWS`` live records the collector's way, without and with the rollup trigger."""
    live = record_rows(COMPARE_ROWS, project_id, now, seed=99)
    start = now - timedelta(seconds=COMPARE_ROWS / 200)  # 200 requests a second, arriving in order
    rows = [(*r[:-1], start + timedelta(seconds=i / 200)) for i, r in enumerate(live)]
    await conn.execute("ALTER TABLE performance_records DISABLE TRIGGER records_rollup_insert")
    without = await _ingest_like(conn, rows)
    await conn.execute("ALTER TABLE performance_records ENABLE TRIGGER records_rollup_insert")
    await conn.execute("TRUNCATE performance_records")
    with_trigger = await _ingest_like(conn, rows)
    await conn.execute("TRUNCATE performance_records")
    return without, with_trigger


async def seed(url: str, args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    import asyncpg

    params = _connect_params(url)
    conn = await asyncpg.connect(**params)
    out: dict[str, Any] = {}
    try:
        project_id, key = await _project(conn, "bench")
        other_id, _ = await _project(conn, "other")
        out["key"] = key
        has_trigger = await conn.fetchval(
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'records_rollup_insert' "
            "AND tgrelid = 'performance_records'::regclass"
        )
        if has_trigger:
            without, with_trigger = await trigger_cost(conn, project_id, now)
            out["copy_without_trigger"] = COMPARE_ROWS / without
            out["copy_with_trigger"] = COMPARE_ROWS / with_trigger
            print(
                f"  ingest-like writes ({INGEST_BATCH} records per INSERT and transaction, {COMPARE_ROWS:,} records): "
                f"{COMPARE_ROWS / without:,.0f}/s without the rollup trigger, "
                f"{COMPARE_ROWS / with_trigger:,.0f}/s with it"
            )
        else:
            print(
                "  no rollup trigger (Citus): rollups added by pystrument_rollup_add after each COPY (as by the writer)"
            )

        started = time.perf_counter()
        rows = record_rows(args.requests, project_id, now, seed=1)
        made = time.perf_counter() - started
        copied = await _copy(conn, rows)
        del rows
        await _copy(conn, record_rows(10_000, other_id, now, seed=2))
        out["records_seconds"] = copied
        print(f"  {args.requests:,} records: made in {made:.1f} s, COPY'd (rollups included) in {copied:.1f} s")
    finally:
        await conn.close()

    started = time.perf_counter()
    days = [(now - timedelta(days=d + 1), now - timedelta(days=d)) for d in range(DAYS)]
    days[-1] = (now - timedelta(days=DAYS + 1), days[-1][1])

    async def worker(share: list[tuple[datetime, datetime]]) -> int:
        from pystrument_collector.ingest._writer import _init_connection
        from pystrument_collector.packs import PACK_COLUMNS, as_microseconds

        c = await asyncpg.connect(**params)
        try:
            total = 0
            for lo, hi in share:
                status = await c.execute(SPANS_SQL, project_id, lo, hi, timeout=3600)
                total += int(status.rsplit(" ", 1)[1])
                if args.spans_per_request < 2:
                    continue
                await _init_connection(c)  # times as integer microseconds, as the writer's connections have them
                records = await c.fetch(RECORDS_OF_DAY_SQL, project_id, as_microseconds(lo), as_microseconds(hi))
                for i in range(0, len(records), CHUNK // 10):
                    packs = function_packs(project_id, records[i : i + CHUNK // 10], args.spans_per_request)
                    await c.copy_records_to_table("function_spans", records=packs, columns=PACK_COLUMNS, timeout=3600)
                    total += sum(p[5] for p in packs)
                await c.reset_type_codec("timestamptz", schema="pg_catalog")
            return total
        finally:
            await c.close()

    counts = await asyncio.gather(worker(days[0::2]), worker(days[1::2]))
    spans_seconds = time.perf_counter() - started
    out["spans"] = sum(counts)
    out["spans_seconds"] = spans_seconds
    print(f"  {sum(counts):,} spans generated in {spans_seconds:.1f} s")

    started = time.perf_counter()
    conn = await asyncpg.connect(**params)
    try:
        await conn.execute("VACUUM ANALYZE performance_records")
        await conn.execute("VACUUM ANALYZE route_rollups")
        await conn.execute("ANALYZE spans")
        await conn.execute("ANALYZE function_spans")
        sizes = await conn.fetch(
            "SELECT relname, pg_size_pretty(pg_total_relation_size(c.oid)) AS size FROM pg_class c "
            "WHERE relname IN ('performance_records', 'route_rollups') ORDER BY relname"
        )
        rollup_rows = await conn.fetchval("SELECT count(*) FROM route_rollups")
        span_sizes, span_count, citus = await span_storage(conn)
    finally:
        await conn.close()
    spans_bytes = sum(sum(v) for v in span_sizes.values())
    out["bytes_per_span"] = spans_bytes / max(1, span_count)
    print(f"  VACUUM ANALYZE in {time.perf_counter() - started:.1f} s")
    print("  sizes: " + ", ".join(f"{r['relname']} {r['size']}" for r in sizes))
    n = max(1, span_count)
    for table, (heap, toast, index) in span_sizes.items():
        print(
            f"  {table}: {(heap + toast + index) / 2**20:,.0f} MiB = {(heap + toast + index) / n:.1f} B a span "
            f"(table {heap / n:.1f}, TOAST and other forks {toast / n:.1f}, indexes {index / n:.1f})"
        )
    print(
        f"  bytes per span on disk: {out['bytes_per_span']:.1f} ({span_count:,} spans, function spans in packs "
        f"included; table, TOAST and indexes of every partition{', every shard' if citus else ''})"
    )
    print(f"  route_rollups rows: {rollup_rows:,}")
    return out


SPAN_TABLES = ("spans", "function_spans")


async def span_storage(conn: Any) -> tuple[dict[str, tuple[int, int, int]], int, bool]:
    """Bytes on disk of every partition of ``spans`` and of ``function_spans`` (the packed function spans), each as
    (table, TOAST and other forks, indexes); the spans stored (rows plus the spans of every pack); whether on Citus
    (then sums over every shard)."""
    citus = bool(await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'citus'"))
    prefix = "citus" if citus else "pg"
    sizes: dict[str, tuple[int, int, int]] = {}
    for table in SPAN_TABLES:
        parts = [
            r[0]
            for r in await conn.fetch(
                "SELECT i.inhrelid::regclass::text FROM pg_inherits i WHERE i.inhparent = $1::regclass", table
            )
        ]
        heap = toast = index = 0
        for part in parts:
            main = int(await conn.fetchval(f"SELECT {prefix}_relation_size($1::regclass)", part) or 0)
            with_toast = int(await conn.fetchval(f"SELECT {prefix}_table_size($1::regclass)", part) or 0)
            total = int(await conn.fetchval(f"SELECT {prefix}_total_relation_size($1::regclass)", part) or 0)
            heap, toast, index = heap + main, toast + with_toast - main, index + total - with_toast
        sizes[table] = (heap, toast, index)
    count = int(await conn.fetchval("SELECT count(*) FROM spans"))
    count += int(await conn.fetchval("SELECT coalesce(sum(n), 0) FROM function_spans"))
    return sizes, count, citus


# -- measuring ----------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


async def measure(url: str, key: str, args: argparse.Namespace, now: datetime) -> list[tuple[str, list[float], Any]]:
    from litestar.testing import AsyncTestClient
    from pystrument_analysis.app import create_app
    from pystrument_collector.settings import Settings

    app = create_app(Settings(database_url=url, retention_days=0), api_token=None)
    week = {"start": (now - timedelta(days=DAYS)).isoformat(), "end": now.isoformat()}
    results: list[tuple[str, list[float], Any]] = []
    async with AsyncTestClient(app=app, timeout=120, base_url="http://127.0.0.1") as client:  # an allowed Host
        first = (await client.get("/api/v1/performance/records", params={"project_key": key, "size": 20})).json()
        cursor = first["data"]["next_cursor"]
        for _ in range(49):  # a cursor 50 pages deep
            page = (
                await client.get(
                    "/api/v1/performance/records", params={"project_key": key, "size": 20, "cursor": cursor}
                )
            ).json()
            cursor = page["data"]["next_cursor"]
        cases: list[tuple[str, dict[str, Any], int]] = [
            ("records page 1 + total (target p95 <= 50 ms)", {"size": 20}, args.runs),
            ("records page 1, route filter + total", {"size": 20, "route": ROUTES[3]}, args.runs),
            ("records sorted by duration + total", {"size": 20, "sort": "duration"}, args.runs),
            ("records 50 pages deep by cursor + total", {"size": 20, "cursor": cursor}, args.runs),
            ("records page 50 by offset + total", {"size": 20, "page": 50}, args.runs),
        ]
        stats_cases: list[tuple[str, dict[str, Any], int]] = [
            ("stats 7 days, per-route p50/p95/p99 (target p95 <= 100 ms)", week, args.runs),
            ("stats 7 days, one route", {**week, "route": ROUTES[0]}, args.runs),
            ("stats last 24 h (default window, 15 min buckets)", {}, args.runs),
            ("stats 7 days, mode=exact (percentile_cont, for comparison)", {**week, "mode": "exact"}, 3),
        ]
        plan = [("/api/v1/performance/records", c) for c in cases] + [
            ("/api/v1/performance/stats", c) for c in stats_cases
        ]
        for path, (_label, params, runs) in plan:  # warm-up
            for _ in range(min(5, runs)):
                response = await client.get(path, params={"project_key": key, **params})
                assert response.status_code == 200, response.text
        # Round-robin, so that the machine's other load falls on every endpoint alike.
        times: dict[str, list[float]] = {label: [] for _, (label, _, _) in plan}
        info: dict[str, Any] = {}
        load_before = os.getloadavg()[0]
        for round_number in range(args.runs):
            for path, (label, params, runs) in plan:
                if round_number >= runs:
                    continue
                started = time.perf_counter()
                response = await client.get(path, params={"project_key": key, **params})
                times[label].append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
                body = response.json()["data"]
                info[label] = body["total"] if "records" in body else body["summary"]["count"]
        load_after = os.getloadavg()[0]
        for _, (label, _, runs) in plan:
            t = times[label]
            results.append((label, t, info[label]))
            print(
                f"  {label:<62} p50 {statistics.median(t):7.1f} ms  p95 {percentile(t, 0.95):7.1f} ms"
                f"  p99 {percentile(t, 0.99):7.1f} ms  ({runs} runs; total/count {info[label]})"
            )
        print(f"  (load average {load_before:.1f} before, {load_after:.1f} after; {os.cpu_count()} CPUs)")
    return results


async def run_all(admin_url: str, args: argparse.Namespace) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    print(f"bench_api: {args.requests:,} requests, {args.spans_per_request} spans each, over {DAYS} days")
    started = time.perf_counter()
    url = await prepare(admin_url, args.in_place)
    seeded = await seed(url, args, now)
    print(f"  seeding took {time.perf_counter() - started:.0f} s")
    print("latency through the app (in-process ASGI client, sequential):")
    await measure(url, seeded["key"], args, now)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.select and "api" not in args.select:
        print("bench_api: not selected")
        return 0
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)  # not one log line per timed call
    url = os.environ.get("PYSTRUMENT_DATABASE_URL")
    if url:
        asyncio.run(run_all(url, args))
        return 0
    from pystrument_collector.db.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="pystrument-bench-api-") as tmp:
        os.chmod(tmp, 0o755)  # pgserver runs Postgres as its own user when we are root
        embedded = EmbeddedPostgres(Path(tmp))
        admin = embedded.start()
        try:
            asyncio.run(run_all(admin, args))
        finally:
            embedded.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
