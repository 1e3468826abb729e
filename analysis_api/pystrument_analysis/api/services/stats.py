"""Per-route statistics (count, p50/p95/p99, error rate, throughput), a time series, and hot functions."""

from __future__ import annotations

import asyncio
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from pystrument_collector.db.models import FunctionSpanPack as P
from pystrument_collector.db.models import PerformanceRecord
from pystrument_collector.packs import as_microseconds, decode_pack_columns
from sqlalchemy import Integer, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pystrument_analysis.api import schemas
from pystrument_analysis.api.errors import BadRequest
from pystrument_analysis.api.services import rollups
from pystrument_analysis.api.services._common import project_by_key, utc
from pystrument_analysis.api.services.records import RecordFilter
from pystrument_analysis.api.services.span_store import as_number, as_text

DEFAULT_WINDOW = timedelta(hours=24)
MAX_WINDOW = timedelta(days=400)
MAX_BUCKETS = 2000
TARGET_BUCKETS = 120
NICE_BUCKETS = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800)
MAX_ROUTE_GROUPS = 1000
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_BUCKET_RE = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
SELF_TIME_ATTRIBUTE = "pystrument.self_time_ms"
CHILD_SPANS_ATTRIBUTE = "pystrument.child_span_ids"  # the real spans (queries, HTTP calls) a function started
EXACT_LIMIT = 20_000  # mode=auto: up to this many requests, exact percentile_cont; above, the rollups
MODES = ("auto", "exact", "rollup")
MAX_SERVICES = 500


def window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """``[start, end)`` in UTC; defaults to the last 24 hours; 400 if empty or over 400 days."""
    end_utc = utc(end) if end is not None else datetime.now(UTC)
    start_utc = utc(start) if start is not None else end_utc - DEFAULT_WINDOW
    if start_utc >= end_utc:
        raise BadRequest("start must be before end")
    if end_utc - start_utc > MAX_WINDOW:
        raise BadRequest(f"the time range may span at most {MAX_WINDOW.days} days")
    return start_utc, end_utc


def bucket_seconds(text: str | None, start: datetime, end: datetime) -> int:
    """Seconds per time-series bucket: ``text`` like ``300``, ``30s``, ``5m``, ``1h``, ``1d``, or a nice auto size."""
    span = (end - start).total_seconds()
    if text is None or not text.strip():
        wanted = span / TARGET_BUCKETS
        return next((b for b in NICE_BUCKETS if b >= wanted), NICE_BUCKETS[-1])
    match = _BUCKET_RE.match(text)
    if match is None:
        raise BadRequest(f"bucket {text!r} is not a duration: use seconds (300) or 30s, 5m, 1h, 1d")
    seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds < 1:
        raise BadRequest("bucket must be at least 1 second")
    if span / seconds > MAX_BUCKETS:
        raise BadRequest(f"bucket {text!r} makes more than {MAX_BUCKETS} points over this range: use a larger one")
    return seconds


def _aggregates() -> list[Any]:
    r = PerformanceRecord
    return [
        func.count().label("count"),
        func.count().filter(r.is_error).label("error_count"),
        func.avg(r.duration).label("avg"),
        func.percentile_cont(0.5).within_group(r.duration).label("p50"),
        func.percentile_cont(0.95).within_group(r.duration).label("p95"),
        func.percentile_cont(0.99).within_group(r.duration).label("p99"),
        func.max(r.duration).label("max"),
    ]


def _latency(row: Any, seconds: float) -> dict[str, Any]:
    count = int(row.count)
    errors = int(row.error_count)

    def opt(value: Any) -> float | None:
        return None if value is None else float(value)

    return {
        "count": count,
        "error_count": errors,
        "error_rate": errors / count if count else 0.0,
        "throughput": count / seconds if seconds > 0 else 0.0,
        "avg": opt(row.avg),
        "p50": opt(row.p50),
        "p95": opt(row.p95),
        "p99": opt(row.p99),
        "max": opt(row.max),
    }


