"""Tail vs median for one route: which functions grow most between typical requests and the slowest ones.

The route's requests in the window are ranked by duration. The *median* cohort is those between the 40th and
60th percentile, the *tail* those at or above the 95th. From each cohort the newest ``sample`` requests that
have function spans are read, and per function (``code.function.name``, else the span name) the mean time
per request is compared: ``delta`` = tail mean - median mean, ``share`` = delta over the tail's extra request
time. A function's time counts its outermost calls only (recursion is not counted twice); nested functions
overlap (a caller's delta includes its callees'), so ``self_delta``/``self_share`` are the additive view.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pystrument_collector.db.models import FunctionSpanPack, PerformanceRecord
from pystrument_collector.packs import StoredSpan
from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pystrument_analysis.api import schemas
from pystrument_analysis.api.services._common import project_by_key
from pystrument_analysis.api.services.records import RecordFilter
from pystrument_analysis.api.services.span_store import as_number, as_text, function_spans
from pystrument_analysis.api.services.stats import SELF_TIME_ATTRIBUTE, window

FUNCTION_ATTRIBUTE = "code.function.name"
FILE_ATTRIBUTE = "code.file.path"
SPAN_SLACK = timedelta(minutes=1)  # function spans start within the request; allow for clock skew


@dataclass
class _Totals:
    """One cohort's per-function sums over its sampled requests."""

    requests: int = 0
    duration: float = 0.0
    time: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    self_time: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def mean(self, values: dict[str, Any], name: str) -> float:
        return float(values.get(name, 0.0)) / self.requests if self.requests else 0.0


def _bounded(seconds: Any) -> Any:
    """A duration clamped to [0, 1e6] s, so ``make_interval`` never overflows on a wild value."""
    return func.least(func.greatest(seconds, 0.0), 1e6)


def _has_function_spans(project_id: int) -> ColumnElement[bool]:
    """A pack of the request's function spans overlaps the request (with slack)."""
    r, f = PerformanceRecord, FunctionSpanPack
    return exists().where(
        f.project_id == project_id,
        f.trace_id == r.trace_id,
        f.service_name == r.service_name,
        f.end_time >= r.timestamp - SPAN_SLACK,
        f.start_time <= r.timestamp + SPAN_SLACK + func.make_interval(0, 0, 0, 0, 0, 0, _bounded(r.duration)),
    )


async def _sample(
    session: AsyncSession, project_id: int, conditions: list[ColumnElement[bool]], sample: int
) -> tuple[int, list[Any]]:
    """The cohort's size and its newest ``sample`` requests that have function spans."""
    r = PerformanceRecord
    size = int(await session.scalar(select(func.count()).select_from(r).where(*conditions)) or 0)
    rows = (
        await session.execute(
            select(r.trace_id, r.service_name, r.duration, r.timestamp)
            .where(*conditions, _has_function_spans(project_id))
            .order_by(r.timestamp.desc(), r.trace_id, r.span_id)
            .limit(sample)
        )
    ).all()
    return size, list(rows)


@dataclass
class _FunctionSpan:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    service_name: str
    function: str
    file: str
    duration: float
    self_ms: float


def _function_span(s: StoredSpan) -> _FunctionSpan:
    a = s.attributes
    return _FunctionSpan(
        s.trace_id, s.span_id, s.parent_span_id, s.service_name, as_text(a.get(FUNCTION_ATTRIBUTE), s.name),
        as_text(a.get(FILE_ATTRIBUTE)), s.duration, as_number(a.get(SELF_TIME_ATTRIBUTE)) or 0.0,
    )  # fmt: skip


async def _totals(session: AsyncSession, project_id: int, requests: list[Any], files: dict[str, str]) -> _Totals:
    """Per-function time, self time and calls summed over the requests' function spans."""
    out = _Totals(requests=len(requests), duration=sum(float(x.duration) for x in requests))
    if not requests:
        return out
    service_of = {x.trace_id: x.service_name for x in requests}
    starts = [x.timestamp for x in requests]
    found = await function_spans(session, project_id, list(service_of), start=min(starts) - SPAN_SLACK)
    rows = [_function_span(s) for s in found]
    traces: dict[str, dict[str, Any]] = defaultdict(dict)
    for row in rows:
        if row.service_name == service_of.get(row.trace_id):
            traces[row.trace_id][row.span_id] = row
            files.setdefault(row.function, row.file)
    for spans in traces.values():
        for span in spans.values():
            out.self_time[span.function] += float(span.self_ms) / 1000.0
            out.calls[span.function] += 1
            if not _inside_same_function(span, spans):
                out.time[span.function] += float(span.duration)
    return out


