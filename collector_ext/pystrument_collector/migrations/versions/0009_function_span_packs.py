"""function_spans: the SDK's function spans stored packed (one row per trace, service and ingest batch)

A ``spans`` row costs ~570 bytes on disk a span; issue #18 asks for <= 150. Function spans (``synthetic``, ~90% of
all spans) move to ``function_spans``: one row holds the function spans of one trace and service from one ingest
batch, compressed (``pystrument_collector.packs``, the one codec). Partitioned by day on the pack's first start
time like ``spans`` (``function_spans_pYYYYMMDD``, made by retention; a default partition), keyed by
``(project_id, trace_id, start_time, digest)`` so a resent batch is stored once; a statement trigger deletes a
deleted project's packs (on Citus a foreign key does). The existing synthetic rows of ``spans`` are packed in
place, one pack per trace and service, and deleted from ``spans``; request and client spans stay rows.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import op
from pystrument_collector.packs import as_microseconds, decode_pack, pack_rows
from sqlalchemy import text

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TABLE = """
CREATE TABLE function_spans (
    project_id BIGINT NOT NULL,
    trace_id VARCHAR(32) COLLATE "C" NOT NULL,
    service_name VARCHAR(200) NOT NULL,
    start_time TIMESTAMP WITH TIME ZONE NOT NULL,
    end_time TIMESTAMP WITH TIME ZONE NOT NULL,
    n INTEGER NOT NULL,
    digest BIGINT NOT NULL,
    data BYTEA NOT NULL,
    CONSTRAINT function_spans_pkey PRIMARY KEY (project_id, trace_id, start_time, digest)
) PARTITION BY RANGE (start_time)
"""

CASCADE_FUNCTION = """
CREATE FUNCTION pystrument_delete_project_function_spans() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM function_spans WHERE project_id IN (SELECT id FROM deleted_projects);
    RETURN NULL;
END
$$
"""

CASCADE_TRIGGER = """
CREATE TRIGGER projects_delete_function_spans AFTER DELETE ON projects
REFERENCING OLD TABLE AS deleted_projects
FOR EACH STATEMENT EXECUTE FUNCTION pystrument_delete_project_function_spans()
"""

SPAN_COLUMNS = (
    "trace_id, span_id, project_id, parent_span_id, name, kind, start_time, duration, status_code, status_message, "
    "service_name, synthetic, attributes::text, events::text"
)
BATCH_ROWS = 20_000
_DAY_PARTITION = re.compile(r"^spans_p(\d{8})$")
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _time(us: int) -> datetime:
    return PG_EPOCH + timedelta(microseconds=us)


def _day_partitions() -> None:
    """A ``function_spans`` day partition for each day partition of ``spans``, so moved packs land in them."""
    conn = op.get_bind()
    names = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'spans'::regclass"
        )
    ).scalars()
    for name in names:
        match = _DAY_PARTITION.match(name)
        if not match:
            continue
        day = datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC)
        lo, hi = day.isoformat(), (day + timedelta(days=1)).isoformat()
        op.execute(
            f"CREATE TABLE function_spans_p{match.group(1)} PARTITION OF function_spans "
            f"FOR VALUES FROM ('{lo}') TO ('{hi}')"
        )


def _move_synthetic_rows() -> None:
    """Pack ``spans``' synthetic rows, project by project (one shard each on Citus) and trace by trace in keyset
    order, and delete them from ``spans``."""
    conn = op.get_bind()
    for project_id in conn.execute(text("SELECT id FROM projects ORDER BY id")).scalars().all():
        after: str | None = ""
        while after is not None:
            after = _move_batch(project_id, after)


def _move_batch(project_id: int, after: str) -> str | None:
    """Pack the function spans of the project's next traces after ``after``; the last trace packed, or None."""
    conn = op.get_bind()
    rows = conn.execute(
        text(
            f"SELECT {SPAN_COLUMNS} FROM spans WHERE project_id = :p AND synthetic AND trace_id > :t "
            "ORDER BY trace_id LIMIT :n"
        ),
        {"p": project_id, "t": after, "n": BATCH_ROWS},
    ).all()
    if not rows:
        return None
    last = rows[-1][0]
    if len(rows) == BATCH_ROWS:
        whole = [r for r in rows if r[0] != last]
        if whole:  # the last trace may go on past this batch: it is read whole next time
            rows = whole
        else:  # one trace of more than BATCH_ROWS function spans
            rows = conn.execute(
                text(f"SELECT {SPAN_COLUMNS} FROM spans WHERE project_id = :p AND synthetic AND trace_id = :t"),
                {"p": project_id, "t": last},
            ).all()
    spans = [(*r[:6], as_microseconds(r[6]), *r[7:]) for r in rows]
    packs = [
        {"p": p[0], "t": p[1], "sv": p[2], "st": _time(p[3]), "en": _time(p[4]), "n": p[5], "d": p[6], "data": p[7]}
        for p in pack_rows(spans)
    ]
    conn.execute(
        text(
            "INSERT INTO function_spans (project_id, trace_id, service_name, start_time, end_time, n, digest, "
            "data) VALUES (:p, :t, :sv, :st, :en, :n, :d, :data) ON CONFLICT DO NOTHING"
        ),
        packs,
    )
    trace_ids = sorted({r[0] for r in rows})
    conn.execute(
        text("DELETE FROM spans WHERE project_id = :p AND synthetic AND trace_id = ANY(:t)"),
        {"p": project_id, "t": trace_ids},
    )
    return trace_ids[-1]


