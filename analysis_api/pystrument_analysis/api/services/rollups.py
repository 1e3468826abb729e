"""Request statistics from ``route_rollups`` (minute, hour and day rows kept by triggers, migration 0004; quarter
hours since 0010).

A window ``[start, end)`` is tiled into whole days, whole hours, whole quarter hours and whole minutes (rollup rows,
per route or, unfiltered, per project) and the seconds left over at both ends (the records themselves), so counts,
error counts, sums, minimum and maximum are exact. Percentiles come from the summed log-scale histograms, each
bucket 10% wide: like ``percentile_cont``, a percentile interpolates between two requests, whose durations are
placed inside their buckets (so each is known to within 10%) and clamped to the exact min and max.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

LOW = 1e-4  # upper bound of bucket 0, seconds
GROWTH = 1.1
LAST_BUCKET = 170
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)
_POSITIVE = (0).__lt__


def bucket_of(duration: float) -> int:
    """The histogram bucket of a duration (the same rule as SQL ``pystrument_duration_bucket``)."""
    if not duration > LOW:
        return 0
    return min(LAST_BUCKET, math.ceil(math.log(duration / LOW) / math.log(GROWTH)))


def bucket_bounds(k: int) -> tuple[float, float]:
    """``(lower, upper]`` of bucket ``k``; the last one's upper bound is infinite."""
    if k <= 0:
        return 0.0, LOW
    upper = math.inf if k >= LAST_BUCKET else LOW * GROWTH**k
    return LOW * GROWTH ** (k - 1), upper


