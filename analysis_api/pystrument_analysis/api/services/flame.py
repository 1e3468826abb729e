"""Aggregated flame graphs and the function view, from the stored function spans.

Both read in two steps, each bounded by ``project_id`` and by the spans' partition key (``start_time``):

1. the *cohort*: the newest ``limit`` matching requests (``performance_records``, by the
   ``(project_id, route, timestamp)`` index), or for the function view the requests that called the function;
2. one query reads the packs of the cohort's function spans (``function_spans``, migration 0009), joined to the
   cohort on ``(trace_id, service_name)`` and bounded in time by the cohort's first start and last end, so only
   those days' partitions are scanned; the one loader decodes them into ``(trace_id, span_id, parent_span_id,
   name, duration, self_time_ms, file, library)``.

The call trees are merged in Python by call path (measured faster than a recursive CTE doing the grouping, see
docs/benchmarks.md "Aggregated flame graph").
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pystrument_collector.packs import PackTree, as_microseconds, decode_pack_columns, decode_pack_tree
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from pystrument_analysis.api import flame_schemas as fs
from pystrument_analysis.api.errors import BadRequest, NotFound
from pystrument_analysis.api.services._common import project_by_key, utc
from pystrument_analysis.api.services.span_store import as_number, as_text
from pystrument_analysis.api.services.stats import TARGET_BUCKETS, window

SPAN_SLACK = timedelta(minutes=1)  # function spans start within their request; allow for clock skew
SELF_TIME = "pystrument.self_time_ms"
FILE = "code.file.path"
FLAME_ATTRIBUTES = (SELF_TIME, FILE, "pystrument.library")
MAX_REQUEST_SECONDS = 86_400.0  # a wild duration must not stretch the span scan over the whole table
ROOT = -1

# The newest ``limit`` matching requests, every ``stride``-th of them (``stride`` 1: all).
COHORT_SQL = """
SELECT trace_id, service_name, duration, "timestamp" FROM (
    SELECT trace_id, service_name, duration, "timestamp", row_number() OVER (ORDER BY "timestamp" DESC) AS n
    FROM performance_records
    WHERE project_id = :project_id AND "timestamp" >= :start AND "timestamp" < :end {filters}
    ORDER BY "timestamp" DESC
    LIMIT :limit
) newest
WHERE (n - 1) % :stride = 0
"""

TRACE_COHORT_SQL = """
SELECT trace_id, service_name, duration, "timestamp"
FROM performance_records
WHERE project_id = :project_id AND trace_id = :trace_id {filters}
"""

COUNT_SQL = """
SELECT count(*) FROM performance_records
WHERE project_id = :project_id AND "timestamp" >= :start AND "timestamp" < :end {filters}
"""

# The one span query of the flame graph (and of the function view): the packs of the cohort's function spans. The
# cohort is joined as a subquery (not as an array parameter) so that the planner knows its size and hashes it.
PACKS_SQL = """
SELECT f.project_id, f.trace_id, f.service_name, f.start_time, f.data
FROM function_spans f
JOIN ({cohort}) c ON f.trace_id = c.trace_id AND f.service_name = c.service_name
WHERE f.project_id = :project_id AND f.start_time <= :span_end AND f.end_time >= :span_start
"""

# The flame graph's packs: the same, with their time bounds (a pack wholly inside the cohort's span window is merged
# without a look at each span's start).
FLAME_PACKS_SQL = """
SELECT f.trace_id, f.start_time, f.end_time, f.data
FROM function_spans f
JOIN ({cohort}) c ON f.trace_id = c.trace_id AND f.service_name = c.service_name
WHERE f.project_id = :project_id AND f.start_time <= :span_end AND f.end_time >= :span_start
"""

# Every pack of the project that may hold function spans starting in ``[fn_start, fn_end)``.
FUNCTION_PACKS_SQL = """
SELECT f.project_id, f.trace_id, f.service_name, f.start_time, f.data
FROM function_spans f
WHERE f.project_id = :project_id AND f.start_time < :fn_end AND f.end_time >= :fn_start
"""

# Requests in the range whose function spans include the function (the function view's cohort): the calls per
# (trace, service) are counted from the packs first and handed over as arrays.
FUNCTION_TRACES_SQL = """
SELECT r.trace_id, r.service_name, r.duration, r."timestamp", r.method, r.route, r.status_code, f.calls
FROM unnest(CAST(:fn_traces AS text[]), CAST(:fn_services AS text[]), CAST(:fn_calls AS int8[]))
     AS f(trace_id, service_name, calls)