def _inside_same_function(span: Any, spans: dict[str, Any]) -> bool:
    """Whether an ancestor of ``span`` is the same function (a recursive call, already counted)."""
    seen = {span.span_id}
    parent = spans.get(span.parent_span_id) if span.parent_span_id else None
    while parent is not None and parent.span_id not in seen:
        if parent.function == span.function:
            return True
        seen.add(parent.span_id)
        parent = spans.get(parent.parent_span_id) if parent.parent_span_id else None
    return False


def _cohort(lo: float | None, hi: float | None, size: int, totals: _Totals) -> schemas.Cohort:
    return schemas.Cohort(
        min_duration=lo,
        max_duration=hi,
        requests=size,
        profiled=totals.requests,
        mean_duration=totals.duration / totals.requests if totals.requests else None,
    )


async def route_differential(
    session: AsyncSession, project_key: str, filters: RecordFilter, sample: int, limit: int
) -> schemas.RouteDifferential:
    """The tail-vs-median report of ``filters.route`` (with the other filters of the records list, e.g. service)."""
    project = await project_by_key(session, project_key)
    start, end = window(filters.start, filters.end)
    scoped = RecordFilter(**{**filters.__dict__, "start": start, "end": end})
    conditions = scoped.conditions(project.id)
    r = PerformanceRecord
    stats = (
        await session.execute(
            select(
                func.count(),
                func.percentile_cont(0.4).within_group(r.duration),
                func.percentile_cont(0.6).within_group(r.duration),
                func.percentile_cont(0.95).within_group(r.duration),
                func.max(r.duration),
            ).where(*conditions)
        )
    ).one()
    count = int(stats[0])
    p40, p60, p95, top = (None if v is None else float(v) for v in stats[1:])
    files: dict[str, str] = {}
    if count and p40 is not None and p60 is not None and p95 is not None:
        in_median, in_tail = r.duration.between(p40, p60), r.duration >= p95
        median_size, median_rows = await _sample(session, project.id, [*conditions, in_median], sample)
        tail_size, tail_rows = await _sample(session, project.id, [*conditions, in_tail], sample)
    else:
        median_size, median_rows, tail_size, tail_rows = 0, [], 0, []
    median = await _totals(session, project.id, median_rows, files)
    tail = await _totals(session, project.id, tail_rows, files)
    median_cohort = _cohort(p40, p60, median_size, median)
    tail_cohort = _cohort(p95, top, tail_size, tail)
    extra = None
    if median_cohort.mean_duration is not None and tail_cohort.mean_duration is not None:
        extra = tail_cohort.mean_duration - median_cohort.mean_duration

    def share(delta: float) -> float:
        return delta / extra if extra is not None and extra > 0 else 0.0

    functions = []
    for name in set(median.calls) | set(tail.calls):
        m_time, t_time = median.mean(median.time, name), tail.mean(tail.time, name)
        m_self, t_self = median.mean(median.self_time, name), tail.mean(tail.self_time, name)
        functions.append(
            schemas.FunctionDelta(
                name=name,
                file=files.get(name, ""),
                median_time=m_time,
                tail_time=t_time,
                delta=t_time - m_time,
                share=share(t_time - m_time),
                median_self_time=m_self,
                tail_self_time=t_self,
                self_delta=t_self - m_self,
                self_share=share(t_self - m_self),
                median_calls=median.mean(median.calls, name),
                tail_calls=tail.mean(tail.calls, name),
            )
        )
    functions.sort(key=lambda f: (-f.delta, -f.self_delta, f.name))
    return schemas.RouteDifferential(
        start=start,
        end=end,
        route=filters.route or "",
        method=filters.method.upper() if filters.method else None,
        service=filters.service,
        request_count=count,
        median=median_cohort,
        tail=tail_cohort,
        extra_time=extra,
        functions=functions[:limit],
    )
