"""Batch writes: binary ``COPY`` straight into ``spans``, idempotent on ``(trace_id, span_id)`` all the same
(log records likewise into ``logs``, idempotent on their digest; function spans packed into ``function_spans``).

The SDK's function spans (``synthetic``) are not rows of ``spans``: each chunk's function spans of one trace and
service become one pack (``pystrument_collector.packs``), COPY'd into ``function_spans`` the same way, keyed by
the digest of its content. Before that, the function spans already stored in the traces' packs are dropped from
the chunk (the same start: a duplicate, skipped silently; another start: refused as a reused span id), so a
span sent again in a differently cut batch is still stored once.

Each request is one transaction on one of the writer's own connections: its chunks' span rows go to ``spans``
by binary COPY (tuple routing puts them in their day partition), request records by
``INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING``. COPY cannot skip a row that is already there: when a
span was stored before (an exporter retry, the same span twice in a body), the unique index raises, the
transaction rolls back whole, and the request is written again with ``INSERT … ON CONFLICT DO NOTHING`` in
``(trace_id, span_id)`` order. So new spans pay for COPY only, and a span is stored once however often it is
sent. The unique key is ``(trace_id, span_id, start_time)`` (Postgres wants the partition key in it); a resent
span carries the same start time, so for retransmissions it is the same key.

The connections are the writer's own small asyncpg pool (not SQLAlchemy's): they encode ``timestamptz`` from
integer microseconds (see ``_batch``), and their number bounds how many writes run at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import struct
import time
from collections.abc import AsyncGenerator, Callable, Iterable
from contextlib import aclosing, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy import exc as sa_exc

from pystrument_collector.ingest._batch import Batch
from pystrument_collector.ingest._errors import IngestError, Overloaded, PayloadError, Unavailable, UnknownProject
from pystrument_collector.packs import PACK_COLUMNS, pack_rows, pack_span_starts

if TYPE_CHECKING:
    from pystrument_collector.db import Database

logger = logging.getLogger(__name__)

_SQLALCHEMY_ONLY = ("prepared_statement_name_func", "async_fallback")
ENV_WRITE_CONNECTIONS = "PYSTRUMENT_WRITE_CONNECTIONS"
DEFAULT_WRITE_CONNECTIONS = 4
ACQUIRE_TIMEOUT_SECONDS = 5.0
BUSY_RETRY_AFTER_SECONDS = 2
WRITE_TIMEOUT_SECONDS = 60.0

SPANS_SQL = """
INSERT INTO spans (trace_id, span_id, project_id, parent_span_id, name, kind, start_time, duration,
                   status_code, status_message, service_name, synthetic, attributes, events)
SELECT t, s, p, ps, n, k, st, d, sc, sm, sv, sy, a::jsonb, e::jsonb
FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::timestamptz[],
            $8::float8[], $9::int2[], $10::text[], $11::text[], $12::bool[], $13::text[], $14::text[])
     AS u(t, s, p, ps, n, k, st, d, sc, sm, sv, sy, a, e)
ORDER BY p, t, s
ON CONFLICT (project_id, trace_id, span_id, start_time) DO NOTHING
"""

PACKS_SQL = """
INSERT INTO function_spans (project_id, trace_id, service_name, start_time, end_time, n, digest, data)
SELECT p, t, sv, st, en, n, d, b
FROM unnest($1::int8[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::int4[], $7::int8[],
            $8::bytea[]) AS u(p, t, sv, st, en, n, d, b)
ORDER BY p, t, st, d
ON CONFLICT (project_id, trace_id, start_time, digest) DO NOTHING
RETURNING n
"""

# The packs of the traces a chunk has function spans of (one project a query: one shard on Citus).
STORED_PACKS_SQL = "SELECT trace_id, start_time, data FROM function_spans WHERE project_id = $1 AND trace_id = ANY($2)"
SYNTHETIC = Batch.SPAN_COLUMNS.index("synthetic")

RECORDS_SQL = """
INSERT INTO performance_records (trace_id, span_id, project_id, service_name, method, route, path, status_code,
                                 duration, cpu_time, memory, is_error, timestamp)
SELECT t, s, p, sv, m, r, pa, sc, d, c, mem::jsonb, err, ts
FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int4[],
            $9::float8[], $10::float8[], $11::text[], $12::bool[], $13::timestamptz[])
     AS u(t, s, p, sv, m, r, pa, sc, d, c, mem, err, ts)
