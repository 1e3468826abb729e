"""The schema's and the queries' Citus invariants, checked on plain Postgres (CI has no Citus).

- Every primary key and unique index of the per-project tables includes ``project_id`` (the distribution
  column: Citus refuses a unique constraint without it).
- Every statement the API, the analysis and the writer run against those tables names one ``project_id``
  (so on Citus it runs on one shard), except the few listed in ``FAN_OUT`` with the reason they need every
  project. Statements are captured with a SQLAlchemy event while the endpoints run; the writer (asyncpg, not
  SQLAlchemy) is checked on its SQL text.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

PER_PROJECT_TABLES = ("spans", "performance_records", "route_rollups", "analyses", "logs")
WINDOW = {"start": "2024-08-24T10:00:00Z", "end": "2024-08-24T11:00:00Z"}
_TABLE_REF = re.compile(r"\b(?:FROM|JOIN|UPDATE|INTO)\s+(" + "|".join(PER_PROJECT_TABLES) + r")\b", re.IGNORECASE)
# project_id compared with a value (a bind parameter or a literal), not merely joined to another column.
_SCOPED = re.compile(r"\bproject_id\s*(?:=\s*(?:\$\d|%\(|:\w|\d|CAST)|IN\s*\(\s*(?:\$|\d|POSTCOMPILE))", re.IGNORECASE)

# Statements that need every project, by a fragment of their text, with why. On Citus each is a multi-shard
# read or write; none is on a request's hot path.
FAN_OUT = {
    # The analysis queue: a worker looks for the oldest runnable job of any project, then claims it with an
    # update that names its project.
    "WHERE analyses.status = $1::VARCHAR OR analyses.status = $2::VARCHAR AND analyses.lease_expires_at < now()": (
        "the queue's candidates"
    ),
    "SELECT count(*) AS count_1 \nFROM analyses \nWHERE analyses.status = $1::VARCHAR": "queue depth for the ETA",
    # GET /analysis/results/{id} answers by the unguessable id alone (seed 5.3.2 has no project in it).
    "WHERE analyses.id = $1::VARCHAR": "a result read by its id alone",
    # At shutdown a worker hands its running jobs back to the queue, whatever their project.
    "WHERE analyses.claimed_by = $7::VARCHAR AND analyses.status = $8::VARCHAR": "a stopping worker's jobs",
}


def _touches(statement: str) -> bool:
    return bool(_TABLE_REF.search(statement))


def _scoped(statement: str) -> bool:
    """A filter on one project, or a single-row INSERT whose columns include it (Citus routes it by the value)."""
    insert = re.match(r"\s*INSERT INTO \w+ \(([^)]*)\) VALUES", statement, re.IGNORECASE)
    if insert:
        return "project_id" in insert.group(1)
    return bool(_SCOPED.search(statement))


def _unscoped(statements: list[str]) -> list[str]:
    return [s for s in statements if _touches(s) and not _scoped(s) and not any(f in s for f in FAN_OUT)]


@pytest.fixture
def captured() -> Iterator[list[str]]:
    """Every statement any SQLAlchemy engine runs meanwhile (the API's and the analysis thread's)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(Engine, "before_cursor_execute", record)


async def test_every_unique_key_of_a_per_project_table_includes_project_id(db: Any) -> None:
    from sqlalchemy import text

    query = text(
        """
        SELECT t.relname, i.relname, x.indisprimary,
               bool_or(a.attname = 'project_id') AS has_project
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY (x.indkey)
        WHERE x.indisunique AND (t.relname = ANY (:tables) OR EXISTS (
            SELECT 1 FROM pg_inherits h JOIN pg_class p ON p.oid = h.inhparent
            WHERE h.inhrelid = t.oid AND p.relname = ANY (:tables)))
        GROUP BY t.relname, i.relname, x.indisprimary
        """
    )
    async with db.engine.connect() as conn:
        rows = (await conn.execute(query, {"tables": list(PER_PROJECT_TABLES)})).all()
    seen = {row[0] for row in rows}
    assert set(PER_PROJECT_TABLES) <= seen, f"no unique key found on {set(PER_PROJECT_TABLES) - seen}"
    missing = [(table, index) for table, index, _, has_project in rows if not has_project]
    assert missing == [], f"unique indexes without project_id: {missing}"
    primary = {row[0] for row in rows if row[2]}
    assert set(PER_PROJECT_TABLES) <= primary


