"""Span and log partitions and retention, run by a background maintenance task in the server.

``spans`` (migration 0003, on ``start_time``), ``function_spans`` (0009, on the pack's ``start_time``) and ``logs``
(migration 0006, on ``timestamp``) are range-partitioned by day (UTC). Maintenance, at start and then hourly, for
each of them:

- makes the day partitions ``<table>_pYYYYMMDD`` for yesterday through ``PREMAKE_DAYS`` days ahead, moving any
  rows of those days out of ``<table>_default`` first (rows whose day has no partition, e.g. from a skewed
  clock, land in the default partition and are never refused);
- with ``PYSTRUMENT_RETENTION_DAYS`` = N > 0 (default 7), drops the day partitions that ended more than N days
  ago and deletes older rows from the default partitions and ``performance_records``; 0 keeps everything.

DDL runs with a short ``lock_timeout`` so ingest never waits long behind it (a missed step is retried on the
next run), and under a transaction-level advisory lock so replicas sharing a database take turns. Row deletes
name one project each (one shard on Citus).

On Citus (``pystrument_collector.db.citus``) the partitions of the distributed ``spans`` and ``logs`` are made with
``CREATE TABLE … PARTITION OF`` (Citus distributes them with their parent) and dropped with ``DROP TABLE``; with no
rollup trigger there, retention also deletes the ``route_rollups`` buckets that ended before its cutoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from pystrument_collector.db import Database

logger = logging.getLogger(__name__)

ENV_RETENTION_DAYS = "PYSTRUMENT_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 7
PREMAKE_DAYS = 2
MAINTENANCE_INTERVAL_SECONDS = 3600.0
RETRY_AFTER_FAILURE_SECONDS = 60.0
STARTUP_TIMEOUT_SECONDS = 10.0
DELETE_BATCH_ROWS = 10_000
LOCK_TIMEOUT = "2s"
ADVISORY_LOCK_KEY = 0x70797374726D  # "pystrm": one maintenance run at a time per database

PARTITION_PREFIX = "spans_p"
# Each day-partitioned table and its partition key.
PARTITIONED_TABLES = {"spans": "start_time", "function_spans": "start_time", "logs": "timestamp"}
_PARTITION_NAME = re.compile(r"^(spans|function_spans|logs)_p(\d{8})$")


def retention_days_from_env() -> int:
    """``PYSTRUMENT_RETENTION_DAYS``: days of spans and records kept (default 7; 0 keeps everything)."""
    value = os.environ.get(ENV_RETENTION_DAYS, "").strip()
    if not value:
        return DEFAULT_RETENTION_DAYS
    if not value.isdigit():
        raise ValueError(f"{ENV_RETENTION_DAYS}={value!r} must be a whole number of days (0 keeps data forever)")
    return int(value)


def partition_name(day: date, table: str = "spans") -> str:
    return f"{table}_p{day:%Y%m%d}"


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


@dataclass
class MaintenanceReport:
    """What one maintenance run did."""

    created: list[str] = field(default_factory=list)
    moved_from_default: int = 0
    dropped: list[str] = field(default_factory=list)
    default_rows_deleted: int = 0
    records_deleted: int = 0
    skipped: bool = False  # another server held the maintenance lock


async def _locked(conn: AsyncConnection) -> bool:
    """Take this run's advisory lock and a short lock timeout for the current transaction."""
    await conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    got = await conn.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
    return bool(got)


async def partitions(conn: AsyncConnection, table: str = "spans") -> dict[str, date | None]:
    """Every partition of ``table`` by name, with its day for ``<table>_pYYYYMMDD`` ones (None for others)."""
    rows = await conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:table)"
        ),
        {"table": table},
    )
    found: dict[str, date | None] = {}
    for (name,) in rows:
        match = _PARTITION_NAME.match(name)
        found[name] = datetime.strptime(match.group(2), "%Y%m%d").date() if match else None
    return found


async def span_partitions(conn: AsyncConnection) -> dict[str, date | None]:
    """Every partition of ``spans`` by name, with its day for ``spans_pYYYYMMDD`` ones (None for others)."""
    return await partitions(conn, "spans")


async def _distributed(conn: AsyncConnection, table: str) -> bool:
    """Whether ``table`` is a Citus table (the extension present and the table in its metadata)."""
    found = await conn.scalar(
        text(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') "
            "AND to_regclass('pg_dist_partition') IS NOT NULL"
        )
    )
    if not found:
        return False
    return bool(
        await conn.scalar(
            text("SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = to_regclass(:t))"), {"t": table}
        )
    )


