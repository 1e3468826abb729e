"""Batch write: one ``INSERT … SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING`` per table, in one transaction.

Rows are inserted in ``(trace_id, span_id)`` order so concurrent writers of overlapping batches (exporter
retries) take index locks in the same order and cannot deadlock each other.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy import exc as sa_exc

from pystrument_collector.ingest._batch import Batch
from pystrument_collector.ingest._errors import Unavailable, UnknownProject

if TYPE_CHECKING:
    from pystrument_collector.db import Database

logger = logging.getLogger(__name__)

SPANS_SQL = """
INSERT INTO spans (trace_id, span_id, project_id, parent_span_id, name, kind, start_time, duration,
                   status_code, status_message, service_name, synthetic, attributes, events)
SELECT t, s, p, ps, n, k, st, d, sc, sm, sv, sy, a::jsonb, e::jsonb
FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::timestamptz[],
            $8::float8[], $9::int2[], $10::text[], $11::text[], $12::bool[], $13::text[], $14::text[])
     AS u(t, s, p, ps, n, k, st, d, sc, sm, sv, sy, a, e)
ORDER BY t, s
ON CONFLICT DO NOTHING
"""

RECORDS_SQL = """
INSERT INTO performance_records (trace_id, span_id, project_id, service_name, method, route, path, status_code,
                                 duration, cpu_time, memory, is_error, timestamp)
SELECT t, s, p, sv, m, r, pa, sc, d, c, mem::jsonb, err, ts
FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int4[],
            $9::float8[], $10::float8[], $11::text[], $12::bool[], $13::timestamptz[])
     AS u(t, s, p, sv, m, r, pa, sc, d, c, mem, err, ts)
ORDER BY t, s
ON CONFLICT DO NOTHING
"""

ACTIVITY_SQL = "UPDATE projects SET last_activity = now() WHERE id = ANY($1::int8[])"
ACTIVITY_INTERVAL_SECONDS = 1.0
DEADLOCK_RETRIES = 3

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


def _inserted(status: str) -> int:
    """Rows inserted, from asyncpg's command tag ``INSERT 0 <n>``."""
    try:
        return int(status.rsplit(" ", 1)[1])
    except (IndexError, ValueError):
        return 0


class Writer:
    """Writes batches through the Database's pool; tracks when each project's last_activity was bumped."""

    def __init__(self) -> None:
        self._activity: dict[int, float] = {}

    async def write(self, db: Database, batch: Batch) -> tuple[int, int]:
        """Store the batch; return (spans inserted, records inserted). Duplicates are skipped silently."""
        if not len(batch):
            return 0, 0
        try:
            return await self._write(db, batch)
        except asyncpg.exceptions.ForeignKeyViolationError:
            raise UnknownProject("project was deleted; its key is no longer valid") from None
        except Exception as exc:
            if is_unavailable(exc):
                logger.warning("database unavailable while storing %d spans: %s", len(batch), exc)
                raise Unavailable("database unavailable, retry later") from exc
            raise

    async def _write(self, db: Database, batch: Batch) -> tuple[int, int]:
        for attempt in range(DEADLOCK_RETRIES):
            try:
                async with db.engine.connect() as conn:
                    raw = await conn.get_raw_connection()
                    apg: Any = raw.driver_connection
                    async with apg.transaction():
                        spans = _inserted(await apg.execute(SPANS_SQL, *batch.spans))
                        records = 0
                        if batch.record_count:
                            records = _inserted(await apg.execute(RECORDS_SQL, *batch.records))
                    await self._touch(apg, batch.project_ids)
                return spans, records
            except asyncpg.exceptions.DeadlockDetectedError:
                if attempt == DEADLOCK_RETRIES - 1:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _touch(self, apg: Any, project_ids: set[int]) -> None:
        """Bump ``projects.last_activity`` at most once a second per project, outside the insert transaction."""
        now = time.monotonic()
        due = [pid for pid in project_ids if self._activity.get(pid, 0.0) + ACTIVITY_INTERVAL_SECONDS <= now]
        if not due:
            return
        for pid in due:
            self._activity[pid] = now
        await apg.execute(ACTIVITY_SQL, due)
