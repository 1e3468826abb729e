"""pystrument on a real Citus cluster: ``PYSTRUMENT_TEST_CITUS_URL`` names its coordinator, else these skip.

The database behind that URL is wiped (pystrument's tables dropped) and migrated: give one kept for the tests.
Checks that ``pystrument migrate`` distributes the six tables as documented, that the full path works on it
(OTLP ingest, list, detail, stats, hot functions, differential, analysis), and, with ``EXPLAIN`` on the
coordinator, that every per-project statement the API and the analysis run goes to one shard (one task).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

CITUS_ENV = "PYSTRUMENT_TEST_CITUS_URL"
pytestmark = pytest.mark.skipif(not os.environ.get(CITUS_ENV), reason=f"{CITUS_ENV} does not name a Citus coordinator")

WIPE = """
DROP TABLE IF EXISTS spans, function_spans, logs, performance_records, route_rollups, analyses, api_sessions, projects,
    alembic_version CASCADE;
DROP FUNCTION IF EXISTS pystrument_delete_project_spans, pystrument_delete_project_logs,
    pystrument_delete_project_function_spans, pystrument_rollup_insert,
    pystrument_rollup_delete, pystrument_rollup_update, pystrument_rollup_truncate, pystrument_rollup_rebuild,
    pystrument_rollup_add, pystrument_duration_bucket CASCADE;
"""


@pytest.fixture
async def citus_url() -> AsyncIterator[str]:
    import asyncpg
    from pystrument_collector.settings import normalize_database_url
    from sqlalchemy.engine import make_url

    url = normalize_database_url(os.environ[CITUS_ENV])
    assert url is not None
    u = make_url(url)
    conn = await asyncpg.connect(user=u.username, password=u.password, host=u.host, port=u.port, database=u.database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'citus'") == 1
        await conn.execute(WIPE)
    finally:
        await conn.close()
    yield url


@pytest.fixture
async def citus_db(citus_url: str) -> AsyncIterator[Any]:
    from pystrument_collector.db import Database

    db = Database(citus_url)
    await db.start()
    await db.migrate()
    yield db
    await db.stop()


async def test_migrate_distributes_the_tables_by_project(citus_db: Any) -> None:
    from sqlalchemy import text

    async with citus_db.engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT table_name::text, citus_table_type, distribution_column, colocation_id FROM citus_tables")
            )
        ).all()
    tables = {r[0]: r for r in rows}
    assert tables["projects"][1] == "reference"
    per_project = ("spans", "performance_records", "route_rollups", "analyses", "logs", "function_spans")
    colocation = {tables[name][3] for name in per_project}
    for name in per_project:
        assert tables[name][1:3] == ("distributed", "project_id"), tables[name]
    assert len(colocation) == 1, "the per-project tables are colocated"
    await citus_db.migrate()  # again: nothing left to do, no error


def _sibling(name: str) -> Any:
    """Another test module of this folder, by path (pytest imports test modules in importlib mode)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(f"_pystrument_{name[:-3]}", Path(__file__).with_name(name))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _LiveServer:
    """The real app under uvicorn in a thread of this process (so its SQL can be captured), on a free port."""

    def __init__(self, settings: Any) -> None:
        import socket
        import threading

        import uvicorn
        from pystrument_analysis.app import create_app

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        import httpx

        url = f"http://127.0.0.1:{self.port}"
        self.thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not become healthy")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


async def _explain_tasks(conn: Any, statement: str, params: Any) -> int:
    """Tasks in the Citus plan of one captured statement (asyncpg's $n parameters kept)."""
    rows = await conn.fetch("EXPLAIN (COSTS OFF) " + statement, *params)
    plan = "\n".join(r[0] for r in rows)
    counts = [int(n) for n in re.findall(r"Task Count: (\d+)", plan)]
    return max(counts) if counts else 0


