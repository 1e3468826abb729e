"""Wire types of the projects and performance API (msgspec structs, so ``/schema`` is typed).

Every response is the seed envelope ``{code, msg, data}``; each endpoint has its own concrete envelope
struct so the OpenAPI schema names are short and ``data`` keeps its type. Durations are seconds (floats),
times are ISO 8601 in UTC (``...Z``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from msgspec import UNSET, Meta, Struct, UnsetType

ProjectName = Annotated[str, Meta(min_length=1, max_length=200, description="display name, 1-200 characters")]
Framework = Annotated[
    str, Meta(max_length=50, description="flask, django, fastapi, other, or any label up to 50 characters")
]
Description = Annotated[str, Meta(max_length=5000)]
ProjectStatus = Annotated[str, Meta(pattern="^(active|paused|archived)$", description="active, paused or archived")]


class _Envelope(Struct, kw_only=True):
    """The seed envelope; subclasses add ``data`` with its concrete type."""

    code: int = 0
    msg: str = "success"


# ---------------------------------------------------------------- projects


class ProjectCreate(Struct):
    """Body of ``POST /api/v1/projects`` (seed 5.1.1)."""

    name: ProjectName
    description: Description = ""
    framework: Framework = ""


class ProjectReplace(ProjectCreate):
    """Body of ``PUT /api/v1/projects/{project_key}``: every field; omitted ones are reset."""

    status: ProjectStatus = "active"


class ProjectPatch(Struct):
    """Body of ``PATCH /api/v1/projects/{project_key}``: only the fields given change."""

    name: ProjectName | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    framework: Framework | UnsetType = UNSET
    status: ProjectStatus | UnsetType = UNSET


class ProjectCreated(Struct):
    """Seed 5.1.1 ``data``."""

    project_key: str
    name: str
    status: str
    created_at: datetime


class ProjectItem(Struct):
    """One row of the seed 5.1.2 list; ``description``, ``created_at`` and ``id`` are extras."""

    project_key: str
    name: str
    framework: str
    status: str
    last_activity: datetime | None
    description: str
    created_at: datetime
    id: int
    """The project's stable numeric id: unlike the key it survives a key rotation (the UI's URLs use it)."""


class ProjectPage(Struct):
    projects: list[ProjectItem]
    total: int
    page: int
    size: int


class ProjectDetail(Struct):
    """A project with its counters."""

    project_key: str
    name: str
    description: str
    framework: str
    status: str
    created_at: datetime
    updated_at: datetime
    last_activity: datetime | None
    record_count: int
    id: int
    """The project's stable numeric id: unlike the key it survives a key rotation (the UI's URLs use it)."""


class ProjectDeleted(Struct):
    project_key: str
    deleted: bool


class ProjectCreatedResponse(_Envelope, kw_only=True):
    data: ProjectCreated


class ProjectPageResponse(_Envelope, kw_only=True):
    data: ProjectPage


class ProjectDetailResponse(_Envelope, kw_only=True):
    data: ProjectDetail


class ProjectDeletedResponse(_Envelope, kw_only=True):
    data: ProjectDeleted


# ---------------------------------------------------------------- records


class RecordItem(Struct):
    """One request (seed 5.2.2 fields first, then extras)."""

    trace_id: str
    request_path: str
    duration: float
    status_code: int | None
    timestamp: datetime
    span_id: str
    method: str
    route: str
    service_name: str
    cpu_time: float | None
    is_error: bool


class RecordDetailItem(RecordItem):
    """A record with its memory figures, as measured by the SDK."""

    memory: dict[str, Any]


class RecordPage(Struct):
    """A page of records. ``total`` is exact unless ``total_estimated`` (then the planner's estimate, over
    10,000); ``next_cursor`` continues after this page (null on the last page)."""

    records: list[RecordItem]
    total: int
    page: int
    size: int
    total_estimated: bool = False
    next_cursor: str | None = None


class SpanItem(Struct):
    """One span of a trace; ``display_parent_span_id`` nests real child spans under the function running them."""

    span_id: str
    parent_span_id: str | None
    display_parent_span_id: str | None
    name: str
    kind: str
    start_time: datetime
    offset: float
    duration: float
    depth: int
    status_code: int
    status_message: str
    service_name: str
    synthetic: bool
    attributes: dict[str, Any]
    events: list[Any]


class LogItem(Struct):
    """A log line written in the trace (OTLP logs); ``span_id`` is the span it was written in (null: none).

    ``body`` is the message (a string for ordinary log lines, any JSON value for structured ones); attributes
    are scrubbed of secrets as span attributes are. ``scope_name`` is the logger's name.
    """

    timestamp: datetime
    span_id: str | None
    severity_text: str
    severity_number: int
    body: Any
    attributes: dict[str, Any]
    scope_name: str = ""


class RecordDetail(Struct):
    record: RecordDetailItem
    spans: list[SpanItem]
    logs: list[LogItem] = []
    span_total: int = 0  # spans stored for the trace
    span_offset: int = 0  # the first span returned (oldest first)
    spans_truncated: bool = False  # true when ``spans`` is not the whole trace: page with next_span_offset
    next_span_offset: int | None = None


class RecordPageResponse(_Envelope, kw_only=True):
    data: RecordPage


class RecordDetailResponse(_Envelope, kw_only=True):
    data: RecordDetail


# ---------------------------------------------------------------- statistics


class LatencyStats(Struct):
    """Counts and latency (seconds) of a set of requests; ``throughput`` is requests per second over the window.

    Latency figures are null when there were no requests.
    """

    count: int
    error_count: int
    error_rate: float
    throughput: float
    avg: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None


class RouteStats(Struct):
    """``LatencyStats`` of one route (``METHOD`` + route template; the path when no route was recorded)."""

    method: str
    route: str
    count: int
    error_count: int
    error_rate: float
    throughput: float
    avg: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None


class TimePoint(Struct):
    """``LatencyStats`` of one time-series bucket starting at ``time``."""

    time: datetime
    count: int
    error_count: int
    error_rate: float
    throughput: float
    avg: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None


class StatsReport(Struct):
    """Per-route statistics over ``[start, end)`` and a time series in ``bucket``-second steps."""

    start: datetime
    end: datetime
    bucket: int
    summary: LatencyStats
    routes: list[RouteStats]
    slowest_routes: list[RouteStats]
    timeseries: list[TimePoint]
    approximate: bool = False  # percentiles estimated from the rollups' histograms (within 10%)


class FunctionStats(Struct):
    """A function's cost across the matching requests' function spans."""

    name: str
    file: str
    line: int | None
    calls: int
    traces: int
    total_time: float
    self_time: float
    avg_time: float
    self_time_share: float
    # The real spans (DB queries, HTTP calls) its spans started (``pystrument.child_span_ids``): a loop's N+1
    # shows here even when the SDK merged its consecutive calls into one function span per request.
    child_spans: int
    child_spans_per_request: float  # child_spans / traces
    max_child_spans_per_request: int


class FunctionReport(Struct):
    start: datetime
    end: datetime
    route: str | None
    request_count: int
    request_time: float
    functions: list[FunctionStats]


class StatsResponse(_Envelope, kw_only=True):
    data: StatsReport


class FunctionReportResponse(_Envelope, kw_only=True):
    data: FunctionReport


class ServiceItem(Struct):
    """One ``service.name`` of a project's requests."""

    name: str
    count: int