JOIN performance_records r
  ON r.project_id = :project_id AND r.trace_id = f.trace_id AND r.service_name = f.service_name
WHERE r."timestamp" >= :start AND r."timestamp" < :end {filters}
ORDER BY r."timestamp" DESC
LIMIT :limit
"""


@dataclass
class Cohort:
    """The requests read: trace ids, their services, durations and start times."""

    rows: list[Any]

    def bounds(self) -> tuple[datetime, datetime]:
        first = min(utc(r.timestamp) for r in self.rows)
        last = max(
            utc(r.timestamp) + timedelta(seconds=min(max(float(r.duration), 0.0), MAX_REQUEST_SECONDS))
            for r in self.rows
        )
        return first - SPAN_SLACK, last + SPAN_SLACK


def _record_filters(route: str | None, service: str | None, method: str | None, params: dict[str, Any]) -> str:
    parts = []
    if route is not None:
        parts.append("AND route = :route")
        params["route"] = route
    if service is not None:
        parts.append("AND service_name = :service")
        params["service"] = service
    if method:
        parts.append("AND method = :method")
        params["method"] = method.upper()
    return " ".join(parts)


async def cohort_spans(
    session: AsyncSession, project_id: int, cohort: Cohort, cohort_sql: str, params: dict[str, Any]
) -> list[Any]:
    """Every function span of the cohort's requests (their own service's) as ``(trace_id, span_id, parent_span_id,
    name, duration, self_time_ms, file, library)``: their packs in one query, read through the driver (asyncpg)
    directly (for ~190,000 spans the ORM's row wrapping costs more than the query), decoded column by column."""
    if not cohort.rows:
        return []
    span_start, span_end = cohort.bounds()
    sql = PACKS_SQL.format(cohort=cohort_sql)
    values = {**params, "project_id": project_id, "span_start": span_start, "span_end": span_end}
    lo, hi = as_microseconds(span_start), as_microseconds(span_end)
    spans: list[tuple[Any, ...]] = []
    for row in await fetch_raw(session, sql, values):
        pack_spans(spans, row[1], row[3], row[4], lo, hi)
    return spans


def pack_spans(out: list[tuple[Any, ...]], trace_id: str, start: Any, data: bytes, lo: int, hi: int) -> None:
    """Appends a pack's function spans starting in ``[lo, hi]`` (µs) to ``out`` as ``(trace_id, span_id,
    parent_span_id, name, duration, self_time_ms, file, library)``."""
    c = decode_pack_columns(start, data, FLAME_ATTRIBUTES)
    own, files, library = (c.attributes[k] for k in FLAME_ATTRIBUTES)
    for i, at in enumerate(c.starts_us):
        if lo <= at <= hi:
            o, f = own[i], files[i]  # the usual types first: a call per span costs as much as the rest
            out.append(
                (trace_id, c.span_ids[i], c.parent_span_ids[i], c.names[i], c.durations[i],
                 o if o.__class__ is float else as_number(o), f if f.__class__ is str else as_text(f),
                 library[i] is True or library[i] == "true")
            )  # fmt: skip


async def cohort_tree(
    session: AsyncSession, project_id: int, cohort: Cohort, cohort_sql: str, params: dict[str, Any]
) -> Merge:
    """The cohort's function spans merged by call path. A trace whose function spans are one pack wholly inside the
    cohort's span window (the usual case: the SDK sends a request's function spans together) is merged from the
    pack's columns as stored (``Merge.add_pack``); any other pack is decoded span by span (``pack_spans``)."""
    merged = Merge()
    if not cohort.rows:
        return merged
    span_start, span_end = cohort.bounds()
    values = {**params, "project_id": project_id, "span_start": span_start, "span_end": span_end}
    by_trace: dict[str, list[Any]] = {}
    for row in await fetch_raw(session, FLAME_PACKS_SQL.format(cohort=cohort_sql), values):
        by_trace.setdefault(row[0], []).append(row)
    spans: list[tuple[Any, ...]] = []
    lo, hi = as_microseconds(span_start), as_microseconds(span_end)
    for trace_id, packs in by_trace.items():
        if len(packs) == 1:
            _, start, end, data = packs[0]
            whole = start >= span_start and end <= span_end
            if whole and merged.add_pack(trace_id, decode_pack_tree(data, FLAME_ATTRIBUTES)):
                continue
        for _, start, _, data in packs:
            pack_spans(spans, trace_id, start, data, lo, hi)
    merged.add_spans(spans)
    return merged


_PARAM = re.compile(r"(?<!:):([a-z_]+)")


async def fetch_raw(session: AsyncSession, sql: str, params: dict[str, Any]) -> list[Any]:
    """``sql`` with ``:name`` parameters, run on the session's asyncpg connection; rows as asyncpg Records."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    query = _PARAM.sub(number, sql)
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    return list(await driver.fetch(query, *(params[n] for n in names)))


@dataclass
class _Tree:
    """The merged tree under construction: node ``i`` by columns, children keyed by (parent, function)."""

    functions: list[fs.FlameFunction] = field(default_factory=list)
    function_index: dict[tuple[str, str], int] = field(default_factory=dict)
    parent: list[int] = field(default_factory=lambda: [ROOT])
    function: list[int] = field(default_factory=lambda: [ROOT])
    total: list[float] = field(default_factory=lambda: [0.0])
    self_time: list[float] = field(default_factory=lambda: [0.0])
    calls: list[int] = field(default_factory=lambda: [0])
    requests: list[int] = field(default_factory=lambda: [0])
    children: dict[tuple[int, int], int] = field(default_factory=dict)

    def function_of(self, name: str, file: str, library: bool) -> int:
        key = (name, file)
        index = self.function_index.get(key)
        if index is None:
            index = self.function_index[key] = len(self.functions)
            self.functions.append(fs.FlameFunction(name=name, file=file, library=library))
        return index

    def child(self, parent: int, function: int) -> int:
        key = (parent, function)
        node = self.children.get(key)
        if node is None:
            node = self.children[key] = len(self.parent)
            self.parent.append(parent)
            self.function.append(function)
            self.total.append(0.0)
            self.self_time.append(0.0)
            self.calls.append(0)
            self.requests.append(0)
        return node


class Merge:
    """Requests' function-call trees merged into one by call path (root = the requests; a span whose parent is not
    a function span of the same trace hangs from the root), fed pack by pack or span by span."""

    def __init__(self) -> None:
        self.tree = _Tree()
        self.functions: dict[str, int] = {}  # by name: a function keeps the file and library it was first seen with
        self.top = 0.0  # the summed time of the root's children
        self.span_count = 0
        self.traces: set[str] = set()  # the traces with a function span merged

    def function(self, name: str, file: Any, library: Any) -> int:
        f = self.functions.get(name)
        if f is None:
            f = self.functions[name] = self.tree.function_of(name, as_text(file), library is True or library == "true")
        return f

    def add_pack(self, trace: str, pack: PackTree) -> bool:
        """Merges a trace's one pack from its columns; False (and nothing merged) when a parent in the pack comes
        after its child (equal starts ordered by id), which the span-by-span merge handles."""
        parents = pack.parents
        for i, p in enumerate(parents):
            if p.__class__ is int and p >= i:
                return False
        own, files, library = (pack.attributes[k] for k in FLAME_ATTRIBUTES)
        names = pack.names
        tree = self.tree
        functions = [self.function(names[n], files[i], library[i]) for i, n in enumerate(pack.name_of)]
        children, child = tree.children, tree.child
        total, self_col, calls, requests = tree.total, tree.self_time, tree.calls, tree.requests
        nodes: list[int] = []
        seen: set[int] = set()
        top = 0.0
        for i, p in enumerate(parents):
            parent = nodes[p] if p.__class__ is int else 0
            f = functions[i]
            node = children.get((parent, f))
            if node is None:
                node = child(parent, f)
            nodes.append(node)
            d = pack.durations[i]
            duration = d / 1e9 if d.__class__ is int else float(d)
            if duration > 0:
                total[node] += duration
                if parent == 0:
                    top += duration
            o = own[i]
            o = o if o.__class__ is float else as_number(o)
            if o is not None and o > 0:
                self_col[node] += o / 1000.0
            calls[node] += 1
            if node not in seen:
                seen.add(node)
                requests[node] += 1
        self.top += top
        self.span_count += len(parents)
        if parents:
            self.traces.add(trace)
        return True

    def add_spans(self, spans: list[Any]) -> None:
        """Merges span rows ``(trace, span_id, parent_span_id, name, duration, self_ms, file, library)`` in one
        pass, keyed by ``(trace, span_id)``; a span met before its parent places the parent's path first."""
        tree = self.tree
        info: dict[tuple[Any, str], tuple[tuple[Any, Any], int, float, Any]] = {}
        for row in spans:
            trace = row[0]
            info[(trace, row[1])] = ((trace, row[2]), self.function(row[3], row[6], row[7]), row[4], row[5])
            self.traces.add(trace)
        node_of: dict[tuple[Any, str], int] = {}
        children = tree.children
        child = tree.child
        parents = tree.parent
        total, self_col, calls, requests = tree.total, tree.self_time, tree.calls, tree.requests
        counted: set[tuple[Any, int]] = set()
        top = 0.0
        for key, (pkey, f, duration, own) in info.items():
            node = node_of.get(key)
            if node is None:
                parent = node_of.get(pkey)
                if parent is None:
                    parent = _place(pkey, info, node_of, child) if pkey in info else 0
                node = children.get((parent, f))
                if node is None:
                    node = child(parent, f)
                node_of[key] = node
            if duration > 0:
                total[node] += duration
                if parents[node] == 0:
                    top += duration
            if own is not None and own > 0:
                self_col[node] += own / 1000.0
            calls[node] += 1
            mark = (key[0], node)
            if mark not in counted:
                counted.add(mark)
                requests[node] += 1
        self.top += top
        self.span_count += len(spans)

    def finish(self, request_time: float, profiled: int) -> _Tree:
        """The tree, its root standing for the ``profiled`` requests and their ``request_time``."""
        tree = self.tree
        tree.total[0] = request_time
        tree.self_time[0] = max(0.0, request_time - self.top)
        tree.calls[0] = tree.requests[0] = profiled
        return tree


