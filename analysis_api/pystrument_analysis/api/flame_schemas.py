"""Wire types of the aggregated views: a route's (or service's, or trace's) merged flame graph and a function's
callers, callees, share over time and traces. Durations are seconds; times ISO 8601 UTC, as everywhere else.

The flame tree is sent by columns (one list per field, node ``i`` across all of them), so a tree of thousands of
nodes is a few compact arrays rather than thousands of objects.
"""

from __future__ import annotations

from datetime import datetime

from msgspec import Struct

from pystrument_analysis.api.schemas import _Envelope


class FlameFunction(Struct):
    """A function of the tree: its ``code.function.name`` (the span name), ``code.file.path`` and library flag."""

    name: str
    file: str
    library: bool


class FlameNodes(Struct):
    """The merged call tree in pre-order (a parent comes before its children), by columns.

    Node 0 is the synthetic root: every profiled request (``total`` = their summed duration, ``self_time`` = the time
    no function span covers). ``parent[i]`` is the index of node ``i``'s parent (-1 for the root), ``function[i]``
    an index into ``functions`` (-1 for the root). ``total``/``self_time`` are seconds summed over every call on that
    call path; ``calls`` counts the calls and ``requests`` the requests in which the path occurs.
    """

    parent: list[int]
    function: list[int]
    total: list[float]
    self_time: list[float]
    calls: list[int]
    requests: list[int]


class FlameTree(Struct):
    """The function spans of the selected requests merged by call path.

    ``request_count``: requests matching the filters; ``sampled``: the requests read: the newest ``limit``, or with
    ``sample`` every ``stride``-th of them (an even spread over the range); ``sampled < request_count`` means the
    graph is of those only; ``profiled``: of
    those, the ones that carry function spans (the SDK keeps them for slow, failed and a sampled share of the
    rest). ``request_time``: summed duration of the profiled requests. ``dropped_nodes``: smallest call paths left
    out to keep the tree under ``max_nodes``.
    """

    start: datetime | None
    end: datetime | None
    route: str | None
    service: str | None
    trace_id: str | None
    request_count: int
    sampled: int
    stride: int
    profiled: int
    request_time: float
    span_count: int
    dropped_nodes: int
    functions: list[FlameFunction]
    nodes: FlameNodes


class FlameTreeResponse(_Envelope, kw_only=True):
    data: FlameTree


class FunctionLink(Struct):
    """A caller or a callee of the function: its time (seconds) and calls on that edge, summed."""

    name: str
    file: str
    total: float
    self_time: float
    calls: int


class FunctionTracePoint(Struct):
    """One time bucket: the function's (outermost) time in the requests that called it and their duration."""

    time: datetime
    requests: int
    calls: int
    function_time: float
    request_time: float
    share: float


class FunctionTrace(Struct):
    """A request that called the function: its record, and the function's time and calls in it."""

    trace_id: str
    service: str
    method: str
    route: str
    status_code: int | None
    timestamp: datetime
    duration: float
    function_time: float
    calls: int


class FunctionView(Struct):
    """One function (by ``code.function.name``, and ``code.file.path`` when given) over ``[start, end)``.

    ``traces_found``: requests in the range that called it; ``traces_read``: the newest of them that were read
    (at most ``limit``), from which every other figure is computed. ``total``: outermost time (a recursive call
    inside itself is not counted twice); ``self_time`` sums ``pystrument.self_time_ms``. ``share``: ``total`` over the
    duration of the requests read. ``traces``: the slowest of them first.
    """

    name: str
    file: str | None
    start: datetime
    end: datetime
    bucket: int
    traces_found: int
    traces_read: int
    calls: int
    total: float
    self_time: float
    request_time: float
    share: float
    callers: list[FunctionLink]
    callees: list[FunctionLink]
    timeseries: list[FunctionTracePoint]
    traces: list[FunctionTrace]


class FunctionViewResponse(_Envelope, kw_only=True):
    data: FunctionView
