"""Aggregated flame graph of one route over 10,000 requests: the endpoint's latency and time to a drawn graph.

One run, one Postgres (embedded in a temp dir, or ``PYSTRUMENT_DATABASE_URL``; a fresh database is made on it):

1. seed: ``--requests`` requests of ``GET /orders/{id}`` over the last hour, each with 15-30 function spans
   (a Flask-like tree: view -> auth, an N+1 loader with its DB helper, pricing with a planted slow
   ``shop.pricing.compute_discounts`` in 20% of requests, a Jinja render through library frames), plus as many
   requests of three other routes with their own function spans, binary-COPY'd into ``performance_records``
   and, packed as the collector's writer packs them (one pack per request), into ``function_spans`` (the day's
   partition), then ``ANALYZE``;
2. API: ``GET /api/v1/performance/flame?route=/orders/{id}&start=…&end=…`` through the real app (in-process ASGI
   client), ``--runs`` times after a warm-up; p50/p95 in ms. For comparison, the same merge done by Postgres
   the endpoint's work is also timed step by step (the packs' SQL read, zlib, decoding, merging) without HTTP;
3. browser: the real server (uvicorn) and Debian's Chromium: ``/projects/{id}/flame?route=…`` opened
   ``--page-runs`` times in a fresh tab; time from navigation start to the canvas drawn (``data-drawn`` > 0).

Unknown arguments are ignored (``nox -s bench -- …`` passes the same ones to every script); positional words
select benchmarks: this one runs when there are none or one of them is ``flame``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pystrument_collector.packs import as_microseconds

ROUTE = "/orders/{id}"
OTHER_ROUTES = ["/cart", "/products/{id}", "/search"]
SERVICE = "shop-web"
CHROMIUM = "/usr/bin/chromium"

# The flame graph's span read, by hand, for the breakdown of where its time goes: the packs of the route's newest
# 10,000 requests (as pystrument_analysis.api.services.flame reads them).
PACKS_SQL = """
SELECT f.project_id, f.trace_id, f.service_name, f.start_time, f.data
FROM function_spans f
JOIN (
    SELECT trace_id, service_name FROM performance_records
    WHERE project_id = $1 AND route = $2 AND "timestamp" >= $3 AND "timestamp" < $4
    ORDER BY "timestamp" DESC LIMIT 10000
) c ON f.trace_id = c.trace_id AND f.service_name = c.service_name
WHERE f.project_id = $1 AND f.start_time <= $4 + interval '1 hour' AND f.end_time >= $3 - interval '1 minute'
"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("select", nargs="*", help="benchmark names to run (this one is 'flame')")
    parser.add_argument("--requests", type=int, default=10_000, help="requests of the route (default 10000)")
    parser.add_argument("--runs", type=int, default=30, help="timed API calls (default 30)")
    parser.add_argument("--page-runs", type=int, default=7, help="timed page loads (default 7)")
    parser.add_argument("--quick", action="store_true", help="10 API runs, 3 page loads")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium part")
    args, _unknown = parser.parse_known_args(argv)
    if args.quick:
        args.runs, args.page_runs = min(args.runs, 10), min(args.page_runs, 3)
    return args


# -- data ---------------------------------------------------------------------------------------------------


class Trace:
    """One request's spans as COPY rows, built as a Flask-like call tree."""

    def __init__(self, rnd: random.Random, project_id: int, route: str, start: datetime) -> None:
        self.rnd = rnd
        self.project_id = project_id
        self.trace_id = uuid.UUID(int=rnd.getrandbits(128)).hex
        self.rows: list[tuple[Any, ...]] = []
        self.start = start
        self._next = 0
        self.route = route

    def span_id(self) -> str:
        self._next += 1
        return f"{self._next:04x}{self.rnd.getrandbits(48):012x}"

    def fn(self, parent: str, name: str, file: str, at: float, dur: float, own: float, library: bool = False) -> str:
        sid = self.span_id()
        attrs = {
            "code.function.name": name,
            "code.file.path": file,
            "code.line.number": 10 + len(name),
            "pystrument.synthetic": True,
            "pystrument.samples": max(1, int(dur * 1000)),
            "pystrument.self_time_ms": round(own * 1000, 3),
            "pystrument.library": library,
        }
        self.rows.append(
            (self.trace_id, sid, self.project_id, parent, name, "INTERNAL",
             as_microseconds(self.start + timedelta(seconds=at)), dur, 0, "", SERVICE, True, json.dumps(attrs), "[]")
        )  # fmt: skip
        return sid