class ServiceList(Struct):
    services: list[ServiceItem]


class ServiceListResponse(_Envelope, kw_only=True):
    data: ServiceList


# ---------------------------------------------------------------- tail vs median


class Cohort(Struct):
    """Requests of one duration band: how many in the window, how many of them were read (``profiled``:
    the newest ones with function spans, at most ``sample``) and their mean duration (seconds)."""

    min_duration: float | None
    max_duration: float | None
    requests: int
    profiled: int
    mean_duration: float | None


class FunctionDelta(Struct):
    """One function's mean time per request (seconds) in the median and the tail cohort.

    ``share``: ``delta`` over the tail's extra time (nested functions overlap); ``self_share`` is additive.
    ``*_calls``: mean calls per request.
    """

    name: str
    file: str
    median_time: float
    tail_time: float
    delta: float
    share: float
    median_self_time: float
    tail_self_time: float
    self_delta: float
    self_share: float
    median_calls: float
    tail_calls: float


class RouteDifferential(Struct):
    """Which functions grow most between a route's median requests (p40-p60) and its tail (p95 and up)."""

    start: datetime
    end: datetime
    route: str
    method: str | None
    service: str | None
    request_count: int
    median: Cohort
    tail: Cohort
    extra_time: float | None
    functions: list[FunctionDelta]


class RouteDifferentialResponse(_Envelope, kw_only=True):
    data: RouteDifferential