def merge(spans: list[Any], request_time: float, profiled: int) -> _Tree:
    """``spans`` rows (see ``Merge.add_spans``) merged by call path."""
    merged = Merge()
    merged.add_spans(spans)
    return merged.finish(request_time, profiled)


def _place(key: tuple[Any, str], info: dict[Any, Any], node_of: dict[Any, int], child: Any) -> int:
    """The node of a span not placed yet: its ancestors' path first (bounded, and a cycle is cut at the root)."""
    path = [key]
    up = info[key][0]
    while up in info and up not in node_of and len(path) < 10_000:
        if up in path:
            up = None
            break
        path.append(up)
        up = info[up][0]
    node = node_of[up] if up is not None and up in node_of else 0
    for k in reversed(path):
        node = child(node, info[k][1])
        node_of[k] = node
    return node


def _preorder(tree: _Tree, max_nodes: int) -> tuple[list[int], int]:
    """Node order for the answer: pre-order, widest child first; beyond ``max_nodes`` the narrowest are dropped."""
    kids: dict[int, list[int]] = defaultdict(list)
    for node in range(1, len(tree.parent)):
        kids[tree.parent[node]].append(node)
    keep: set[int] | None = None
    if len(tree.parent) > max_nodes:
        ranked = sorted(range(1, len(tree.parent)), key=lambda n: -tree.total[n])[: max_nodes - 1]
        keep = {0, *ranked}
    order: list[int] = []
    stack = [0]
    while stack:
        node = stack.pop()
        order.append(node)
        children = [k for k in kids.get(node, ()) if keep is None or k in keep]
        children.sort(key=lambda n: (tree.total[n], -n))
        stack.extend(children)  # widest last, so popped first
    return order, len(tree.parent) - len(order)