ORDER BY p, t, s
ON CONFLICT (project_id, trace_id, span_id) DO NOTHING
"""

# Where ``performance_records`` has no rollup trigger (Citus: see pystrument_collector.db.citus), the writer adds
# the records it inserted to ``route_rollups`` itself, with the trigger's own aggregate (migrations 0004/0005).
RECORDS_RETURNING = (
    RECORDS_SQL.rstrip() + ' RETURNING project_id, "timestamp", service_name, method, route, path, duration, is_error'
)
ROLLUP_ADD_SQL = (
    "SELECT pystrument_rollup_add($1::int8[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], "
    "$7::float8[], $8::bool[])"
)
HAS_ROLLUP_TRIGGER_SQL = (
    "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'records_rollup_insert' "
    "AND tgrelid = 'performance_records'::regclass)"
)

LOGS_SQL = """
INSERT INTO logs (project_id, timestamp, log_id, trace_id, span_id, severity_number, severity_text, body, attributes,
                  service_name, scope_name)
SELECT p, ts, l, t, s, sn, st, b::jsonb, a::jsonb, sv, sc
FROM unnest($1::int8[], $2::timestamptz[], $3::uuid[], $4::text[], $5::text[], $6::int2[], $7::text[], $8::text[],
            $9::text[], $10::text[], $11::text[])
     AS u(p, ts, l, t, s, sn, st, b, a, sv, sc)
ORDER BY p, ts, l
ON CONFLICT (project_id, timestamp, log_id) DO NOTHING
"""

# Held to the commit: a concurrent project delete waits, then its trigger removes these spans too.
LOCK_PROJECTS_SQL = "SELECT id FROM projects WHERE id = ANY($1::int8[]) FOR KEY SHARE"
# Citus: ``projects`` is a reference table, where row locks from concurrent writers deadlock on its placements'
# locks; there the spans' foreign key to it (with ON DELETE CASCADE) keeps a deleted project's rows out instead.
CHECK_PROJECTS_SQL = "SELECT id FROM projects WHERE id = ANY($1::int8[])"
ACTIVITY_SQL = "UPDATE projects SET last_activity = now() WHERE id = ANY($1::int8[])"
ACTIVITY_INTERVAL_SECONDS = 1.0
#: Attempts for transient conflicts (deadlocks, partitions attached meanwhile), counted apart from the fallback from
#: COPY to an insert that skips stored spans; each waits a random back-off first, so writers that deadlocked on the
#: same spans (an exporter's retries) do not meet again in step.
DEADLOCK_RETRIES = 5
DEADLOCK_BACKOFF_SECONDS = 0.05

# Errors that mean "the database is not there right now": answer 503 so exporters retry later.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    sa_exc.DisconnectionError,
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether an exception (or what it wraps) is a connection/availability failure."""
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 5:
        if isinstance(cur, _UNAVAILABLE):
            return True
        if isinstance(cur, sa_exc.DBAPIError) and cur.connection_invalidated:
            return True
        cur = getattr(cur, "orig", None) or cur.__cause__
        seen += 1
    return False


def _transient(exc: BaseException) -> bool:
    """A deadlock, or a row routed to a partition whose bounds changed under it (both succeed when retried)."""
    if isinstance(exc, asyncpg.exceptions.DeadlockDetectedError):
        return True
    return "partition constraint" in str(exc)


def write_connections() -> int:
    """Connections the writer opens at most (``PYSTRUMENT_WRITE_CONNECTIONS``, default 4)."""
    text = os.environ.get(ENV_WRITE_CONNECTIONS, "").strip()
    if not text:
        return DEFAULT_WRITE_CONNECTIONS
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{ENV_WRITE_CONNECTIONS}={text!r} must be a positive integer, e.g. 4")
    return int(text)


def _count(status: str) -> int:
    """Rows written, from a command tag such as ``INSERT 0 <n>`` or ``COPY <n>``."""
    try:
        return int(status.rsplit(" ", 1)[1])
    except (IndexError, ValueError):
        return 0


_INT64 = struct.Struct("!q")


def _time_decode(data: bytes) -> int:
    return int(_INT64.unpack(data)[0])


async def _init_connection(conn: Any) -> None:
    """Row times are integer microseconds since 2000-01-01 UTC, which is timestamptz's binary form: packing
    them is one C call (no ``datetime`` per span, none of asyncpg's timezone arithmetic)."""
    await conn.set_type_codec(
        "timestamptz", schema="pg_catalog", encoder=_INT64.pack, decoder=_time_decode, format="binary"
    )