@dataclass
class Figures:
    """Exact count, errors, sum, min and max of a set of requests, and their duration histogram."""

    count: int = 0
    error_count: int = 0
    total: float = 0.0
    low: float | None = None
    high: float | None = None
    hist: dict[int, int] = field(default_factory=dict)

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile as ``percentile_cont`` would give it, from the histogram: the two requests it
        interpolates between are placed inside their buckets (each 10% wide) and clamped to the exact min/max."""
        return self.quantiles(q)[0]

    def quantiles(self, *qs: float) -> list[float | None]:
        """Several quantiles with one pass over the histogram."""
        hist = self.hist
        keys = sorted(itertools.compress(hist, map(_POSITIVE, hist.values())))  # C loops: many keys a report
        ends = list(itertools.accumulate(map(hist.__getitem__, keys)))  # requests up to and including bucket
        n = ends[-1] if ends else 0
        if n == 0 or self.low is None or self.high is None:
            return [None for _ in qs]
        out: list[float | None] = []
        for q in qs:
            rank = min(max(q, 0.0), 1.0) * (n - 1)
            j = math.floor(rank)
            below = self._element(j, n, keys, ends)
            above = below if rank == j else self._element(j + 1, n, keys, ends)
            out.append(below + (above - below) * (rank - j))
        return out

    def _element(self, j: int, n: int, keys: list[int], ends: list[int]) -> float:
        """Estimated duration of the ``j``-th fastest request (0-based) of the ``n`` in the histogram."""
        assert self.low is not None and self.high is not None
        if j <= 0:
            return self.low
        if j >= n - 1:
            return self.high
        i = bisect.bisect_right(ends, j)  # the bucket holding request j
        seen, c = (ends[i - 1] if i else 0), self.hist[keys[i]]
        lo, hi = bucket_bounds(keys[i])
        lo, hi = max(lo, self.low), min(hi, self.high)
        frac = (j - seen + 0.5) / c
        linear = lo <= 0.0 or hi <= lo  # bucket 0 starts at 0: no geometric interpolation there
        value = lo + (hi - lo) * frac if linear else lo * (hi / lo) ** frac
        return min(max(value, self.low), self.high)


def _ceil(t: datetime, seconds: int) -> datetime:
    floored = _floor(t, seconds)
    return floored if floored == t else floored + timedelta(seconds=seconds)


def _floor(t: datetime, seconds: int) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    whole = (t - epoch) // timedelta(seconds=seconds)
    return epoch + timedelta(seconds=whole * seconds)


Range = tuple[datetime, datetime]
GRAINS = (86400, 3600, 900, 60)


@dataclass(frozen=True)
class Plan:
    """How ``[start, end)`` is read: rollup rows per grain (seconds) and raw records, as half-open ranges."""

    rows: dict[int, tuple[Range, ...]] = field(default_factory=dict)
    raw: tuple[Range, ...] = ()


def _split(lo: datetime, hi: datetime, grain: int) -> tuple[Range | None, tuple[Range, ...]]:
    """The whole ``grain`` buckets inside ``[lo, hi)`` and the pieces left at both ends."""
    inner_lo, inner_hi = _ceil(lo, grain), _floor(hi, grain)
    if inner_lo >= inner_hi:
        return None, ((lo, hi),)
    return (inner_lo, inner_hi), tuple(r for r in ((lo, inner_lo), (inner_hi, hi)) if r[0] < r[1])


def plan(start: datetime, end: datetime, coarsest: int = 86400) -> Plan:
    """Tile ``[start, end)`` exactly: whole days, then hours, quarter hours, minutes, then raw records at the edges."""
    rows: dict[int, list[Range]] = {}
    pending = [(start, end)]
    for grain in GRAINS:
        if grain > coarsest:
            continue
        left: list[Range] = []
        for lo, hi in pending:
            inner, rest = _split(lo, hi, grain)
            if inner is not None:
                rows.setdefault(grain, []).append(inner)
            left.extend(rest)
        pending = left
    return Plan(rows={g: tuple(r) for g, r in rows.items()}, raw=tuple(pending))


def _past_hours(lo: datetime, hi: datetime, now: datetime) -> float:
    """Hours of ``[lo, hi)`` before ``now``: what reading that stretch costs (the future holds no rows)."""
    return max(0.0, (min(hi, now) - lo).total_seconds()) / 3600


def signed_plans(start: datetime, end: datetime, now: datetime) -> list[tuple[Plan, int]]:
    """Plans with signs that add up to ``[start, end)`` and read fewer rows than ``plan``: whole days around
    the window, with the part of a day outside it subtracted when that is shorter than the part inside (the
    usual case at the end of a window ending now, whose day's rest is still empty). Counts and histograms
    subtract exactly; min and max do not, so they come from ``plan``."""
    day = 86400
    best: list[tuple[Plan, int]] = [(plan(start, end), 1)]
    inner_lo, inner_hi = _ceil(start, day), _floor(end, day)
    if inner_lo < inner_hi:
        best_cost = _past_hours(start, inner_lo, now) + _past_hours(inner_hi, end, now)
    else:
        best_cost = _past_hours(start, end, now)
    for a in {_floor(start, day), inner_lo}:
        for b in {inner_hi, _ceil(end, day)}:
            if a >= b:
                continue
            cost = _past_hours(min(a, start), max(a, start), now) + _past_hours(min(b, end), max(b, end), now)
            if cost >= best_cost:
                continue
            parts: list[tuple[Plan, int]] = [(Plan(rows={day: ((a, b),)}), 1)]
            for lo, hi, sign in ((a, start, -1), (start, a, 1), (end, b, -1), (b, end, 1)):
                if lo < hi:
                    parts.append((plan(lo, hi, 3600), sign))
            best, best_cost = parts, cost
    return best


def grain_for(step: int) -> int:
    """The coarsest rollup grain whose buckets never straddle a time-series bucket of ``step`` seconds."""
    return next(g for g in GRAINS if step % g == 0)


@dataclass(frozen=True)
class Scope:
    """Which requests: one project, optionally one route (exact template), method and service."""

    project_id: int
    route: str | None = None
    method: str | None = None
    service: str | None = None

    @property
    def whole_project(self) -> bool:
        return self.route is None and not self.method and self.service is None


class _Sql:
    """Collects bind parameters while the statement is assembled."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def ranges(self, column: str, ranges: Iterable[Range]) -> str:
        parts = [f"({column} >= {self.bind(lo)} AND {column} < {self.bind(hi)})" for lo, hi in ranges]
        return "(" + " OR ".join(parts) + ")" if parts else "false"

    def scope(self, alias: str, scope: Scope) -> str:
        parts = [f"{alias}.project_id = {self.bind(scope.project_id)}"]
        if scope.route is not None:
            parts.append(f"{alias}.route = {self.bind(scope.route)}")
        if scope.method:
            parts.append(f"{alias}.method = {self.bind(scope.method.upper())}")
        if scope.service is not None:
            parts.append(f"{alias}.service_name = {self.bind(scope.service)}")
        return " AND ".join(parts)


# What figures are grouped by: nothing, (method, route or path), or the time-series bucket index.
_KEYS = {
    "none": ("''", "''", "''", "''"),
    "route": (
        "r.method",
        "CASE WHEN r.route = '' THEN r.path ELSE r.route END",
        "p.method",
        "coalesce(nullif(p.route, ''), p.path)",
    ),
    "series": ("({index_r})::text", "''", "({index_p})::text", "''"),
}


def _units(
    sql: _Sql,
    scope: Scope,
    the_plan: Plan,
    by: str,
    step: int,
    base: float,
    sign: int | None = None,
    hist: bool = True,
) -> str:
    """Rollup rows and raw records of the plan, as one relation of partial figures keyed ``k1, k2`` (led by a
    ``sign`` column when one is given; histograms null unless ``hist``)."""
    rollup_key1, rollup_key2, raw_key1, raw_key2 = _KEYS[by]
    if by == "series":
        step_sql, base_sql = sql.bind(float(step)), sql.bind(base)
        index = "floor((extract(epoch FROM {col}) - {base}) / {step})::int"
        rollup_key1 = rollup_key1.format(index_r=index.format(col="r.bucket_start", base=base_sql, step=step_sql))
        raw_key1 = raw_key1.format(index_p=index.format(col='p."timestamp"', base=base_sql, step=step_sql))
    whole = by != "route" and scope.whole_project
    lead = "" if sign is None else f"{int(sign)} AS sign, "

    def hist_columns(columns: str) -> str:
        return columns if hist else "NULL::smallint[], NULL::int[]"

    parts = []
    ranges = [
        f"(r.bucket_seconds = {grain} AND {sql.ranges('r.bucket_start', rs)})" for grain, rs in the_plan.rows.items()
    ]
    if ranges:
        parts.append(
            f"SELECT {lead}{rollup_key1} AS k1, {rollup_key2} AS k2, r.count AS n, r.error_count AS e, "
            "r.sum_duration AS s, r.min_duration AS lo, r.max_duration AS hi, "
            f"{hist_columns('r.hist_idx, r.hist_cnt')} "
            f"FROM route_rollups AS r WHERE {sql.scope('r', scope)} AND r.all_routes = {'true' if whole else 'false'} "
            f"AND ({' OR '.join(ranges)})"
        )
    if the_plan.raw:
        parts.append(
            f"SELECT {lead}{raw_key1}, {raw_key2}, 1::bigint, p.is_error::int::bigint, "
            "p.duration, p.duration, p.duration, "
            f"{hist_columns('ARRAY[pystrument_duration_bucket(p.duration)]::smallint[], ARRAY[1]::int[]')} "
            f"FROM performance_records AS p WHERE {sql.scope('p', scope)} AND {sql.ranges('p.timestamp', the_plan.raw)}"
        )
    return " UNION ALL ".join(parts)


async def count(session: AsyncSession, scope: Scope, start: datetime | None, end: datetime | None) -> int:
    """The exact number of requests in ``[start, end)`` (unbounded where None), from the rollups."""
    sql = _Sql()
    units = _units(sql, scope, plan(start or EARLIEST, end or LATEST), "none", 1, 0.0)
    value = await session.scalar(text(f"SELECT coalesce(sum(n), 0) FROM ({units}) AS u"), sql.params)
    return int(value or 0)


async def figures(
    session: AsyncSession,
    scope: Scope,
    the_plan: Plan,
    by: str = "none",
    *,
    step: int = 1,
    base: float = 0.0,
    histograms: list[tuple[Plan, int]] | None = None,
) -> dict[tuple[str, str], Figures]:
    """Summed figures per key: ``("", "")`` for ``none``, ``(method, route)`` for ``route``, ``(index, "")``
    for ``series`` (index of the ``step``-second bucket counted from ``base``, epoch seconds); keys without
    requests are absent. ``histograms``: cheaper signed plans (``signed_plans``) of the same window to sum
    the histograms from; the other figures still come from ``the_plan``."""
    sql = _Sql()
    signed_apart = histograms is not None and len(histograms) > 1
    exact = _units(sql, scope, the_plan, by, step, base, hist=not signed_apart)  # no histograms it will not send
    out: dict[tuple[str, str], Figures] = {}
    if not exact:
        return out
    if histograms is not None and signed_apart:
        signed = " UNION ALL ".join(
            u for u in (_units(sql, scope, p, by, step, base, sign) for p, sign in histograms) if u
        )
    else:
        signed = "SELECT 1 AS sign, * FROM exact"
    # One statement (one snapshot, one round trip): a row of totals per key, then the histogram rows to sum.
    # The histograms are summed here, not in Postgres: unnest plus a grouped sum of some 10,000 (key, bucket)
    # pairs cost Postgres ~10 ms a query, adding them into a list per key costs Python a fraction of that.
    rows = await session.execute(
        text(
            f"WITH exact AS MATERIALIZED ({exact}) "
            "SELECT k1, k2, sum(n) AS n, sum(e) AS e, sum(s) AS s, min(lo) AS lo, max(hi) AS hi, "
            "       NULL::int AS sign, NULL::smallint[] AS hist_idx, NULL::int[] AS hist_cnt "
            "FROM exact GROUP BY k1, k2 "
            f"UNION ALL SELECT k1, k2, NULL, NULL, NULL, NULL, NULL, sign, hist_idx, hist_cnt FROM ({signed}) AS u"
        ),
        sql.params,
    )
    totals: list[tuple[tuple[str, str], Any, Any, Any, Any, Any]] = []
    sums: dict[tuple[str, str], list[int]] = {}  # per key, requests per bucket (pystrument_duration_bucket: 0-170)
    for k1, k2, n, e, total, lo, hi, sign, idx, cnt in rows.all():
        if sign is None:
            totals.append(((k1, k2), n, e, total, lo, hi))
            continue
        counts = sums.get((k1, k2))
        if counts is None:
            counts = sums[(k1, k2)] = [0] * (LAST_BUCKET + 1)
        if sign > 0:
            for b, c in zip(idx, cnt, strict=True):
                counts[b] += c
        else:
            for b, c in zip(idx, cnt, strict=True):
                counts[b] -= c
    for key, n, e, total, lo, hi in totals:
        if not n:
            continue
        counts = sums.get(key)
        out[key] = Figures(
            count=int(n),
            error_count=int(e),
            total=float(total),
            low=lo,
            high=hi,
            # c <= 0: subtracted away
            hist={} if counts is None else dict(itertools.compress(enumerate(counts), map(_POSITIVE, counts))),
        )
    return out