def _citus_manages_projects() -> bool:
    """Whether ``projects`` is already a Citus reference table (a database distributed before 0009), where
    Citus refuses a trigger; ``pystrument_collector.db.citus`` then distributes ``function_spans`` with a foreign
    key to ``projects`` that cascades a project's deletion."""
    conn = op.get_bind()
    if not conn.scalar(text("SELECT to_regclass('pg_dist_partition') IS NOT NULL")):
        return False
    found = "SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'projects'::regclass)"
    return bool(conn.scalar(text(found)))


def upgrade() -> None:
    op.execute(TABLE)
    # The data is compressed already: stored as it is, out of line only when a pack is over ~2 kB.
    op.execute("ALTER TABLE function_spans ALTER COLUMN data SET STORAGE EXTERNAL")
    op.execute("CREATE TABLE function_spans_default PARTITION OF function_spans DEFAULT")
    _day_partitions()
    op.execute(CASCADE_FUNCTION)
    if not _citus_manages_projects():  # there the distribution adds a cascading foreign key instead
        op.execute(CASCADE_TRIGGER)
    _move_synthetic_rows()


def _unpack_all() -> None:
    conn = op.get_bind()
    insert = text(
        "INSERT INTO spans (trace_id, span_id, project_id, parent_span_id, name, kind, start_time, duration, "
        "status_code, status_message, service_name, synthetic, attributes, events) VALUES (:trace_id, :span_id, "
        ":project_id, :parent_span_id, :name, :kind, :start_time, :duration, :status_code, :status_message, "
        ":service_name, true, CAST(:attributes AS jsonb), CAST(:events AS jsonb)) ON CONFLICT DO NOTHING"
    )
    import msgspec

    rows = conn.execute(text("SELECT project_id, trace_id, service_name, start_time, data FROM function_spans")).all()
    for row in rows:
        spans: list[dict[str, Any]] = []
        for s in decode_pack(*row):
            values = {k: getattr(s, k) for k in ("trace_id", "span_id", "project_id", "parent_span_id", "name")}
            values.update(kind=s.kind, start_time=s.start_time, duration=s.duration, status_code=s.status_code)
            values.update(status_message=s.status_message, service_name=s.service_name)
            values["attributes"] = msgspec.json.encode(s.attributes).decode()
            values["events"] = msgspec.json.encode(s.events).decode()
            spans.append(values)
        if spans:
            conn.execute(insert, spans)


def downgrade() -> None:
    _unpack_all()
    op.execute("DROP TRIGGER IF EXISTS projects_delete_function_spans ON projects")
    op.execute("DROP FUNCTION pystrument_delete_project_function_spans()")
    op.execute("DROP TABLE function_spans")