async def _keep_session(conn: Any) -> None:
    """On release, skip asyncpg's ``RESET ALL; UNLISTEN *; …`` round trip: the writer changes no session state
    (an open transaction is still rolled back by the pool)."""


@dataclass
class IngestResult:
    """What happened to one request's spans."""

    received: int = 0
    inserted: int = 0
    records: int = 0
    rejected: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)
    error_message: str = ""
    project_ids: set[int] = field(default_factory=set)

    @property
    def duplicates(self) -> int:
        return self.received - self.inserted

    def count(self, batch: Batch) -> None:
        self.received += len(batch)
        self.rejected += batch.rejected
        for reason, n in batch.reject_reasons.items():
            self.reject_reasons[reason] = self.reject_reasons.get(reason, 0) + n
        if batch.first_error and not self.error_message:
            self.error_message = batch.first_error
        self.project_ids |= batch.project_ids


BatchSource = Callable[[], Iterable[Batch]]

# Spans already stored under the same (trace_id, span_id) with another start time (so in another row, maybe
# another day's partition): the unique key, which must hold start_time, cannot see them.
REUSED_SQL = """
SELECT u.i FROM unnest($1::text[], $2::text[], $3::timestamptz[]) WITH ORDINALITY AS u(t, s, st, i)
WHERE EXISTS (SELECT 1 FROM spans x WHERE x.project_id = $4 AND x.trace_id = u.t AND x.span_id = u.s
              AND x.start_time <> u.st)
"""
REUSED_MESSAGE = "span id {} of trace {} is stored already with another start time; the first one is kept"


async def _drop_reused_span_ids(conn: Any, batch: Batch) -> None:
    """Refuse (partial success) spans whose id is taken in their trace by a span with another start time, stored
    or earlier in this batch: a span id names one span, whatever day it is sent again on."""
    rows = batch.rows
    first: dict[tuple[str, str], int] = {}
    drop: set[int] = set()
    for i, row in enumerate(rows):
        start = first.setdefault((row[0], row[1]), row[6])
        if start != row[6]:
            drop.add(i)
    by_project: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        by_project.setdefault(row[2], []).append(i)
    for project_id, indexes in by_project.items():  # one project a query: one shard on Citus
        found = await conn.fetch(
            REUSED_SQL,
            [rows[i][0] for i in indexes],
            [rows[i][1] for i in indexes],
            [rows[i][6] for i in indexes],
            project_id,
        )
        drop.update(indexes[int(r[0]) - 1] for r in found)
    if not drop:
        return
    for i in sorted(drop):
        batch.reject("reused_span_id", REUSED_MESSAGE.format(rows[i][1], rows[i][0]))
    batch.rows[:] = [row for i, row in enumerate(rows) if i not in drop]


async def _drop_stored_function_spans(conn: Any, batch: Batch) -> int:
    """Drop the chunk's function spans already stored in a pack: silently when stored with the same start (sent
    again: counted as received, not stored), refused (partial success) when stored with another start (a reused
    span id). Returns how many were dropped silently."""
    traces: dict[int, set[str]] = {}
    for row in batch.rows:
        if row[SYNTHETIC]:
            traces.setdefault(row[2], set()).add(row[0])
    stored: dict[tuple[int, str, str], int] = {}
    for project_id, trace_ids in traces.items():
        for trace_id, start, data in await conn.fetch(STORED_PACKS_SQL, project_id, sorted(trace_ids)):
            for span_id, span_start in pack_span_starts(start, data):
                stored[(project_id, trace_id, span_id)] = span_start
    if not stored:
        return 0
    keep = []
    resent = 0
    for row in batch.rows:
        start = stored.get((row[2], row[0], row[1])) if row[SYNTHETIC] else None
        if start is None:
            keep.append(row)
        elif start != row[6]:
            batch.reject("reused_span_id", REUSED_MESSAGE.format(row[1], row[0]))
        else:
            resent += 1
    batch.rows[:] = keep
    return resent


async def _chunks(source: BatchSource, threaded: bool) -> AsyncGenerator[Batch, None]:
    """The source's batches; when ``threaded``, each is mapped in a worker thread while the previous is written."""
    it = iter(source())
    if not threaded:
        for batch in it:
            yield batch
        return
    pending = asyncio.ensure_future(asyncio.to_thread(next, it, None))
    try:
        while (ready := await pending) is not None:
            pending = asyncio.ensure_future(asyncio.to_thread(next, it, None))
            yield ready
    finally:
        if not pending.done():
            with suppress(BaseException):
                await pending


