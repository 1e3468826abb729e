"""The one loader of stored spans: rows of ``spans`` and the function spans of ``function_spans`` packs.

Since migration 0009 the SDK's function spans are stored packed (``pystrument_collector.packs``); every reader of
whole spans gets them here, decoded into :class:`StoredSpan` (the fields and names of a ``spans`` row). The readers
that aggregate many requests (hot functions, the flame graph and function view) read only a few columns of each
pack, through the codec's ``decode_pack_columns`` / ``decode_pack_tree``, not through this module (an object per
span would cost more than the rest). Every query names one project (one shard on Citus).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import msgspec
from pystrument_collector.db.models import FunctionSpanPack, Span
from pystrument_collector.packs import StoredSpan, decode_pack
from sqlalchemy import func, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

P = FunctionSpanPack


def as_number(value: Any) -> float | None:
    """An attribute that is a JSON number (``jsonb_typeof`` 'number', never a boolean) as a float, else None."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def as_text(value: Any, default: str = "") -> str:
    """An attribute as SQL's ``attributes ->> key`` gives it (JSON text for a non-string), ``default`` if absent."""
    if value is None:
        return default
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def _pack_query(project_id: int, trace_ids: Iterable[str], start: datetime | None, end: datetime | None) -> Any:
    ids = sorted(set(trace_ids))
    query = select(P.project_id, P.trace_id, P.service_name, P.start_time, P.data).where(P.project_id == project_id)
    query = query.where(P.trace_id == ids[0]) if len(ids) == 1 else query.where(P.trace_id.in_(ids))
    if end is not None:
        query = query.where(P.start_time <= end)  # a pack starts with its first span
    if start is not None:
        query = query.where(P.end_time >= start)  # and ends with its last
    return query


def unpack(rows: Iterable[Any]) -> list[StoredSpan]:
    """The spans of pack rows ``(project_id, trace_id, service_name, start_time, data)``."""
    spans: list[StoredSpan] = []
    for row in rows:
        spans.extend(decode_pack(row[0], row[1], row[2], row[3], row[4]))
    return spans


async def function_spans(
    session: AsyncSession,
    project_id: int,
    trace_ids: Iterable[str],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    service: str | None = None,
) -> list[StoredSpan]:
    """The function spans of the traces (of ``service`` only, when given) starting within ``[start, end]``."""
    ids = list(trace_ids)
    if not ids:
        return []
    query = _pack_query(project_id, ids, start, end)
    if service is not None:
        query = query.where(P.service_name == service)
    spans = unpack((await session.execute(query)).all())
    if start is not None:
        spans = [s for s in spans if s.start_time >= start]
    if end is not None:
        spans = [s for s in spans if s.start_time <= end]
    return spans


def to_stored(row: Span) -> StoredSpan:
    """A ``spans`` row as a :class:`StoredSpan`."""
    return StoredSpan(
        project_id=row.project_id,
        trace_id=row.trace_id,
        span_id=row.span_id,
        parent_span_id=row.parent_span_id,
        name=row.name,
        kind=row.kind,
        start_time=row.start_time,
        duration=row.duration,
        status_code=row.status_code,
        status_message=row.status_message,
        service_name=row.service_name,
        synthetic=row.synthetic,
        attributes=row.attributes,
        events=row.events,
    )


async def trace_spans(session: AsyncSession, project_id: int, trace_id: str) -> list[StoredSpan]:
    """Every span of the trace stored for this project, oldest first (then by span id)."""
    rows = await session.scalars(select(Span).where(Span.project_id == project_id, Span.trace_id == trace_id))
    spans = [to_stored(r) for r in rows]
    spans += await function_spans(session, project_id, [trace_id])
    spans.sort(key=lambda s: (s.start_time, s.span_id))
    return spans


PACK_BATCH = 32  # packs read at a time while paging through a trace


async def first_function_spans(session: AsyncSession, project_id: int, trace_id: str, count: int) -> list[StoredSpan]:
    """At least the trace's first ``count`` function spans in (start, span id) order (all when it has fewer):
    packs are read in start order, a few at a time, until no unread pack can hold an earlier span, so a page of
    a 300,000-span trace decodes a few packs, not all of them."""
    spans: list[StoredSpan] = []
    after: tuple[datetime, int] | None = None
    while True:
        query = (
            select(P.project_id, P.trace_id, P.service_name, P.start_time, P.data, P.digest)
            .where(P.project_id == project_id, P.trace_id == trace_id)
            .order_by(P.start_time, P.digest)
            .limit(PACK_BATCH)
        )
        if after is not None:
            query = query.where(tuple_(P.start_time, P.digest) > tuple_(literal(after[0]), literal(after[1])))
        rows = (await session.execute(query)).all()
        spans += unpack(rows)
        if len(rows) < PACK_BATCH:
            return spans
        after = (rows[-1][3], rows[-1][5])
        # every unread pack starts at or after ``after``: enough spans strictly before it make the page
        if sum(1 for s in spans if s.start_time < after[0]) >= count:
            return spans


async def first_spans(session: AsyncSession, project_id: int, trace_id: str, count: int) -> list[StoredSpan]:
    """The trace's first ``count`` spans in (start, span id) order (rows and packed function spans)."""
    rows = await session.scalars(
        select(Span)
        .where(Span.project_id == project_id, Span.trace_id == trace_id)
        .order_by(Span.start_time, Span.span_id)
        .limit(count)
    )
    spans = [to_stored(r) for r in rows]
    spans += await first_function_spans(session, project_id, trace_id, count)
    spans.sort(key=lambda s: (s.start_time, s.span_id))
    return spans[:count]


async def span_count(session: AsyncSession, project_id: int, trace_id: str) -> int:
    """How many spans the trace has stored for this project (rows and packed function spans)."""
    rows = select(func.count()).select_from(Span).where(Span.project_id == project_id, Span.trace_id == trace_id)
    packed = select(func.coalesce(func.sum(P.n), 0)).where(P.project_id == project_id, P.trace_id == trace_id)
    return int(await session.scalar(rows) or 0) + int(await session.scalar(packed) or 0)


__all__ = [
    "StoredSpan",
    "as_number",
    "as_text",
    "first_function_spans",
    "first_spans",
    "function_spans",
    "span_count",
    "to_stored",
    "trace_spans",
    "unpack",
]