async def test_the_full_path_runs_on_one_shard_per_query(citus_url: str, tmp_path: Any) -> None:
    """OTLP spans in, every read out, the analysis run; each captured per-project statement plans to one task."""
    import asyncpg
    import httpx
    from pystrument_collector.settings import Settings
    from sqlalchemy import event
    from sqlalchemy.engine import Engine, make_url

    scope = _sibling("test_schema_project_scope.py")
    fan_out, touches = scope.FAN_OUT, scope._touches

    captured: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        captured.append((statement, parameters))

    settings = Settings(database_url=citus_url, data_dir=tmp_path, retention_days=0, grpc_port=0)
    event.listen(Engine, "before_cursor_execute", record)
    try:
        with _LiveServer(settings) as url:
            result = await asyncio.to_thread(_exercise, url, httpx)
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert result["analysis"]["status"] == "completed", result["analysis"]
    assert result["analysis"]["bottleneck_analysis"], "the builtin analysis names a bottleneck"

    u = make_url(citus_url)
    conn = await asyncpg.connect(user=u.username, password=u.password, host=u.host, port=u.port, database=u.database)
    try:
        multi: list[tuple[int, str]] = []
        checked = 0
        for statement, params in captured:
            if not touches(statement) or any(f in statement for f in fan_out):
                continue
            if not statement.lstrip().upper().startswith(("SELECT", "WITH", "UPDATE", "DELETE")):
                continue  # single-row INSERTs route by their value
            values = list(params) if isinstance(params, (list, tuple)) else []
            try:
                tasks = await _explain_tasks(conn, statement, values)
            except asyncpg.PostgresError as exc:  # e.g. a statement needing types EXPLAIN cannot infer
                multi.append((-1, f"{exc}: {statement[:300]}"))
                continue
            checked += 1
            if tasks > 1:
                multi.append((tasks, statement[:300]))
    finally:
        await conn.close()
    print(f"citus: {checked} per-project statements planned, each to one task")
    assert checked >= 10
    assert multi == [], multi


def _exercise(url: str, httpx: Any) -> dict[str, Any]:
    """Create a project, send OTLP/JSON spans of 30 requests, read everything back, run an analysis."""
    api = url + "/api/v1"
    created = httpx.post(api + "/projects", json={"name": "citus-shop", "framework": "flask"}, timeout=60)
    key = created.json()["data"]["project_key"]
    now = time.time_ns()
    spans = []
    traces = []
    for i in range(30):
        trace = f"{0xC17A5 + i:032x}"
        traces.append(trace)
        start = now - (60 - i) * 1_000_000_000
        duration = 900_000_000 if i % 10 == 9 else 100_000_000
        root, view = f"{i * 16 + 1:016x}", f"{i * 16 + 2:016x}"

        def attr(k: str, v: Any) -> dict[str, Any]:
            value = {"boolValue": v} if isinstance(v, bool) else (
                {"intValue": str(v)} if isinstance(v, int) else {"stringValue": str(v)}
            )  # fmt: skip
            return {"key": k, "value": value}

        spans.append({
            "traceId": trace, "spanId": root, "name": "GET /checkout", "kind": 2,
            "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + duration),
            "attributes": [attr("http.request.method", "GET"), attr("http.route", "/checkout"),
                           attr("url.path", "/checkout"), attr("http.response.status_code", 200)],
        })  # fmt: skip
        spans.append({
            "traceId": trace, "spanId": view, "parentSpanId": root, "name": "shop.views.checkout", "kind": 1,
            "startTimeUnixNano": str(start + 1000), "endTimeUnixNano": str(start + duration - 1000),
            "attributes": [attr("code.function.name", "shop.views.checkout"), attr("pystrument.synthetic", True),
                           attr("pystrument.self_time_ms", 5), attr("code.file.path", "/app/shop/views.py")],
        })  # fmt: skip
        for q in range(5):
            qs = start + 2_000_000 + q * 3_000_000
            spans.append({
                "traceId": trace, "spanId": f"{i * 16 + 3 + q:016x}", "parentSpanId": root, "name": "SELECT item",
                "kind": 3, "startTimeUnixNano": str(qs), "endTimeUnixNano": str(qs + 2_000_000),
                "attributes": [attr("db.system", "postgresql"),
                               attr("db.statement", "SELECT * FROM items WHERE id = %s")],
            })  # fmt: skip
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
                "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}],
            }
        ]
    }
    r = httpx.post(url + "/v1/traces", json=body, headers={"x-project-key": key}, timeout=60)
    assert r.status_code == 200, r.text

    def get(path: str, **params: Any) -> dict[str, Any]:
        resp = httpx.get(api + path, params={"project_key": key, **params}, timeout=30)
        assert resp.status_code == 200, resp.text
        data = resp.json()
        assert data["code"] == 0, data
        return dict(data["data"])

    listing = get("/performance/records", size=50)
    assert listing["total"] == 30, listing["total"]
    get("/performance/records", sort="duration", order="desc", route="/checkout")
    detail = get(f"/performance/records/{traces[9]}")
    assert len(detail["spans"]) == 7
    from datetime import UTC, datetime, timedelta

    end = datetime.now(UTC) + timedelta(minutes=1)
    day = {"start": (end - timedelta(hours=24)).isoformat(), "end": end.isoformat()}
    hour = {"start": (end - timedelta(hours=1)).isoformat(), "end": end.isoformat()}
    stats = get("/performance/stats", **day)
    assert stats["summary"]["count"] == 30
    get("/performance/stats", route="/checkout", **hour)
    hot = get("/performance/functions", route="/checkout", **hour)
    assert hot["functions"], hot
    get("/performance/routes/differential", route="/checkout", **hour)
    get(f"/projects/{key}")
    trigger = httpx.post(
        api + "/analysis/trigger", json={"trace_id": traces[9], "project_key": key, "ai_service": "builtin"}, timeout=60
    ).json()
    assert trigger["code"] == 0, trigger
    analysis_id = trigger["data"]["analysis_id"]
    deadline = time.monotonic() + 30
    analysis: dict[str, Any] = {}
    while time.monotonic() < deadline:
        analysis = get(f"/analysis/results/{analysis_id}")
        if analysis["status"] in ("completed", "failed"):
            break
        time.sleep(0.1)
    get("/analysis/results", trace_id=traces[9])
    return {"analysis": analysis, "key": key}


