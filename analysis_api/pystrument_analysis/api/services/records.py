"""Performance records: the filtered, sorted list (seed 5.2.2) and one trace's detail with its span tree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pystrument_collector.db.models import PerformanceRecord, Span
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pystrument_analysis.api import schemas
from pystrument_analysis.api.errors import BadRequest, NotFound
from pystrument_analysis.api.services._common import offset, project_by_key, utc
from pystrument_analysis.api.services.span_tree import place_spans

SORT_COLUMNS = {"timestamp": PerformanceRecord.timestamp, "duration": PerformanceRecord.duration}


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
        return out


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


async def list_page(
    session: AsyncSession,
    project_key: str,
    page: int,
    size: int,
    filters: RecordFilter,
    sort: str = "timestamp",
    order: str = "desc",
) -> schemas.RecordPage:
    project = await project_by_key(session, project_key)
    conditions = filters.conditions(project.id)
    total = await session.scalar(select(func.count()).select_from(PerformanceRecord).where(*conditions)) or 0
    column = SORT_COLUMNS[sort]
    ordering = [column.desc(), PerformanceRecord.trace_id.desc()] if order == "desc" else [column.asc()]
    if order != "desc":
        ordering.append(PerformanceRecord.trace_id.asc())
    rows = await session.scalars(
        select(PerformanceRecord).where(*conditions).order_by(*ordering).offset(offset(page, size)).limit(size)
    )
    return schemas.RecordPage(records=[_item(r) for r in rows], total=total, page=page, size=size)


async def trace_spans(session: AsyncSession, project_id: int, trace_id: str) -> list[Span]:
    """Every span of the trace stored for this project, oldest first."""
    rows = await session.scalars(
        select(Span)
        .where(Span.project_id == project_id, Span.trace_id == trace_id)
        .order_by(Span.start_time, Span.span_id)
    )
    return list(rows)


async def trace_records(session: AsyncSession, project_id: int, trace_id: str) -> list[PerformanceRecord]:
    """The trace's request records for this project (several when it crosses services), oldest first."""
    rows = await session.scalars(
        select(PerformanceRecord)
        .where(PerformanceRecord.project_id == project_id, PerformanceRecord.trace_id == trace_id)
        .order_by(PerformanceRecord.timestamp, PerformanceRecord.span_id)
    )
    return list(rows)


async def detail(
    session: AsyncSession, project_key: str, trace_id: str, span_id: str | None = None
) -> schemas.RecordDetail:
    """The trace's (first, or ``span_id``'s) record and all its spans, placed for display."""
    project = await project_by_key(session, project_key)
    records = await trace_records(session, project.id, trace_id)
    if span_id is not None:
        records = [r for r in records if r.span_id == span_id]
    if not records:
        raise NotFound(f"trace not found in this project: {trace_id!r}")
    record = records[0]
    spans = await trace_spans(session, project.id, trace_id)
    placements = place_spans(spans)
    origin = min([record.timestamp, *(s.start_time for s in spans)])
    items = [
        schemas.SpanItem(
            span_id=s.span_id,
            parent_span_id=s.parent_span_id,
            display_parent_span_id=placements[s.span_id].display_parent_span_id,
            name=s.name,
            kind=s.kind,
            start_time=utc(s.start_time),
            offset=(s.start_time - origin).total_seconds(),
            duration=s.duration,
            depth=placements[s.span_id].depth,
            status_code=s.status_code,
            status_message=s.status_message,
            service_name=s.service_name,
            synthetic=s.synthetic,
            attributes=s.attributes,
            events=s.events,
        )
        for s in spans
    ]
    items.sort(key=lambda i: (i.start_time, i.depth, -i.duration))
    base = _item(record)
    full = schemas.RecordDetailItem(**{f: getattr(base, f) for f in base.__struct_fields__}, memory=record.memory)
    return schemas.RecordDetail(record=full, spans=items)