def orders_trace(rnd: random.Random, project_id: int, start: datetime) -> tuple[Trace, float]:
    """A ``GET /orders/{id}``: 15-30 function spans; 20% carry the planted slow discount computation."""
    tr = Trace(rnd, project_id, ROUTE, start)
    request = tr.span_id()
    at = 0.001
    view_start = at
    view = tr.fn(request, "shop.views.order_detail", "/srv/shop/views.py", at, 0.0, 0.0)  # duration set below
    auth = tr.fn(view, "shop.auth.current_user", "/srv/shop/auth.py", at, 0.004, 0.001)
    tr.fn(auth, "shop.db.fetch_one", "/srv/shop/db.py", at + 0.001, 0.003, 0.003)
    at += 0.004
    items = rnd.randint(3, 9)
    loader_dur = items * 0.0025 + 0.001
    loader = tr.fn(view, "shop.orders.load_items", "/srv/shop/orders.py", at, loader_dur, 0.001)
    for k in range(items):  # the N+1
        tr.fn(loader, "shop.db.fetch_one", "/srv/shop/db.py", at + 0.001 + k * 0.0025, 0.0024, 0.0024)
    at += loader_dur
    slow = rnd.random() < 0.2
    discounts = 0.12 * rnd.uniform(0.8, 1.2) if slow else 0.0
    pricing_dur = 0.006 + discounts
    pricing = tr.fn(view, "shop.pricing.compute_total", "/srv/shop/pricing.py", at, pricing_dur, 0.001)
    tr.fn(pricing, "shop.pricing.tax_rate", "/srv/shop/pricing.py", at + 0.001, 0.002, 0.002)
    tr.fn(pricing, "shop.pricing.shipping", "/srv/shop/pricing.py", at + 0.003, 0.003, 0.003)
    if slow:
        pricing_file, rules = "/srv/shop/pricing.py", discounts * 0.3
        d = tr.fn(pricing, "shop.pricing.compute_discounts", pricing_file, at + 0.006, discounts, discounts - rules)
        tr.fn(d, "shop.pricing.coupon_rules", "/srv/shop/rules.py", at + 0.006 + discounts - rules, rules, rules)
    at += pricing_dur
    depth = rnd.randint(2, 5)
    render_dur = 0.012 + 0.002 * depth
    render = tr.fn(view, "flask.templating.render_template", "/venv/flask/templating.py", at, render_dur, 0.001, True)
    parent, t0, dur = render, at, render_dur
    for level in range(depth):
        t0, dur = t0 + 0.0005, dur - 0.001
        parent = tr.fn(parent, f"jinja2.environment.Template.render_{level}", "/venv/jinja2/environment.py", t0, dur,
                       0.001, True)  # fmt: skip
    tr.fn(parent, "shop.templates.format_money", "/srv/shop/templates.py", t0 + 0.0005, 0.002, 0.002)
    at += render_dur
    view_dur = at - view_start + 0.001
    row = tr.rows[0]
    tr.rows[0] = (*row[:7], view_dur, *row[8:])
    duration = view_dur + 0.002
    tr.rows.insert(
        0,
        (tr.trace_id, request, project_id, None, f"GET {ROUTE}", "SERVER", as_microseconds(start), duration, 0, "",
         SERVICE, False,
         json.dumps({"http.route": ROUTE, "http.request.method": "GET", "pystrument.profile.interval_ms": 1}), "[]"),
    )  # fmt: skip
    return tr, duration


def other_trace(rnd: random.Random, project_id: int, route: str, start: datetime) -> tuple[Trace, float]:
    tr = Trace(rnd, project_id, route, start)
    request = tr.span_id()
    view = tr.fn(request, f"shop.views.{route.strip('/').split('/')[0]}", "/srv/shop/views.py", 0.001, 0.03, 0.005)
    for k in range(rnd.randint(12, 25)):
        tr.fn(view, f"shop.util.helper_{k % 7}", "/srv/shop/util.py", 0.002 + k * 0.001, 0.001, 0.001)
    tr.rows.insert(
        0,
        (tr.trace_id, request, project_id, None, f"GET {route}", "SERVER", as_microseconds(start), 0.033, 0, "",
         SERVICE, False,
         json.dumps({"http.route": route}), "[]"),
    )  # fmt: skip
    return tr, 0.033