def to_wire(tree: _Tree, max_nodes: int) -> tuple[list[fs.FlameFunction], fs.FlameNodes, int]:
    order, dropped = _preorder(tree, max_nodes)
    position = {node: i for i, node in enumerate(order)}
    used: dict[int, int] = {}
    functions: list[fs.FlameFunction] = []
    for node in order[1:]:
        f = tree.function[node]
        if f not in used:
            used[f] = len(functions)
            functions.append(tree.functions[f])
    nodes = fs.FlameNodes(
        parent=[position[tree.parent[n]] if n else ROOT for n in order],
        function=[used[tree.function[n]] if n else ROOT for n in order],
        total=[round(tree.total[n], 6) for n in order],
        self_time=[round(tree.self_time[n], 6) for n in order],
        calls=[tree.calls[n] for n in order],
        requests=[tree.requests[n] for n in order],
    )
    return functions, nodes, dropped


async def flame_tree(
    session: AsyncSession,
    project_key: str,
    *,
    route: str | None,
    service: str | None,
    method: str | None,
    trace_id: str | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    max_nodes: int,
    sample: int | None = None,
) -> fs.FlameTree:
    """The merged flame tree of one trace, or of the newest ``limit`` requests of a route/service in a range."""
    project = await project_by_key(session, project_key)
    params: dict[str, Any] = {"project_id": project.id}
    lo: datetime | None
    hi: datetime | None
    stride = 1
    if trace_id is not None:
        if not all(c in "0123456789abcdefABCDEF" for c in trace_id) or len(trace_id) > 32:
            raise BadRequest(f"trace_id must be up to 32 hex digits, got {trace_id!r}")
        params["trace_id"] = trace_id.lower()
        filters = _record_filters(None, service, None, params)
        cohort_sql = TRACE_COHORT_SQL.format(filters=filters)
        rows = list((await session.execute(text(cohort_sql), params)).all())
        if not rows:
            raise NotFound(f"trace not found in this project: {trace_id!r}")
        request_count = len(rows)
        lo = hi = None
    else:
        lo, hi = window(start, end)
        params.update(start=lo, end=hi)
        filters = _record_filters(route, service, method, params)
        request_count = int(await session.scalar(text(COUNT_SQL.format(filters=filters)), params) or 0)
        newest = min(request_count, limit)
        if sample is not None and newest > sample:
            stride = math.ceil(newest / sample)
        params.update(limit=limit, stride=stride)
        cohort_sql = COHORT_SQL.format(filters=filters)
        rows = list((await session.execute(text(cohort_sql), params)).all())
    merged = await cohort_tree(session, project.id, Cohort(rows), cohort_sql, params)
    profiled_rows = [r for r in rows if r.trace_id in merged.traces]
    request_time = sum(max(float(r.duration), 0.0) for r in profiled_rows)
    tree = merged.finish(request_time, len(profiled_rows))
    functions, nodes, dropped = to_wire(tree, max_nodes)
    return fs.FlameTree(
        start=lo,
        end=hi,
        route=route,
        service=service,
        trace_id=trace_id.lower() if trace_id else None,
        request_count=request_count,
        sampled=len(rows),
        stride=stride,
        profiled=len(profiled_rows),
        request_time=request_time,
        span_count=merged.span_count,
        dropped_nodes=dropped,
        functions=functions,
        nodes=nodes,
    )