async def report(
    session: AsyncSession,
    project_key: str,
    filters: RecordFilter,
    bucket: str | None,
    limit: int,
    slowest: int,
    mode: str = "auto",
) -> schemas.StatsReport:
    """Summary, per-route rows (by request count), slowest routes (by p95) and the bucketed series.

    ``mode``: ``exact`` computes everything from the records (``percentile_cont``); ``rollup`` from the
    per-minute/hour rollups (exact counts, percentiles within 10%); ``auto`` picks exact up to
    ``EXACT_LIMIT`` requests in the window and when the bucket is not a whole number of minutes, and always
    when a filter the rollups do not count by is set (path, status, error, duration).
    """
    project = await project_by_key(session, project_key)
    start, end = window(filters.start, filters.end)
    step = bucket_seconds(bucket, start, end)
    if mode == "rollup" and not (bucket or "").strip():
        step = max(step, 60)  # the auto step of a short window: the rollups' finest is a minute
    if mode == "rollup" and step % 60:
        raise BadRequest("mode=rollup needs a bucket that is a whole number of minutes (e.g. 60, 5m, 1h)")
    countable = filters.by_route_only()  # the rollups count by route, method and service only
    if mode == "rollup" and not countable:
        raise BadRequest("mode=rollup counts by route, method, service and time only: use mode=exact or auto")
    scope = rollups.Scope(project.id, filters.route, filters.method, filters.service)
    if countable and (mode == "rollup" or (mode == "auto" and step % 60 == 0)):
        whole = rollups.plan(start, end)
        summary = (await rollups.figures(session, scope, whole)).get(("", ""), rollups.Figures())
        if mode == "rollup" or summary.count > EXACT_LIMIT:
            return await _rollup_report(session, scope, start, end, step, limit, slowest, summary)
    scoped = RecordFilter(**{**filters.__dict__, "start": start, "end": end})
    conditions = scoped.conditions(project.id)
    seconds = (end - start).total_seconds()
    r = PerformanceRecord

    summary_row = (await session.execute(select(*_aggregates()).where(*conditions))).one()

    route_key = func.coalesce(func.nullif(r.route, ""), r.path).label("route")
    route_rows = (
        await session.execute(
            select(r.method, route_key, *_aggregates())
            .where(*conditions)
            .group_by(r.method, route_key)
            .order_by(func.count().desc(), route_key)
            .limit(MAX_ROUTE_GROUPS)
        )
    ).all()
    routes = [schemas.RouteStats(method=row.method, route=row.route, **_latency(row, seconds)) for row in route_rows]

    first = math.floor(start.timestamp() / step)
    index = cast(func.floor(func.extract("epoch", r.timestamp) / step), Integer) - first
    series_rows = (
        await session.execute(select(index.label("i"), *_aggregates()).where(*conditions).group_by(index))
    ).all()
    by_index = {int(row.i): row for row in series_rows}
    last = math.ceil(end.timestamp() / step) - first
    series = []
    for i in range(max(last, 1)):
        lo = datetime.fromtimestamp((first + i) * step, UTC)
        covered = (min(lo + timedelta(seconds=step), end) - max(lo, start)).total_seconds()
        row = by_index.get(i)
        figures = _latency(row, covered) if row is not None else _latency(_EMPTY, covered)
        series.append(schemas.TimePoint(time=lo, **figures))

    slowest_routes = sorted((x for x in routes if x.p95 is not None), key=lambda x: (-(x.p95 or 0.0), x.route))
    return schemas.StatsReport(
        start=start,
        end=end,
        bucket=step,
        summary=schemas.LatencyStats(**_latency(summary_row, seconds)),
        routes=routes[:limit],
        slowest_routes=slowest_routes[:slowest],
        timeseries=series,
    )


class _Empty:
    count = error_count = 0
    avg = p50 = p95 = p99 = max = None


_EMPTY = _Empty()


class _FromFigures:
    """``rollups.Figures`` with the attribute names ``_latency`` reads."""

    def __init__(self, f: rollups.Figures) -> None:
        self.count, self.error_count, self.max = f.count, f.error_count, f.high
        self.avg = f.total / f.count if f.count else None
        self.p50, self.p95, self.p99 = f.quantiles(0.5, 0.95, 0.99)


async def _rollup_report(
    session: AsyncSession,
    scope: rollups.Scope,
    start: datetime,
    end: datetime,
    step: int,
    limit: int,
    slowest: int,
    summary: rollups.Figures,
) -> schemas.StatsReport:
    """The report from day, hour, quarter-hour and minute rollups plus the records of the window's partial minutes."""
    first = math.floor(start.timestamp() / step)
    whole = rollups.plan(start, end)
    tiles = rollups.plan(start, end, rollups.grain_for(step))  # rows that never straddle a series bucket

    async def by_bucket() -> dict[tuple[str, str], rollups.Figures]:
        async with AsyncSession(session.bind) as own:  # a second connection: both queries run at once
            return await rollups.figures(own, scope, tiles, "series", step=step, base=float(first * step))

    cheap = rollups.signed_plans(start, end, datetime.now(UTC))
    by_route, by_index = await asyncio.gather(
        rollups.figures(session, scope, whole, "route", histograms=cheap), by_bucket()
    )
    seconds = (end - start).total_seconds()
    ranked = sorted(by_route.items(), key=lambda item: (-item[1].count, item[0][1], item[0][0]))
    routes = [
        schemas.RouteStats(method=method, route=route, **_latency(_FromFigures(f), seconds))
        for (method, route), f in ranked[:MAX_ROUTE_GROUPS]
    ]
    last = math.ceil(end.timestamp() / step) - first
    series = []
    for i in range(max(last, 1)):
        lo = datetime.fromtimestamp((first + i) * step, UTC)
        covered = (min(lo + timedelta(seconds=step), end) - max(lo, start)).total_seconds()
        point = by_index.get((str(i), ""))
        figures = _latency(_FromFigures(point), covered) if point is not None else _latency(_EMPTY, covered)
        series.append(schemas.TimePoint(time=lo, **figures))
    slowest_routes = sorted((x for x in routes if x.p95 is not None), key=lambda x: (-(x.p95 or 0.0), x.route))
    return schemas.StatsReport(
        start=start,
        end=end,
        bucket=step,
        summary=schemas.LatencyStats(**_latency(_FromFigures(summary), seconds)),
        routes=routes[:limit],
        slowest_routes=slowest_routes[:slowest],
        timeseries=series,
        approximate=True,
    )