RECORD_COLUMNS = (
    "trace_id", "span_id", "project_id", "service_name", "method", "route", "path", "status_code",
    "duration", "cpu_time", "memory", "is_error", "timestamp",
)  # fmt: skip


def _with_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _connect_params(url: str) -> dict[str, Any]:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    _, params = engine.dialect.create_connect_args(engine.url)
    return dict(params)


async def prepare(admin_url: str) -> str:
    import asyncpg
    from pystrument_collector.db import Database
    from pystrument_collector.retention import ensure_partitions

    name = f"bench_flame_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(**_connect_params(admin_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = _with_database(admin_url, name)
    db = Database(url)
    await db.start()
    try:
        await db.migrate()
        await ensure_partitions(db, behind=2, ahead=1)
    finally:
        await db.stop()
    return url


async def seed(url: str, args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    import asyncpg
    from pystrument_collector.ingest._batch import Batch
    from pystrument_collector.ingest._writer import _init_connection
    from pystrument_collector.keys import new_project_key
    from pystrument_collector.packs import PACK_COLUMNS, encode_pack

    rnd = random.Random(17)
    conn = await asyncpg.connect(**_connect_params(url))
    try:
        key = new_project_key()
        project_id = int(
            await conn.fetchval(
                "INSERT INTO projects (project_key, name, description, framework, status) "
                "VALUES ($1, 'bench-flame', '', 'flask', 'active') RETURNING id",
                key,
            )
        )
        started = time.perf_counter()
        packs: list[tuple[Any, ...]] = []
        spans = 0
        rows: list[tuple[Any, ...]] = []
        records: list[tuple[Any, ...]] = []
        route_spans = 0
        for i in range(args.requests * 2):
            start = now - timedelta(seconds=3600 * (1 - i / (args.requests * 2)) + 5)
            if i % 2 == 0:
                tr, duration = orders_trace(rnd, project_id, start)
                route_spans += len(tr.rows) - 1
            else:
                tr, duration = other_trace(rnd, project_id, OTHER_ROUTES[i % 3], start)
            spans += len(tr.rows)
            packs.append(encode_pack([r for r in tr.rows if r[11]]))  # the function spans, packed
            rows.extend(r for r in tr.rows if not r[11])  # a request span: a row of spans
            path = tr.route.replace("{id}", str(i))
            records.append(
                (tr.trace_id, tr.rows[0][1], project_id, SERVICE, "GET", tr.route, path, 200, duration, duration / 2,
                 "{}", False, as_microseconds(start))
            )  # fmt: skip
        made = time.perf_counter() - started
        started = time.perf_counter()
        await _init_connection(conn)  # times as integer microseconds, as the writer's connections have them
        await conn.copy_records_to_table("performance_records", records=records, columns=RECORD_COLUMNS)
        await conn.copy_records_to_table("function_spans", records=packs, columns=PACK_COLUMNS)
        await conn.copy_records_to_table("spans", records=rows, columns=Batch.SPAN_COLUMNS)
        await conn.execute("ANALYZE performance_records")
        await conn.execute("ANALYZE function_spans")
        print(
            f"  {len(records):,} requests ({args.requests:,} of {ROUTE}, {route_spans / args.requests:.1f} function "
            f"spans each), {spans:,} spans in {len(packs):,} packs: made in {made:.1f} s, COPY'd + ANALYZE'd in "
            f"{time.perf_counter() - started:.1f} s"
        )
        return {"key": key, "project_id": project_id}
    finally:
        await conn.close()


# -- measuring ----------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summary(values: list[float]) -> str:
    return f"p50 {statistics.median(values):7.1f} ms  p95 {percentile(values, 0.95):7.1f} ms  ({len(values)} runs)"


async def measure_api(url: str, seeded: dict[str, Any], args: argparse.Namespace, now: datetime) -> None:
    from litestar.testing import AsyncTestClient
    from pystrument_analysis.app import create_app
    from pystrument_collector.settings import Settings

    app = create_app(Settings(database_url=url, retention_days=0), api_token=None)
    params = {
        "project_key": seeded["key"],
        "route": ROUTE,
        "start": (now - timedelta(hours=2)).isoformat(),
        "end": now.isoformat(),
    }
    async with AsyncTestClient(app=app, base_url="http://localhost", timeout=120) as client:
        body: dict[str, Any] = {}
        for _ in range(3):  # warm-up
            response = await client.get("/api/v1/performance/flame", params=params)
            assert response.status_code == 200, response.text
            body = response.json()["data"]
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            response = await client.get("/api/v1/performance/flame", params=params)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        size = len(response.content)
    quick_times = []
    async with AsyncTestClient(app=app, base_url="http://localhost", timeout=120) as client:
        for run in range(args.runs + 2):
            started = time.perf_counter()
            response = await client.get("/api/v1/performance/flame", params={**params, "sample": 1000})
            if run >= 2:
                quick_times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        quick = response.json()["data"]
    planted = [i for i, f in enumerate(body["functions"]) if f["name"] == "shop.pricing.compute_discounts"]
    nodes = body["nodes"]
    width = sum(t for t, f in zip(nodes["total"], nodes["function"], strict=True) if f in planted) / nodes["total"][0]
    print(
        f"  GET /flame (route, {body['profiled']:,} requests, {body['span_count']:,} spans -> "
        f"{len(nodes['parent'])} call paths, {size / 1024:.0f} KiB JSON): {summary(times)}"
    )
    print(f"  planted shop.pricing.compute_discounts: {width:.1%} of the route's time")
    q_planted = [i for i, f in enumerate(quick["functions"]) if f["name"] == "shop.pricing.compute_discounts"]
    q_nodes = quick["nodes"]
    q_width = sum(t for t, f in zip(q_nodes["total"], q_nodes["function"], strict=True) if f in q_planted)
    print(
        f"  GET /flame&sample=1000 (every {quick['stride']}th: {quick['profiled']:,} requests, "
        f"{quick['span_count']:,} spans): {summary(quick_times)}; planted function {q_width / q_nodes['total'][0]:.1%}"
    )

    await breakdown(url, seeded, args, now)


async def breakdown(url: str, seeded: dict[str, Any], args: argparse.Namespace, now: datetime) -> None:
    """The flame endpoint's work step by step, without HTTP: the packs' SQL read, zlib, reading each pack's columns
    as stored, merging them by call path (``Merge.add_pack``, as the endpoint does for a trace's one pack); and, for
    comparison, the span-by-span path (every span decoded to a row, then merged) that packs split across batches
    take."""
    import zlib

    import asyncpg
    from pystrument_analysis.api.services.flame import FLAME_ATTRIBUTES, Merge, pack_spans
    from pystrument_collector.packs import decode_pack_tree

    conn = await asyncpg.connect(**_connect_params(url))
    steps: dict[str, list[float]] = {
        "SQL read of the packs": [],
        "zlib": [],
        "columns as stored": [],
        "merge by call path": [],
        "span by span: decode": [],
        "span by span: merge": [],
    }
    try:
        for run in range(max(3, args.runs // 3) + 1):
            t0 = time.perf_counter()
            rows = await conn.fetch(PACKS_SQL, seeded["project_id"], ROUTE, now - timedelta(hours=2), now)
            t1 = time.perf_counter()
            for row in rows:
                zlib.decompress(row[4])
            t2 = time.perf_counter()
            packs = [decode_pack_tree(row[4], FLAME_ATTRIBUTES) for row in rows]
            t3 = time.perf_counter()
            merged = Merge()
            for row, pack in zip(rows, packs, strict=True):
                merged.add_pack(row[1], pack)
            t4 = time.perf_counter()
            spans: list[tuple[Any, ...]] = []
            for row in rows:
                pack_spans(spans, row[1], row[3], row[4], 0, 2**62)
            t5 = time.perf_counter()
            Merge().add_spans(spans)
            t6 = time.perf_counter()
            if run:
                zlib_ms = t2 - t1
                took = (t1 - t0, zlib_ms, t3 - t2 - zlib_ms, t4 - t3, t5 - t4 - zlib_ms, t6 - t5)
                for key, value in zip(steps, took, strict=True):
                    steps[key].append(value * 1000)
        print(f"  its steps ({len(rows):,} packs, {merged.span_count:,} spans, no HTTP):")
        for key, values in steps.items():
            print(f"    {key:<28} {summary(values)}")
    finally:
        await conn.close()


# Installed before any page script: the moment (ms since navigation start) the flame graph is first drawn.
# The page draws an even spread of 1,000 requests first, then every request (``data-stride`` 1 on the summary).
PROBE = """
new MutationObserver(() => {
  const el = document.querySelector('[data-testid=agg-flame]');
  const summary = document.querySelector('[data-testid=flame-summary]');
  if (!el || !(Number(el.dataset.drawn) > 0)) return;
  if (window.__flameDrawn === undefined) window.__flameDrawn = performance.now();
  if (window.__flameFull === undefined && summary?.dataset.stride === '1' && summary?.dataset.refining === 'false')
    window.__flameFull = performance.now();
}).observe(document, { subtree: true, childList: true, attributes: true });
"""


class _Server:
    """The real app under uvicorn in a thread (as the tests' LiveServer)."""

    def __init__(self, url: str) -> None:
        import socket

        import uvicorn
        from pystrument_analysis.app import create_app
        from pystrument_collector.settings import Settings

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        app = create_app(Settings(database_url=url, retention_days=0), api_token=None)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        import httpx

        self.thread.start()
        base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    return base
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not become healthy")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def measure_page(url: str, seeded: dict[str, Any], args: argparse.Namespace, now: datetime) -> None:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        print(f"  browser part skipped: {CHROMIUM} missing")
        return
    lo, hi = (now - timedelta(hours=2)).isoformat(), now.isoformat()
    path = f"/projects/{seeded['project_id']}/flame?route={quote(ROUTE)}&from={quote(lo)}&to={quote(hi)}"
    with _Server(url) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True)
        try:
            times: list[float] = []
            full: list[float] = []
            drawn = 0
            for run in range(args.page_runs + 1):
                context = browser.new_context(viewport={"width": 1366, "height": 900})
                context.add_init_script(PROBE)
                page = context.new_page()
                page.goto(base + path)
                page.wait_for_function("() => window.__flameFull !== undefined", timeout=60_000)
                elapsed, whole = page.evaluate("[window.__flameDrawn, window.__flameFull]")
                drawn = int(page.get_attribute("[data-testid=agg-flame]", "data-drawn") or 0)
                context.close()
                if run:  # the first load warms the server's and the browser's caches
                    times.append(float(elapsed))
                    full.append(float(whole))
            page_path = path.split("?")[0]
            print(f"  page {page_path}: navigation start -> first flame graph drawn (1,000 requests): {summary(times)}")
            print(
                f"  page {page_path}: navigation start -> all {args.requests:,} merged, drawn ({drawn} frames): "
                f"{summary(full)}"
            )
        finally:
            browser.close()


async def run_all(admin_url: str, args: argparse.Namespace) -> tuple[str, dict[str, Any], datetime]:
    now = datetime.now(UTC).replace(microsecond=0)
    print(f"bench_flame: {args.requests:,} requests of {ROUTE} over the last hour (+ as many of other routes)")
    url = await prepare(admin_url)
    seeded = await seed(url, args, now)
    print("latency:")
    await measure_api(url, seeded, args, now)
    return url, seeded, now


def _run(admin_url: str, args: argparse.Namespace) -> None:
    url, seeded, now = asyncio.run(run_all(admin_url, args))
    if not args.no_browser:
        measure_page(url, seeded, args, now)
    print(f"  (load average {os.getloadavg()[0]:.1f}; {os.cpu_count()} CPUs)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.select and "flame" not in args.select:
        print("bench_flame: not selected")
        return 0
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    url = os.environ.get("PYSTRUMENT_DATABASE_URL")
    if url:
        _run(url, args)
        return 0
    from pystrument_collector.db.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="pystrument-bench-flame-") as tmp:
        os.chmod(tmp, 0o755)  # pgserver runs Postgres as its own user when we are root
        embedded = EmbeddedPostgres(Path(tmp))
        admin = embedded.start()
        try:
            _run(admin, args)
        finally:
            embedded.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