async def _create_distributed_day_partition(
    conn: AsyncConnection, table: str, name: str, key: str, lo: datetime, hi: datetime
) -> int:
    """Citus: the default partition's rows of the day go through a temporary table around the new partition."""
    bounds = {"lo": lo, "hi": hi}
    await conn.execute(text("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'"))
    count = int(
        await conn.scalar(text(f"SELECT count(*) FROM {table}_default WHERE {key} >= :lo AND {key} < :hi"), bounds) or 0
    )
    if count:
        await conn.execute(
            text(
                f"CREATE TEMP TABLE pystrument_moved ON COMMIT DROP AS "
                f"SELECT * FROM {table}_default WHERE {key} >= :lo AND {key} < :hi"
            ),
            bounds,
        )
        await conn.execute(text(f"DELETE FROM {table}_default WHERE {key} >= :lo AND {key} < :hi"), bounds)
    bounds_sql = f"FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}')"
    await conn.execute(text(f"CREATE TABLE {name} PARTITION OF {table} {bounds_sql}"))
    if count:
        await conn.execute(text(f"INSERT INTO {table} SELECT * FROM pystrument_moved"))
    return count


async def create_day_partition(conn: AsyncConnection, day: date, table: str = "spans") -> int:
    """Make ``<table>_pYYYYMMDD`` for ``day`` (in the caller's transaction); returns rows moved from the default."""
    key = PARTITIONED_TABLES[table]
    name = partition_name(day, table)
    lo, hi = _day_start(day), _day_start(day + timedelta(days=1))
    if await _distributed(conn, table):
        return await _create_distributed_day_partition(conn, table, name, key, lo, hi)
    bounds = {"lo": lo, "hi": hi}
    await conn.execute(text(f"CREATE TABLE {name} (LIKE {table} INCLUDING STORAGE)"))
    moved = await conn.execute(
        text(
            f"WITH moved AS (DELETE FROM {table}_default WHERE {key} >= :lo AND {key} < :hi RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved"
        ),
        bounds,
    )
    # Spelled as literals: ATTACH takes no bind parameters.
    bounds_sql = f"FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}')"
    await conn.execute(text(f"ALTER TABLE {table} ATTACH PARTITION {name} {bounds_sql}"))
    return int(moved.rowcount or 0)


async def ensure_partitions(
    db: Database, today: date | None = None, *, behind: int = 1, ahead: int = PREMAKE_DAYS
) -> MaintenanceReport:
    """Create the missing day partitions of ``spans``, ``function_spans`` and ``logs`` from ``today - behind`` to
    ``today + ahead``, one transaction each."""
    today = today or datetime.now(UTC).date()
    report = MaintenanceReport()
    async with db.engine.connect() as conn:
        for table in PARTITIONED_TABLES:
            existing = await partitions(conn, table)
            await conn.rollback()
            for offset in range(-behind, ahead + 1):
                day = today + timedelta(days=offset)
                name = partition_name(day, table)
                if name in existing:
                    continue
                async with conn.begin():
                    if not await _locked(conn):
                        report.skipped = True
                        return report
                    if name in await partitions(conn, table):
                        continue
                    report.moved_from_default += await create_day_partition(conn, day, table)
                    report.created.append(name)
    return report


async def _delete_batches(conn: AsyncConnection, sql: str, params: dict[str, Any]) -> int:
    total = 0
    while True:
        async with conn.begin():
            result = await conn.execute(text(sql), {**params, "n": DELETE_BATCH_ROWS})
        deleted = int(result.rowcount or 0)
        total += deleted
        if deleted < DELETE_BATCH_ROWS:
            return total


