"""Performance records: the filtered, sorted list (seed 5.2.2) and one trace's detail with its span tree."""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from pystrument_collector.db.models import PerformanceRecord, Span
from pystrument_collector.packs import StoredSpan
from sqlalchemy import BigInteger, ColumnElement, Float, Select, Text, case, cast, func, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import ClauseElement

from pystrument_analysis.api import schemas
from pystrument_analysis.api.errors import BadRequest, NotFound
from pystrument_analysis.api.services import rollups, span_store
from pystrument_analysis.api.services._common import offset, project_by_key, utc
from pystrument_analysis.api.services.logs import log_items
from pystrument_analysis.api.services.span_tree import (
    INTERVAL_ATTRIBUTE,
    claims_of,
    is_gc_span,
    micros,
    place,
    tree_span,
)

SORT_COLUMNS = {"timestamp": PerformanceRecord.timestamp, "duration": PerformanceRecord.duration}
# Time filters outside these bounds are 400: nothing is stored there, and date arithmetic on them overflows.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
COUNT_CAP = 10_000
PG_EPOCH_UNIX_US = 946_684_800_000_000  # a packed span's start_us counts from 2000-01-01, the detail's from 1970
# A trace's detail returns at most this many spans a page (``span_offset``/``span_limit``; ``spans_truncated``).
MAX_DETAIL_SPANS = 10_000  # counted exactly up to here; beyond, from the rollups or the planner's estimate


@dataclass(frozen=True)
class RecordFilter:
    """Every filter of the records list; ``None`` means "any"."""

    route: str | None = None
    path: str | None = None
    method: str | None = None
    status_code: int | None = None
    status_class: str | None = None
    error: bool | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    start: datetime | None = None
    end: datetime | None = None
    service: str | None = None
    trace_ids: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and not EARLIEST <= utc(value) <= LATEST:
                raise BadRequest(f"{name} must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}")

    def conditions(self, project_id: int) -> list[ColumnElement[bool]]:
        r = PerformanceRecord
        out: list[ColumnElement[bool]] = [r.project_id == project_id]
        if self.start is not None and self.end is not None and utc(self.start) >= utc(self.end):
            raise BadRequest("start must be before end")
        if self.min_duration is not None and self.max_duration is not None and self.min_duration > self.max_duration:
            raise BadRequest("min_duration must not exceed max_duration")
        if self.route is not None:
            out.append(r.route == self.route)
        if self.path:
            out.append(r.path.ilike(f"%{escape_like(self.path)}%", escape="\\"))
        if self.method:
            out.append(r.method == self.method.upper())
        if self.status_code is not None:
            out.append(r.status_code == self.status_code)
        if self.status_class:
            low = int(self.status_class[0]) * 100
            out.append(r.status_code.between(low, low + 99))
        if self.error is not None:
            out.append(r.is_error.is_(self.error))
        if self.min_duration is not None:
            out.append(r.duration >= self.min_duration)
        if self.max_duration is not None:
            out.append(r.duration <= self.max_duration)
        if self.start is not None:
            out.append(r.timestamp >= utc(self.start))
        if self.end is not None:
            out.append(r.timestamp < utc(self.end))
        if self.service is not None:
            out.append(r.service_name == self.service)
        if self.trace_ids is not None:
            out.append(r.trace_id.in_(self.trace_ids))
        return out

    def by_route_only(self) -> bool:
        """Whether only route, method, service and time filter (what the rollups can count)."""
        return all(
            v is None
            for v in (
                self.path or None,
                self.status_code,
                self.status_class or None,
                self.error,
                self.min_duration,
                self.max_duration,
                self.trace_ids,
            )
        )


def escape_like(text: str) -> str:
    """``text`` with LIKE wildcards escaped, for a literal substring match."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _item(r: PerformanceRecord) -> schemas.RecordItem:
    return schemas.RecordItem(
        trace_id=r.trace_id,
        request_path=r.path,
        duration=r.duration,
        status_code=r.status_code,
        timestamp=utc(r.timestamp),
        span_id=r.span_id,
        method=r.method,
        route=r.route,
        service_name=r.service_name,
        cpu_time=r.cpu_time,
        is_error=r.is_error,
    )


class _Explain(Executable, ClauseElement):
    """``EXPLAIN (FORMAT JSON) <query>`` with the query's parameters bound as usual."""

    inherit_cache = False

    def __init__(self, query: Select[Any]) -> None:
        self.query = query