async def test_the_models_key_per_project_tables_by_project_id() -> None:
    from pystrument_collector.db.models import Base

    for name in PER_PROJECT_TABLES:
        table = Base.metadata.tables[name]
        assert "project_id" in table.primary_key.columns, name
        for index in table.indexes:
            if index.unique:
                assert "project_id" in index.columns, (name, index.name)


def test_the_writers_statements_name_the_project() -> None:
    from pystrument_collector.ingest import _writer

    for name in ("SPANS_SQL", "RECORDS_SQL", "LOGS_SQL"):
        sql = getattr(_writer, name)
        conflict = re.search(r"ON CONFLICT \(([^)]*)\)", sql)
        assert conflict is not None and conflict.group(1).startswith("project_id"), name
    assert "x.project_id = $4" in _writer.REUSED_SQL
    # COPY rows carry project_id; the unique key routes each row on Citus.
    from pystrument_collector.ingest._batch import Batch

    assert "project_id" in Batch.SPAN_COLUMNS and "project_id" in Batch.LOG_COLUMNS


async def _plant(perf: Any, t: Any, project: Any, prefix: str) -> str:
    trace = ""
    for i in range(12):
        trace = f"{prefix}{i:030x}"
        start = t(i * 60)
        duration = 0.9 if i % 6 == 5 else 0.1
        root = await perf.request(project, trace, start=start, duration=duration, route="/checkout", path="/checkout")
        view = await perf.span(
            project, trace, "app.views.checkout", start, duration - 0.001, parent=root, synthetic=True,
            attributes={"code.function.name": "app.views.checkout", "pystrument.self_time_ms": 10},
        )  # fmt: skip
        for q in range(4):
            await perf.span(
                project, trace, "SELECT item", t(i * 60 + 0.01 + q * 0.01), 0.008, parent=view, kind="CLIENT",
                attributes={"db.statement": "SELECT * FROM items WHERE id = ?", "db.system": "postgresql"},
            )  # fmt: skip
    return trace


async def _get(client: Any, path: str, **params: Any) -> dict[str, Any]:
    r = await client.get(path, params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["code"] == 0, body
    return dict(body["data"])


async def test_every_api_and_analysis_query_names_one_project(
    client: Any, perf: Any, t: Any, captured: list[str]
) -> None:
    project = await perf.project("shop")
    other = await perf.project("other")
    trace = await _plant(perf, t, project, "ab")
    await _plant(perf, t, other, "ab")  # the same trace ids in another project
    key = project.project_key
    captured.clear()

    listing = await _get(client, "/api/v1/performance/records", project_key=key, **WINDOW)
    assert listing["total"] == 12
    for sort in ("duration", "timestamp"):
        await _get(client, "/api/v1/performance/records", project_key=key, sort=sort, route="/checkout", **WINDOW)
    detail = await _get(client, f"/api/v1/performance/records/{trace}", project_key=key)
    assert len(detail["spans"]) == 6
    stats = await _get(client, "/api/v1/performance/stats", project_key=key, **WINDOW)
    assert stats["summary"]["count"] == 12
    await _get(client, "/api/v1/performance/stats", project_key=key, range="24h")
    await _get(client, "/api/v1/performance/functions", project_key=key, route="/checkout", **WINDOW)
    await _get(client, "/api/v1/performance/routes/differential", project_key=key, route="/checkout", **WINDOW)
    r = await client.get(f"/api/v1/performance/records/{trace}/speedscope", params={"project_key": key})
    assert r.status_code == 200, r.text  # a speedscope file, not the envelope
    await _get(client, f"/api/v1/projects/{key}")

    r = await client.post(
        "/api/v1/analysis/trigger", json={"trace_id": trace, "project_key": key, "ai_service": "builtin"}
    )
    assert r.status_code == 200, r.text
    analysis_id = r.json()["data"]["analysis_id"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        result = await _get(client, f"/api/v1/analysis/results/{analysis_id}", project_key=key)
        if result["status"] in ("completed", "failed"):
            break
        await asyncio.sleep(0.05)
    assert result["status"] == "completed", result
    await _get(client, "/api/v1/analysis/results", project_key=key, trace_id=trace)

    touching = [s for s in captured if _touches(s)]
    assert len(touching) > 15, "the capture saw the endpoints' queries"
    assert any("UPDATE analyses" in s for s in touching), "the analysis worker's statements were captured"
    assert _unscoped(captured) == []