# ---------------------------------------------------------------- function view


def _bucket(start: datetime, end: datetime) -> int:
    wanted = (end - start).total_seconds() / TARGET_BUCKETS
    for step in (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800):
        if step >= wanted:
            return step
    return 604800


@dataclass
class _Link:
    file: str = ""
    total: float = 0.0
    self_time: float = 0.0
    calls: int = 0


def _links(table: dict[str, _Link], limit: int) -> list[fs.FunctionLink]:
    ranked = sorted(table.items(), key=lambda kv: (-kv[1].total, kv[0]))[:limit]
    return [
        fs.FunctionLink(name=k, file=v.file, total=v.total, self_time=v.self_time, calls=v.calls) for k, v in ranked
    ]


REQUEST_CALLER = "(request)"


async def function_view(
    session: AsyncSession,
    project_key: str,
    *,
    name: str,
    file: str | None,
    route: str | None,
    service: str | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    traces: int,
) -> fs.FunctionView:
    """Callers, callees, share over time and the slowest traces of one function over ``[start, end)``."""
    project = await project_by_key(session, project_key)
    lo, hi = window(start, end)
    params: dict[str, Any] = {
        "project_id": project.id,
        "start": lo,
        "end": hi,
        "fn_start": lo - SPAN_SLACK,
        "fn_end": hi + SPAN_SLACK + timedelta(hours=1),
        "name": name,
        "limit": limit,
    }
    calls_of: dict[tuple[str, str], int] = defaultdict(int)
    fn_lo, fn_hi = as_microseconds(params["fn_start"]), as_microseconds(params["fn_end"])
    for pack in await fetch_raw(session, FUNCTION_PACKS_SQL, params):
        c = decode_pack_columns(pack[3], pack[4], (FILE,))
        for i, at in enumerate(c.starts_us):
            if c.names[i] == name and fn_lo <= at < fn_hi and (not file or as_text(c.attributes[FILE][i]) == file):
                calls_of[(pack[1], pack[2])] += 1
    params["fn_traces"] = [k[0] for k in calls_of]
    params["fn_services"] = [k[1] for k in calls_of]
    params["fn_calls"] = list(calls_of.values())
    filters = _record_filters(route, service, None, params).replace("AND ", "AND r.")
    sql = FUNCTION_TRACES_SQL.format(filters=filters)
    rows = list((await session.execute(text(sql), params)).all())
    found = len(rows)
    if found >= limit:
        count_sql = f"SELECT count(*) FROM ({sql.replace('LIMIT :limit', '')}) x"
        found = int(await session.scalar(text(count_sql), params) or 0)
    spans = await cohort_spans(session, project.id, Cohort(rows), sql, params)
    by_trace: dict[str, dict[str, Any]] = defaultdict(dict)
    for s in spans:
        by_trace[s[0]][s[1]] = s
    callers: dict[str, _Link] = defaultdict(_Link)
    callees: dict[str, _Link] = defaultdict(_Link)
    per_trace: dict[str, tuple[float, int]] = {}
    total_calls, total_time, total_self = 0, 0.0, 0.0

    def matches(s: Any) -> bool:
        return bool(s[3] == name and (not file or s[6] == file))

    for trace_id, members in by_trace.items():
        kids: dict[str, list[Any]] = defaultdict(list)
        for s in members.values():
            if s[2] is not None:
                kids[s[2]].append(s)
        outer, calls = 0.0, 0
        for s in members.values():
            if not matches(s):
                continue
            calls += 1
            duration = max(float(s[4]), 0.0)
            own = max(float(s[5]), 0.0) / 1000.0 if s[5] is not None else 0.0
            total_self += own
            parent = members.get(s[2]) if s[2] is not None else None
            caller = callers[parent[3] if parent is not None else REQUEST_CALLER]
            if parent is not None:
                caller.file = parent[6]
            caller.total += duration
            caller.self_time += own
            caller.calls += 1
            for k in kids.get(s[1], ()):
                callee = callees[k[3]]
                callee.file = k[6]
                callee.total += max(float(k[4]), 0.0)
                callee.self_time += max(float(k[5]), 0.0) / 1000.0 if k[5] is not None else 0.0
                callee.calls += 1
            # Outermost calls only: a recursive call inside the same function is already counted.
            up, hops = parent, 0
            while up is not None and not matches(up) and hops < 10_000:
                up = members.get(up[2]) if up[2] is not None else None
                hops += 1
            if up is None:
                outer += duration
        per_trace[trace_id] = (outer, calls)
        total_calls += calls
        total_time += outer

    bucket = _bucket(lo, hi)
    series: dict[int, list[float]] = {}
    request_time = 0.0
    for r in rows:
        fn_time, calls = per_trace.get(r.trace_id, (0.0, 0))
        duration = max(float(r.duration), 0.0)
        request_time += duration
        index = math.floor((utc(r.timestamp) - lo).total_seconds() / bucket)
        point = series.setdefault(index, [0, 0, 0.0, 0.0])
        point[0] += 1
        point[1] += calls
        point[2] += fn_time
        point[3] += duration
    timeseries = [
        fs.FunctionTracePoint(
            time=lo + timedelta(seconds=i * bucket),
            requests=int(p[0]),
            calls=int(p[1]),
            function_time=p[2],
            request_time=p[3],
            share=min(1.0, p[2] / p[3]) if p[3] > 0 else 0.0,
        )
        for i, p in sorted(series.items())
    ]
    slowest = sorted(rows, key=lambda r: (-float(r.duration), r.trace_id))[:traces]
    trace_list = [
        fs.FunctionTrace(
            trace_id=r.trace_id,
            service=r.service_name,
            method=r.method,
            route=r.route,
            status_code=r.status_code,
            timestamp=utc(r.timestamp),
            duration=float(r.duration),
            function_time=per_trace.get(r.trace_id, (0.0, 0))[0],
            calls=per_trace.get(r.trace_id, (0.0, int(r.calls)))[1] or int(r.calls),
        )
        for r in slowest
    ]
    return fs.FunctionView(
        name=name,
        file=file or None,
        start=lo,
        end=hi,
        bucket=bucket,
        traces_found=found,
        traces_read=len(rows),
        calls=total_calls,
        total=total_time,
        self_time=total_self,
        request_time=request_time,
        share=min(1.0, total_time / request_time) if request_time > 0 else 0.0,
        callers=_links(callers, 50),
        callees=_links(callees, 50),
        timeseries=timeseries,
        traces=trace_list,
    )
