"""Citus: the per-project tables hash-distributed by ``project_id``, colocated; ``projects`` a reference table.

Run by ``pystrument migrate`` (and the server's start-up migration) after Alembic, only when the database has
the ``citus`` extension; on plain Postgres nothing here runs. Idempotent: a table already distributed is left
as it is, so every start may call it.

Two things Postgres does with triggers are done otherwise on Citus, which runs no trigger on a distributed
table by default:

- a deleted project's spans, function span packs and logs: a foreign key to the ``projects`` reference table,
  ``ON DELETE CASCADE``
  (plain Postgres uses a statement trigger instead, to spare the per-row check on the high-volume tables);
- ``route_rollups``: the writer adds the records it inserted through ``pystrument_rollup_add`` (the 0004/0005/0010
  trigger's own aggregate); retention deletes the rollup buckets that ended before its cutoff.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from types import ModuleType

from sqlalchemy import text
from sqlalchemy.engine import Connection

logger = logging.getLogger(__name__)

# Distributed by project_id, colocated with the first (so a project's rows of every table share a node).
DISTRIBUTED_TABLES = ("spans", "performance_records", "route_rollups", "analyses", "logs", "function_spans")
REFERENCE_TABLES = ("projects",)
# Tables whose project deletion cascades by a foreign key on Citus (the plain schema uses triggers for two).
CASCADE_TABLES = DISTRIBUTED_TABLES
DROPPED_TRIGGERS = (
    ("projects_delete_spans", "projects"),
    ("projects_delete_logs", "projects"),
    ("projects_delete_function_spans", "projects"),
    ("records_rollup_insert", "performance_records"),
    ("records_rollup_delete", "performance_records"),
    ("records_rollup_update", "performance_records"),
    ("records_rollup_truncate", "performance_records"),
)

_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations" / "versions"

ROLLUP_ADD_FUNCTION = """
CREATE OR REPLACE FUNCTION pystrument_rollup_add(p_ids bigint[], p_times timestamptz[], p_services text[],
    p_methods text[], p_routes text[], p_paths text[], p_durations double precision[], p_errors boolean[])
RETURNS void LANGUAGE plpgsql AS $body$
BEGIN
    {aggregate};
END
$body$
"""

ROLLUP_ADD_SOURCE = (
    "unnest(p_ids, p_times, p_services, p_methods, p_routes, p_paths, p_durations, p_errors) "
    'AS r(project_id, "timestamp", service_name, method, route, path, duration, is_error)'
)


def _migration(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"pystrument_migration_{name[:4]}", _MIGRATIONS / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rollup_add_function() -> str:
    """``pystrument_rollup_add``: the insert trigger's aggregate (0004 with 0005's merge, 0010's grains) over given
    rows."""
    aggregate = _migration("0010_quarter_hour_rollups.py").aggregate(ROLLUP_ADD_SOURCE)
    return ROLLUP_ADD_FUNCTION.format(aggregate=aggregate)


def is_citus(conn: Connection) -> bool:
    """Whether the database has the ``citus`` extension."""
    return bool(conn.scalar(text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")))


def distribution(conn: Connection) -> dict[str, str]:
    """Citus tables by name: ``'h'`` hash-distributed, ``'n'`` reference (none when not on Citus)."""
    if not is_citus(conn):
        return {}
    rows = conn.execute(text("SELECT logicalrelid::regclass::text, partmethod FROM pg_dist_partition"))
    return {str(name): str(method) for name, method in rows}


def _project_foreign_keys(conn: Connection) -> list[tuple[str, str]]:
    rows = conn.execute(
        text(
            "SELECT c.conrelid::regclass::text, c.conname FROM pg_constraint c "
            "WHERE c.contype = 'f' AND c.confrelid = 'projects'::regclass AND c.conparentid = 0"
        )
    )
    return [(str(table), str(name)) for table, name in rows]


def distribute(conn: Connection) -> list[str]:
    """Distribute what is not yet (in the caller's transaction); returns the tables it distributed."""
    if not is_citus(conn):
        return []
    done = distribution(conn)
    changed: list[str] = []
    conn.execute(text("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'"))
    for trigger, table in DROPPED_TRIGGERS:
        found = conn.scalar(
            text("SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = :g AND tgrelid = to_regclass(:t))"),
            {"g": trigger, "t": table},
        )
        if found:  # (Citus refuses even DROP TRIGGER IF EXISTS on a table it manages)
            conn.execute(text(f"DROP TRIGGER {trigger} ON {table}"))
    conn.execute(text(rollup_add_function()))  # every time: a later migration may have changed the aggregate
    if "projects" not in done:
        # A local table's foreign key would stop projects from becoming a reference table: drop, then re-add.
        for table, name in _project_foreign_keys(conn):
            conn.execute(text(f"ALTER TABLE {table} DROP CONSTRAINT {name}"))
        conn.execute(text("SELECT create_reference_table('projects')"))
        changed.append("projects")
    colocate = "none"
    for table in DISTRIBUTED_TABLES:
        if table not in done:
            conn.execute(
                text("SELECT create_distributed_table(:t, 'project_id', colocate_with => :c)"),
                {"t": table, "c": colocate},
            )
            changed.append(table)
        colocate = DISTRIBUTED_TABLES[0]
    referencing = {table for table, _ in _project_foreign_keys(conn)}
    for table in CASCADE_TABLES:
        if table not in referencing:
            conn.execute(
                text(
                    f"ALTER TABLE {table} ADD CONSTRAINT {table}_project_id_fkey FOREIGN KEY (project_id) "
                    "REFERENCES projects (id) ON DELETE CASCADE"
                )
            )
    if changed:
        logger.info("citus: distributed %s", ", ".join(changed))
    return changed


__all__ = ["DISTRIBUTED_TABLES", "REFERENCE_TABLES", "distribute", "distribution", "is_citus", "rollup_add_function"]