async def test_partitions_retention_and_project_deletion_on_citus(citus_db: Any) -> None:
    """Day partitions made through Citus (taking rows over from the default one), expired rows and rollups gone,
    a deleted project's rows removed by the foreign keys' cascade."""
    from datetime import UTC, datetime, timedelta

    from pystrument_collector import retention
    from sqlalchemy import text

    now = datetime.now(UTC).replace(microsecond=0)
    ahead = now + timedelta(days=6)
    old = now - timedelta(days=5)
    span = (
        "INSERT INTO spans (project_id, trace_id, span_id, parent_span_id, name, kind, start_time, duration, "
        "status_code, status_message, service_name, synthetic, attributes, events) VALUES "
        "(:p, :t, :s, NULL, 'GET /', 'SERVER', :st, 0.1, 0, '', 'svc', false, '{}', '[]')"
    )
    record = (
        "INSERT INTO performance_records (project_id, trace_id, span_id, service_name, method, route, path, "
        "status_code, duration, cpu_time, memory, is_error, timestamp) VALUES "
        "(:p, :t, :s, 'svc', 'GET', '/', '/', 200, 0.1, NULL, '{}', false, :st)"
    )
    async with citus_db.engine.begin() as conn:
        pid = (
            await conn.execute(
                text(
                    "INSERT INTO projects (project_key, name, description, framework, status) "
                    "VALUES ('proj_citus_ret', 'r', '', '', 'active') RETURNING id"
                )
            )
        ).scalar_one()
        for i, at in enumerate([ahead, ahead, old, old, now]):
            await conn.execute(text(span), {"p": pid, "t": f"{i:032x}", "s": f"{i:016x}", "st": at})
            await conn.execute(text(record), {"p": pid, "t": f"{i:032x}", "s": f"{i:016x}", "st": at})
        await conn.execute(
            text(
                "SELECT pystrument_rollup_add(ARRAY[:p, :p]::int8[], ARRAY[:a, :b]::timestamptz[], "
                "ARRAY['svc','svc'], ARRAY['GET','GET'], ARRAY['/','/'], ARRAY['/','/'], ARRAY[0.1, 0.1], "
                "ARRAY[false, false])"
            ),
            {"p": pid, "a": old, "b": now},
        )

    made = await retention.ensure_partitions(citus_db, ahead.date(), behind=0, ahead=0)
    assert retention.partition_name(ahead.date()) in made.created and made.moved_from_default >= 2
    expired = await retention.drop_expired(citus_db, 3, now)
    assert expired.records_deleted == 2
    async with citus_db.engine.connect() as conn:
        kept = await conn.scalar(text("SELECT count(*) FROM performance_records WHERE project_id = :p"), {"p": pid})
        first = "SELECT min(bucket_start) FROM route_rollups WHERE project_id = :p"
        oldest = await conn.scalar(text(first), {"p": pid})
        placed = await conn.scalar(
            text(f"SELECT count(*) FROM {retention.partition_name(ahead.date())} WHERE project_id = :p"), {"p": pid}
        )
    assert kept == 3 and placed == 2
    assert oldest is not None and oldest > now - timedelta(days=3)  # the old day's rollups went with its records

    async with citus_db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM projects WHERE id = :p"), {"p": pid})
    async with citus_db.engine.connect() as conn:
        for table in ("spans", "function_spans", "performance_records", "route_rollups"):
            left = await conn.scalar(text(f"SELECT count(*) FROM {table} WHERE project_id = :p"), {"p": pid})
            assert left == 0, table