@compiles(_Explain, "postgresql")
def _compile_explain(element: _Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + str(compiler.process(element.query, **kw))


def encode_cursor(sort: str, order: str, record: PerformanceRecord) -> str:
    """An opaque keyset cursor: the sort key of the last record of a page."""
    value: Any = utc(record.timestamp).isoformat() if sort == "timestamp" else record.duration
    raw = json.dumps([sort, order, value, record.trace_id, record.span_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str, order: str) -> tuple[Any, str, str]:
    """``(sort value, trace_id, span_id)`` of a cursor made by ``encode_cursor`` for this sort and order."""
    bad = BadRequest("cursor is not valid here: pass next_cursor from a previous page with the same sort and order")
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad from None
    if not (isinstance(raw, list) and len(raw) == 5 and raw[:2] == [sort, order]):
        raise bad
    value, trace_id, span_id = raw[2:]
    if not (isinstance(trace_id, str) and isinstance(span_id, str)):
        raise bad
    try:
        if sort == "timestamp":
            parsed: Any = utc(datetime.fromisoformat(value))
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            parsed = float(value)
        else:
            raise bad
    except (TypeError, ValueError):
        raise bad from None
    return parsed, trace_id, span_id


async def _total(
    session: AsyncSession, project_id: int, filters: RecordFilter, conditions: list[ColumnElement[bool]]
) -> tuple[int, bool]:
    """``(total, estimated)``: exact up to ``COUNT_CAP``; above, exact from the rollups when only route,
    method, service and time filter, else the query planner's estimate."""
    capped = select(literal(1)).select_from(PerformanceRecord).where(*conditions).limit(COUNT_CAP + 1).subquery()
    total = int(await session.scalar(select(func.count()).select_from(capped)) or 0)
    if total <= COUNT_CAP:
        return total, False
    if filters.by_route_only():
        scope = rollups.Scope(project_id, filters.route, filters.method, filters.service)
        start = utc(filters.start) if filters.start is not None else None
        end = utc(filters.end) if filters.end is not None else None
        return await rollups.count(session, scope, start, end), False
    query = select(literal(1)).select_from(PerformanceRecord).where(*conditions)
    plan = (await session.execute(_Explain(query))).scalar()
    document: Any = json.loads(plan) if isinstance(plan, str) else plan
    try:
        estimate = int(document[0]["Plan"]["Plan Rows"])
    except (TypeError, KeyError, IndexError, ValueError):
        estimate = 0
    return max(estimate, COUNT_CAP + 1), True


async def list_page(
    session: AsyncSession,
    project_key: str,
    page: int,
    size: int,
    filters: RecordFilter,
    sort: str = "timestamp",
    order: str = "desc",
    cursor: str | None = None,
) -> schemas.RecordPage:
    """One page, by ``page`` (offset) or by ``cursor`` (keyset: fast however deep), with the total."""
    project = await project_by_key(session, project_key)
    conditions = filters.conditions(project.id)
    r = PerformanceRecord
    column = SORT_COLUMNS[sort]
    desc = order == "desc"
    keys = (column, r.trace_id, r.span_id)
    query = select(r).where(*conditions).order_by(*(k.desc() if desc else k.asc() for k in keys))
    if cursor:
        value, trace_id, span_id = decode_cursor(cursor, sort, order)
        mark = tuple_(value, trace_id, span_id)
        after = tuple_(*keys) < mark if desc else tuple_(*keys) > mark
        query = query.where(column <= value if desc else column >= value, after)
    else:
        query = query.offset(offset(page, size))
    found = list(await session.scalars(query.limit(size + 1)))
    total, estimated = await _total(session, project.id, filters, conditions)
    rows = found[:size]
    next_cursor = encode_cursor(sort, order, rows[-1]) if len(found) > size else None
    return schemas.RecordPage(
        records=[_item(x) for x in rows],
        total=total,
        page=page,
        size=size,
        total_estimated=estimated,
        next_cursor=next_cursor,
    )


async def trace_spans(
    session: AsyncSession, project_id: int, trace_id: str, limit: int | None = None
) -> list[StoredSpan]:
    """The spans of the trace stored for this project (the first ``limit`` when given), oldest first."""
    if limit is None:
        return await span_store.trace_spans(session, project_id, trace_id)
    return await span_store.first_spans(session, project_id, trace_id, limit)


async def span_count(session: AsyncSession, project_id: int, trace_id: str) -> int:
    return await span_store.span_count(session, project_id, trace_id)


async def trace_records(session: AsyncSession, project_id: int, trace_id: str) -> list[PerformanceRecord]:
    """The trace's request records for this project (several when it crosses services), oldest first."""
    rows = await session.scalars(
        select(PerformanceRecord)
        .where(PerformanceRecord.project_id == project_id, PerformanceRecord.trace_id == trace_id)
        .order_by(PerformanceRecord.timestamp, PerformanceRecord.span_id)
    )
    return list(rows)


# What the record detail reads of each span: columns, not ORM entities (a 2,000-span trace is a hot read for the
# UI). JSON columns come as text and are decoded by msgspec, several times faster than the driver's json.loads;
# the sampling interval is read apart so that placing the spans does not look into every attribute map.
_INTERVAL = Span.attributes[INTERVAL_ATTRIBUTE]
_DETAIL_COLUMNS = (
    Span.span_id,
    Span.parent_span_id,
    Span.name,
    Span.kind,
    Span.start_time,
    Span.duration,
    Span.status_code,
    Span.status_message,
    Span.service_name,
    Span.synthetic,
    cast(Span.attributes, Text),
    cast(Span.events, Text),
    case((func.jsonb_typeof(_INTERVAL) == "number", _INTERVAL.astext.cast(Float)), else_=None),
    # exact whole microseconds: extract() gives numeric from Postgres 14 on
    cast(func.extract("epoch", Span.start_time) * 1_000_000, BigInteger),
)


def _detail_row(s: StoredSpan) -> tuple[Any, ...]:
    """A packed function span in the layout of a ``_DETAIL_COLUMNS`` row, its JSON decoded."""
    return (
        s.span_id, s.parent_span_id, s.name, s.kind, s.start_time, s.duration, s.status_code, s.status_message,
        s.service_name, s.synthetic, s.attributes, s.events, span_store.as_number(s.attributes.get(INTERVAL_ATTRIBUTE)),
        s.start_us + PG_EPOCH_UNIX_US,
    )  # fmt: skip


async def detail(
    session: AsyncSession,
    project_key: str,
    trace_id: str,
    span_id: str | None = None,
    span_offset: int = 0,
    span_limit: int = MAX_DETAIL_SPANS,
) -> schemas.RecordDetail:
    """The trace's (first, or ``span_id``'s) record and its spans, placed for display: at most ``span_limit``
    of them from ``span_offset`` on (oldest first), with the total and the next offset when there are more."""
    project = await project_by_key(session, project_key)
    records = await trace_records(session, project.id, trace_id)
    if span_id is not None:
        records = [r for r in records if r.span_id == span_id]
    if not records:
        raise NotFound(f"trace not found in this project: {trace_id!r}")
    record = records[0]
    need = span_offset + span_limit + 1
    connection = await session.connection()  # Core, not the ORM: plain rows
    result = await connection.execute(
        select(*_DETAIL_COLUMNS)
        .where(Span.project_id == project.id, Span.trace_id == trace_id)
        .order_by(Span.start_time, Span.span_id)
        .limit(need)
    )
    # span_id, parent_span_id, ..., synthetic, attributes, events, interval_ms, start_us: as in _DETAIL_COLUMNS
    decode = msgspec.json.decode
    merged = [(*r[:10], decode(r[10]), decode(r[11]), r[12], r[13]) for r in result.all()]
    merged += [_detail_row(s) for s in await span_store.first_function_spans(session, project.id, trace_id, need)]
    merged.sort(key=lambda r: (r[13], r[0]))
    rows = merged[span_offset:need]
    more = len(rows) > span_limit
    rows = rows[:span_limit]
    total = span_offset + len(rows)
    if more or span_offset:
        total = await span_store.span_count(session, project.id, trace_id)
    attribute_maps = [r[10] for r in rows]
    tree = [
        tree_span(
            r[0],
            r[1],
            r[13],
            r[5],
            r[9],
            r[12],
            claims_of(attrs) if r[9] else (),
            bool(r[9]) and is_gc_span(attrs),
        )
        for r, attrs in zip(rows, attribute_maps, strict=True)
    ]
    placements = place(tree)
    origin_us = min([micros(record.timestamp), *(t.start_us for t in tree)])
    items = []
    for row, attributes in zip(rows, attribute_maps, strict=True):
        sid, parent_id, name, kind, start, duration, status, message, service, synthetic, _, events, _, us = row
        display_parent, depth = placements[sid]
        items.append(
            schemas.SpanItem(
                span_id=sid,
                parent_span_id=parent_id,
                display_parent_span_id=display_parent,
                name=name,
                kind=kind,
                start_time=start if start.tzinfo is UTC else utc(start),
                offset=(us - origin_us) / 1_000_000,
                duration=duration,
                depth=depth,
                status_code=status,
                status_message=message,
                service_name=service,
                synthetic=synthetic,
                attributes=attributes,
                events=events,
            )
        )
    items.sort(key=lambda i: (i.start_time, i.depth, -i.duration))
    base = _item(record)
    full = schemas.RecordDetailItem(**{f: getattr(base, f) for f in base.__struct_fields__}, memory=record.memory)
    return schemas.RecordDetail(
        record=full,
        spans=items,
        logs=await log_items(session, project.id, trace_id),
        span_total=total,
        span_offset=span_offset,
        spans_truncated=more or span_offset > 0,
        next_span_offset=span_offset + len(rows) if more else None,
    )