class Writer:
    """Writes batches through its own connection pool; tracks when each project's last_activity was bumped."""

    def __init__(self, max_connections: int | None = None) -> None:
        self.max_connections = max_connections or write_connections()
        self._pool: Any = None
        self._pool_db: Database | None = None
        self._pool_lock = asyncio.Lock()
        self._activity: dict[int, float] = {}
        # No rollup trigger on performance_records: Citus (pystrument_collector.db.citus), where the writer adds
        # its records to the rollups and checks projects without locking them.
        self._rollups_by_writer: bool | None = None

    async def _pool_for(self, db: Database) -> Any:
        if self._pool is not None and self._pool_db is db:
            return self._pool
        async with self._pool_lock:
            if self._pool is None or self._pool_db is not db:
                await self.close()
                engine = db.engine
                _, params = engine.dialect.create_connect_args(engine.url)
                cache_size = params.pop("prepared_statement_cache_size", None)
                if cache_size is not None:  # e.g. 0 behind PgBouncer: asyncpg's own name for it
                    params["statement_cache_size"] = cache_size
                for option in _SQLALCHEMY_ONLY:  # URL options SQLAlchemy's adapter reads, asyncpg does not
                    params.pop(option, None)
                self._pool = await asyncpg.create_pool(
                    min_size=0,
                    max_size=self.max_connections,
                    init=_init_connection,
                    reset=_keep_session,
                    server_settings={"application_name": "pystrument-writer"},
                    **params,
                )
                self._pool_db = db
                self._rollups_by_writer = None
        return self._pool

    async def close(self) -> None:
        """Close the pool (waits briefly for writes in progress)."""
        pool, self._pool, self._pool_db = self._pool, None, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 10)
            except Exception:  # a write still running after 10 s, or the database gone: just drop them
                pool.terminate()

    async def write(
        self, db: Database, source: BatchSource, *, threaded: bool = False, skip_if_recorded: bool = False
    ) -> IngestResult:
        """Store the source's batches in one transaction; duplicates are skipped silently.

        ``skip_if_recorded``: a batch whose request record is already stored is a report sent again, and its
        spans are skipped whole (the seed's JSON has no span times of its own to make them idempotent).
        """
        try:
            pool = await self._pool_for(db)
            try:
                conn = await pool.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS)
            except TimeoutError:
                raise Overloaded(
                    f"all {self.max_connections} database write connections are busy, retry later",
                    BUSY_RETRY_AFTER_SECONDS,
                ) from None
            try:
                result = await self._write(conn, source, threaded, skip_if_recorded)
                await self._touch(conn, result.project_ids)
            finally:
                await pool.release(conn)
            return result
        except IngestError:
            raise
        except asyncpg.exceptions.ForeignKeyViolationError:
            raise UnknownProject("project was deleted; its key is no longer valid") from None
        except asyncpg.exceptions.DataError as exc:
            raise PayloadError(f"a value in the request cannot be stored: {exc}") from None
        except Exception as exc:
            if is_unavailable(exc):
                logger.warning("database unavailable while storing spans: %s", exc)
                raise Unavailable("database unavailable, retry later") from exc
            raise

    async def _write(self, conn: Any, source: BatchSource, threaded: bool, skip_if_recorded: bool) -> IngestResult:
        copy = True
        conflicts = 0
        while True:
            try:
                return await self._attempt(conn, source, threaded, copy, skip_if_recorded)
            except asyncpg.exceptions.UniqueViolationError:
                if not copy:
                    raise
                copy = False  # some spans are stored already: write again, skipping them
            except (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.CheckViolationError) as exc:
                # A check violation here is a partition attached while this COPY was routing rows: try again.
                conflicts += 1
                if conflicts >= DEADLOCK_RETRIES or not _transient(exc):
                    raise
                logger.debug("write conflict with a concurrent write (%s); retrying, attempt %d", exc, conflicts + 1)
                await asyncio.sleep(DEADLOCK_BACKOFF_SECONDS * conflicts * (0.5 + random.random()))

    async def _attempt(
        self, conn: Any, source: BatchSource, threaded: bool, copy: bool, skip_if_recorded: bool
    ) -> IngestResult:
        result = IngestResult()
        locked: set[int] = set()
        if self._rollups_by_writer is None:
            self._rollups_by_writer = not await conn.fetchval(HAS_ROLLUP_TRIGGER_SQL)
        async with conn.transaction(), aclosing(_chunks(source, threaded)) as chunks:
            async for batch in chunks:
                resent = 0
                if batch.rows:
                    await _drop_reused_span_ids(conn, batch)
                    resent = await _drop_stored_function_spans(conn, batch)
                result.count(batch)
                result.received += resent
                if not batch.project_ids <= locked:
                    await self._lock_projects(conn, batch.project_ids - locked, lock=not self._rollups_by_writer)
                    locked |= batch.project_ids
                if skip_if_recorded and batch.record_count:
                    recorded = await self._records(conn, batch)
                    result.records += recorded
                    if recorded:
                        result.inserted += await self._spans(conn, batch, copy)
                    continue
                if batch.rows:
                    result.inserted += await self._spans(conn, batch, copy)
                if batch.log_rows:
                    result.inserted += await self._logs(conn, batch, copy)
                if batch.record_count:
                    result.records += await self._records(conn, batch)
        return result

    async def _records(self, conn: Any, batch: Batch) -> int:
        """Insert the batch's request records; without the rollup trigger, add the inserted ones to the rollups."""
        if not self._rollups_by_writer:
            return _count(await conn.execute(RECORDS_SQL, *batch.records))
        rows = await conn.fetch(RECORDS_RETURNING, *batch.records)
        if rows:
            await conn.execute(ROLLUP_ADD_SQL, *([row[i] for row in rows] for i in range(8)))
        return len(rows)

    @staticmethod
    async def _lock_projects(conn: Any, project_ids: set[int], *, lock: bool = True) -> None:
        """Share-lock the projects (``spans`` has no per-row foreign key); a deleted one refuses the write."""
        found = {
            row[0] for row in await conn.fetch(LOCK_PROJECTS_SQL if lock else CHECK_PROJECTS_SQL, list(project_ids))
        }
        if found != project_ids:
            raise UnknownProject("project was deleted; its key is no longer valid")

    @staticmethod
    async def _spans(conn: Any, batch: Batch, copy: bool) -> int:
        """Write the chunk's spans: function spans as packs, the others as rows; returns the spans stored."""
        rows = [row for row in batch.rows if not row[SYNTHETIC]]
        packs = pack_rows(row for row in batch.rows if row[SYNTHETIC]) if len(rows) < len(batch.rows) else []
        stored = 0
        if rows and copy:
            status = await conn.copy_records_to_table(
                "spans", records=rows, columns=Batch.SPAN_COLUMNS, timeout=WRITE_TIMEOUT_SECONDS
            )
            stored += _count(status)
        elif rows:
            columns = [list(column) for column in zip(*rows, strict=True)]
            stored += _count(await conn.execute(SPANS_SQL, *columns, timeout=WRITE_TIMEOUT_SECONDS))
        if packs and copy:
            await conn.copy_records_to_table(
                "function_spans", records=packs, columns=PACK_COLUMNS, timeout=WRITE_TIMEOUT_SECONDS
            )
            stored += sum(pack[5] for pack in packs)
        elif packs:
            columns = [list(column) for column in zip(*packs, strict=True)]
            found = await conn.fetch(PACKS_SQL, *columns, timeout=WRITE_TIMEOUT_SECONDS)
            stored += sum(row[0] for row in found)
        return stored

    @staticmethod
    async def _logs(conn: Any, batch: Batch, copy: bool) -> int:
        if copy:
            status = await conn.copy_records_to_table(
                "logs", records=batch.log_rows, columns=Batch.LOG_COLUMNS, timeout=WRITE_TIMEOUT_SECONDS
            )
        else:
            status = await conn.execute(LOGS_SQL, *batch.log_columns(), timeout=WRITE_TIMEOUT_SECONDS)
        return _count(status)

    async def _touch(self, conn: Any, project_ids: set[int]) -> None:
        """Bump ``projects.last_activity`` at most once a second per project, after the spans are committed."""
        now = time.monotonic()
        due = [pid for pid in project_ids if self._activity.get(pid, 0.0) + ACTIVITY_INTERVAL_SECONDS <= now]
        if not due:
            return
        for pid in due:
            self._activity[pid] = now
        try:
            await conn.execute(ACTIVITY_SQL, due)
        except (asyncpg.PostgresError, OSError, asyncpg.exceptions.InterfaceError) as exc:
            logger.debug("could not update last_activity: %s", exc)