async def drop_expired(db: Database, retention_days: int, now: datetime | None = None) -> MaintenanceReport:
    """Drop day partitions, default-partition rows and request records older than ``retention_days``."""
    report = MaintenanceReport()
    if retention_days <= 0:
        return report
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    async with db.engine.connect() as conn:
        for table in PARTITIONED_TABLES:
            found = await partitions(conn, table)
            await conn.rollback()
            for name, day in sorted(found.items(), key=lambda item: item[0]):
                if day is None or _day_start(day + timedelta(days=1)) > cutoff:
                    continue
                async with conn.begin():
                    if not await _locked(conn):
                        report.skipped = True
                        return report
                    await conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
                report.dropped.append(name)
        project_ids = (await conn.execute(text("SELECT id FROM projects ORDER BY id"))).scalars().all()
        rollups_by_writer = not await conn.scalar(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'records_rollup_insert' "
                "AND tgrelid = 'performance_records'::regclass)"
            )
        )
        await conn.rollback()
        # Per project: the keys lead with project_id (so they find the rows), and on Citus each is one shard.
        for project_id in project_ids:
            for table, key in PARTITIONED_TABLES.items():
                report.default_rows_deleted += await _delete_batches(
                    conn,
                    f"DELETE FROM {table}_default WHERE project_id = :p AND ctid IN "
                    f"(SELECT ctid FROM {table}_default WHERE project_id = :p AND {key} < :cutoff LIMIT :n)",
                    {"cutoff": cutoff, "p": project_id},
                )
            report.records_deleted += await _delete_batches(
                conn,
                "DELETE FROM performance_records WHERE project_id = :p AND ctid IN (SELECT ctid FROM "
                "performance_records WHERE project_id = :p AND timestamp < :cutoff LIMIT :n)",
                {"cutoff": cutoff, "p": project_id},
            )
            if rollups_by_writer:  # no trigger rebuilds them: buckets wholly before the cutoff go
                async with conn.begin():
                    # One bound per grain (Citus refuses a STABLE expression over columns in a DELETE).
                    await conn.execute(
                        text(
                            "DELETE FROM route_rollups WHERE project_id = :p AND ("
                            "(bucket_seconds = 60 AND bucket_start <= :c60) OR "
                            "(bucket_seconds = 900 AND bucket_start <= :c900) OR "
                            "(bucket_seconds = 3600 AND bucket_start <= :c3600) OR "
                            "(bucket_seconds = 86400 AND bucket_start <= :c86400))"
                        ),
                        {
                            "p": project_id,
                            "c60": cutoff - timedelta(seconds=60),
                            "c900": cutoff - timedelta(seconds=900),
                            "c3600": cutoff - timedelta(seconds=3600),
                            "c86400": cutoff - timedelta(seconds=86400),
                        },
                    )
    return report


async def run_maintenance(db: Database, retention_days: int, now: datetime | None = None) -> MaintenanceReport:
    """One maintenance run: partitions ahead, then retention."""
    now = now or datetime.now(UTC)
    made = await ensure_partitions(db, now.date())
    expired = await drop_expired(db, retention_days, now)
    return MaintenanceReport(
        created=made.created,
        moved_from_default=made.moved_from_default,
        dropped=expired.dropped,
        default_rows_deleted=expired.default_rows_deleted,
        records_deleted=expired.records_deleted,
        skipped=made.skipped or expired.skipped,
    )


class Maintenance:
    """The background task; ``await stop()`` at shutdown."""

    def __init__(self, db: Database, retention_days: int, interval: float = MAINTENANCE_INTERVAL_SECONDS) -> None:
        if retention_days < 0:
            raise ValueError(f"retention_days={retention_days} is negative; use 0 to keep data forever")
        self.db = db
        self.retention_days = retention_days
        self.interval = interval
        self.last_report: MaintenanceReport | None = None
        self.runs = 0
        self.first_run = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Maintenance:
        self._task = asyncio.create_task(self._loop(), name="pystrument-maintenance")
        return self

    async def _loop(self) -> None:
        while True:
            delay = self.interval
            try:
                self.last_report = await run_maintenance(self.db, self.retention_days)
                report = self.last_report
                if report.created or report.dropped or report.default_rows_deleted or report.records_deleted:
                    logger.info("maintenance: %s", report)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be down: try again soon, never crash the server
                logger.warning("maintenance run failed (retrying in %.0f s): %s", RETRY_AFTER_FAILURE_SECONDS, exc)
                delay = min(self.interval, RETRY_AFTER_FAILURE_SECONDS)
            self.runs += 1
            self.first_run.set()
            await asyncio.sleep(delay)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def start_maintenance(
    db: Database, settings: Any = None, *, interval: float = MAINTENANCE_INTERVAL_SECONDS
) -> Maintenance:
    """Make today's partitions now (so the first spans find them), then run maintenance in the background.

    Retention comes from ``settings.retention_days`` or ``PYSTRUMENT_RETENTION_DAYS``. Stop it with
    ``await maintenance.stop()``.
    """
    days = getattr(settings, "retention_days", None)
    maintenance = Maintenance(db, retention_days_from_env() if days is None else int(days), interval)
    try:
        await asyncio.wait_for(ensure_partitions(db), STARTUP_TIMEOUT_SECONDS)
    except Exception as exc:  # never block startup on it: spans go to the default partition meanwhile
        logger.warning("could not create span partitions at startup (retrying in the background): %s", exc)
    return maintenance.start()


__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "ENV_RETENTION_DAYS",
    "PARTITIONED_TABLES",
    "Maintenance",
    "MaintenanceReport",
    "create_day_partition",
    "drop_expired",
    "ensure_partitions",
    "partition_name",
    "partitions",
    "retention_days_from_env",
    "run_maintenance",
    "span_partitions",
    "start_maintenance",
]