HOT_ATTRIBUTES = ("code.file.path", "code.line.number", SELF_TIME_ATTRIBUTE, CHILD_SPANS_ATTRIBUTE)


async def hot_functions(
    session: AsyncSession, project_key: str, filters: RecordFilter, limit: int
) -> schemas.FunctionReport:
    """Functions ranked by self time over the function spans of the requests matching ``filters``."""
    project = await project_by_key(session, project_key)
    start, end = window(filters.start, filters.end)
    scoped = RecordFilter(**{**filters.__dict__, "start": start, "end": end})
    conditions = scoped.conditions(project.id)
    r = PerformanceRecord
    totals = (
        await session.execute(select(func.count(), func.coalesce(func.sum(r.duration), 0.0)).where(*conditions))
    ).one()
    request_count, request_time = int(totals[0]), float(totals[1])

    traces = select(r.trace_id).where(*conditions)
    packs = select(P.trace_id, P.start_time, P.data).where(
        P.project_id == project.id, P.trace_id.in_(traces), P.end_time >= start - timedelta(seconds=1)
    )
    lo = as_microseconds(start - timedelta(seconds=1))
    # One entry per (function, request) first, so a request's child spans can be summed and their maximum taken:
    # the SDK merges a loop's consecutive calls into one function span, whose child span ids carry the N+1.
    # The packs are streamed and decoded column by column: a week of a busy route is millions of spans.
    per_trace: dict[tuple[str, str, float | None, str], list[float]] = {}
    async for trace_id, pack_start, data in await session.stream(packs):
        c = decode_pack_columns(pack_start, data, HOT_ATTRIBUTES)
        files, lines, own, child_ids = (c.attributes[k] for k in HOT_ATTRIBUTES)
        for i, at in enumerate(c.starts_us):
            if at < lo:
                continue
            entry = per_trace.setdefault(
                (c.names[i], as_text(files[i]), as_number(lines[i]), trace_id), [0, 0.0, 0.0, 0]
            )
            entry[0] += 1
            entry[1] += c.durations[i]
            entry[2] += as_number(own[i]) or 0.0
            entry[3] += len(child_ids[i]) if isinstance(child_ids[i], list) else 0
    # calls, traces, total_time, self_ms, child_spans, max_children
    by_function: dict[tuple[str, str, float | None], list[float]] = {}
    for (name, file, line, _), (calls, total, own_ms, children) in per_trace.items():
        row = by_function.setdefault((name, file, line), [0, 0, 0.0, 0.0, 0, 0])
        row[0] += calls
        row[1] += 1
        row[2] += total
        row[3] += own_ms
        row[4] += children
        row[5] = max(row[5], children)
    ranked = sorted(by_function.items(), key=lambda item: (-item[1][3], -item[1][2], item[0][0]))[:limit]
    functions = []
    for (name, file, line), (calls, traced, total, own_ms, children, most) in ranked:
        self_time = own_ms / 1000.0
        functions.append(
            schemas.FunctionStats(
                name=name,
                file=file,
                line=None if line is None else int(line),
                calls=int(calls),
                traces=int(traced),
                total_time=float(total),
                self_time=self_time,
                avg_time=float(total) / int(calls),
                self_time_share=self_time / request_time if request_time > 0 else 0.0,
                child_spans=int(children),
                child_spans_per_request=int(children) / int(traced),
                max_child_spans_per_request=int(most),
            )
        )
    return schemas.FunctionReport(
        start=start,
        end=end,
        route=filters.route,
        request_count=request_count,
        request_time=request_time,
        functions=functions,
    )


async def services(
    session: AsyncSession, project_key: str, start: datetime | None, end: datetime | None
) -> schemas.ServiceList:
    """The service names of the project's requests (in ``[start, end)`` when given), busiest first."""
    project = await project_by_key(session, project_key)
    r = PerformanceRecord
    conditions = RecordFilter(start=start, end=end).conditions(project.id)
    rows = (
        await session.execute(
            select(r.service_name, func.count().label("requests"))
            .where(*conditions, r.service_name != "")
            .group_by(r.service_name)
            .order_by(func.count().desc(), r.service_name)
            .limit(MAX_SERVICES)
        )
    ).all()
    return schemas.ServiceList(
        services=[schemas.ServiceItem(name=row.service_name, count=int(row.requests)) for row in rows]
    )
