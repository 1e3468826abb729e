"""Performance endpoints: records (seed 5.2.2) with filters, trace detail, statistics and speedscope export.

Every endpoint takes ``project_key`` as a query parameter: missing -> 400 (40001), unknown -> 404 (40401).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Response, get
from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter, QueryParameter
from pystrument_collector.db import Database

from pystrument_analysis.api import schemas
from pystrument_analysis.api.errors import NotFound
from pystrument_analysis.api.services import differential as differential_service
from pystrument_analysis.api.services import records as record_service
from pystrument_analysis.api.services import stats as stats_service
from pystrument_analysis.api.services._common import MAX_PAGE, project_by_key
from pystrument_analysis.api.services.records import MAX_DETAIL_SPANS, RecordFilter
from pystrument_analysis.api.services.speedscope import MAX_SPEEDSCOPE_SPANS, speedscope_document

ProjectKey = Annotated[str, QueryParameter(min_length=1, max_length=64, description="the project's key (proj_...)")]
Page = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE, description="page number, 1-1000000")]
Size = Annotated[int, QueryParameter(ge=1, le=100, description="page size, 1-100")]
Start = Annotated[datetime | None, QueryParameter(description="from this time (ISO 8601, inclusive)")]
End = Annotated[datetime | None, QueryParameter(description="until this time (ISO 8601, exclusive)")]
Route = Annotated[str | None, QueryParameter(max_length=2000, description="exact route template, e.g. /users/{id}")]
Service = Annotated[str | None, QueryParameter(max_length=200, description="service.name of the request span")]
TraceId = Annotated[str, PathParameter(min_length=1, max_length=64, description="the trace id (32 hex digits)")]
Method = Annotated[str | None, QueryParameter(pattern="^[A-Za-z]{1,16}$", description="HTTP method")]
PathContains = Annotated[str | None, QueryParameter(max_length=2000, description="request path contains")]
StatusClass = Annotated[str | None, QueryParameter(pattern="^[1-5]xx$", description="e.g. 5xx")]
ErrorOnly = Annotated[bool | None, QueryParameter(description="only failed (true) or successful (false)")]
MinDuration = Annotated[float | None, QueryParameter(ge=0, description="seconds")]
MaxDuration = Annotated[float | None, QueryParameter(ge=0, description="seconds")]


def provide_scope(
    method: Method = None,
    service: Service = None,
    start: Start = None,
    end: End = None,
    path: PathContains = None,
    status_class: StatusClass = None,
    error: ErrorOnly = None,
    min_duration: MinDuration = None,
    max_duration: MaxDuration = None,
) -> RecordFilter:
    """The filters every performance view shares, but the route (a view may require one)."""
    return RecordFilter(
        method=method,
        service=service,
        start=start,
        end=end,
        path=path,
        status_class=status_class,
        error=error,
        min_duration=min_duration,
        max_duration=max_duration,
    )


def provide_filters(record_scope: NamedDependency[RecordFilter], route: Route = None) -> RecordFilter:
    """``record_scope`` and an optional route: the requests a records page, statistics or hot functions read."""
    return replace(record_scope, route=route)


class PerformanceController(Controller):
    """``/api/v1/performance``: what the collector stored, per project."""

    path = "/api/v1/performance"
    tags = ("performance",)
    dependencies = {  # noqa: RUF012 (Litestar reads the class attribute)
        "record_scope": Provide(provide_scope, sync_to_thread=False),
        "filters": Provide(provide_filters, sync_to_thread=False),
    }

    @get("/records", operation_id="listRecords", summary="Request records, newest first (seed 5.2.2)")
    async def list_records(
        self,
        db: NamedDependency[Database],
        project_key: ProjectKey,
        filters: NamedDependency[RecordFilter],
        page: Page = 1,
        size: Size = 20,
        status_code: Annotated[int | None, QueryParameter(ge=100, le=599)] = None,
        sort: Annotated[str, QueryParameter(pattern="^(timestamp|duration)$")] = "timestamp",
        order: Annotated[str, QueryParameter(pattern="^(asc|desc)$")] = "desc",
        cursor: Annotated[
            str | None,
            QueryParameter(max_length=1000, description="next_cursor of the previous page (keyset; page is ignored)"),
        ] = None,
        trace_ids: Annotated[
            str | None,
            QueryParameter(
                max_length=3300,
                pattern="^[0-9A-Fa-f]{1,32}(,[0-9A-Fa-f]{1,32}){0,99}$",
                description="only these traces: up to 100 trace ids, comma-separated",
            ),
        ] = None,
    ) -> schemas.RecordPageResponse:
        filters = replace(
            filters,
            status_code=status_code,
            trace_ids=None if trace_ids is None else tuple(t.lower() for t in trace_ids.split(",")),
        )
        async with db.session() as session:
            page_data = await record_service.list_page(session, project_key, page, size, filters, sort, order, cursor)
        return schemas.RecordPageResponse(data=page_data)

    @get(
        "/records/{trace_id:str}",
        operation_id="getRecord",
        summary="One trace: its request record and every span, with display parents for the waterfall",
    )
    async def get_record(
        self,
        db: NamedDependency[Database],
        trace_id: TraceId,
        project_key: ProjectKey,
        span_id: Annotated[
            str | None, QueryParameter(description="which request span, when the trace has several")
        ] = None,
        span_offset: Annotated[
            int, QueryParameter(ge=0, le=100_000_000, description="first span to return (oldest first)")
        ] = 0,
        span_limit: Annotated[
            int,
            QueryParameter(ge=1, le=MAX_DETAIL_SPANS, description=f"spans to return, at most {MAX_DETAIL_SPANS}"),
        ] = MAX_DETAIL_SPANS,
    ) -> schemas.RecordDetailResponse:
        async with db.session() as session:
            detail = await record_service.detail(session, project_key, trace_id, span_id, span_offset, span_limit)
        return schemas.RecordDetailResponse(data=detail)

    @get(
        "/records/{trace_id:str}/speedscope",
        operation_id="exportSpeedscope",
        summary="The trace's function spans as a speedscope file (https://www.speedscope.app)",
    )
    async def export_speedscope(
        self, db: NamedDependency[Database], trace_id: TraceId, project_key: ProjectKey
    ) -> Response[dict[str, Any]]:
        async with db.session() as session:
            project = await project_by_key(session, project_key)
            records = await record_service.trace_records(session, project.id, trace_id)
            if not records:
                raise NotFound(f"trace not found in this project: {trace_id!r}")
            spans = await record_service.trace_spans(session, project.id, trace_id, limit=MAX_SPEEDSCOPE_SPANS + 1)
            total = len(spans)
            if total > MAX_SPEEDSCOPE_SPANS:
                spans = spans[:MAX_SPEEDSCOPE_SPANS]
                total = await record_service.span_count(session, project.id, trace_id)
        document = speedscope_document(trace_id, records, spans, total=total)
        if not document["profiles"]:
            raise NotFound(f"no request span stored for trace {trace_id!r}")
        safe = "".join(c for c in trace_id if c.isalnum() or c in "-_")[:64] or "trace"
        return Response(
            document,
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{safe}.speedscope.json"'},
        )

    @get("/stats", operation_id="getStats", summary="Per-route count, p50/p95/p99, error rate, throughput over time")
    async def get_stats(
        self,
        db: NamedDependency[Database],
        project_key: ProjectKey,
        filters: NamedDependency[RecordFilter],
        bucket: Annotated[
            str | None,
            QueryParameter(max_length=16, description="time-series step: seconds or 30s/5m/1h/1d; auto if unset"),
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000, description="routes to return, by request count")] = 50,
        slowest: Annotated[int, QueryParameter(ge=1, le=100, description="slowest routes to return, by p95")] = 10,
        mode: Annotated[
            str,
            QueryParameter(
                pattern="^(auto|exact|rollup)$",
                description="exact (percentile_cont), rollup (pre-aggregated, percentiles within 10%) or auto",
            ),
        ] = "auto",
    ) -> schemas.StatsResponse:
        async with db.session() as session:
            report = await stats_service.report(session, project_key, filters, bucket, limit, slowest, mode)
        return schemas.StatsResponse(data=report)

    @get(
        "/routes/differential",
        operation_id="getRouteDifferential",
        summary="Tail vs median of one route: which functions grow most in its slowest requests",
    )
    async def get_route_differential(
        self,
        db: NamedDependency[Database],
        project_key: ProjectKey,
        record_scope: NamedDependency[RecordFilter],
        route: Annotated[
            str, QueryParameter(min_length=1, max_length=2000, description="exact route template, e.g. /users/{id}")
        ],
        sample: Annotated[
            int, QueryParameter(ge=1, le=1000, description="requests read per cohort, newest with function spans")
        ] = 200,
        limit: Annotated[int, QueryParameter(ge=1, le=500, description="functions to return, by delta")] = 50,
    ) -> schemas.RouteDifferentialResponse:
        filters = replace(record_scope, route=route)
        async with db.session() as session:
            report = await differential_service.route_differential(session, project_key, filters, sample, limit)
        return schemas.RouteDifferentialResponse(data=report)

    @get(
        "/functions",
        operation_id="getHotFunctions",
        summary="Functions by self time across the function spans of matching requests (e.g. one route)",
    )
    async def get_hot_functions(
        self,
        db: NamedDependency[Database],
        project_key: ProjectKey,
        filters: NamedDependency[RecordFilter],
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> schemas.FunctionReportResponse:
        async with db.session() as session:
            report = await stats_service.hot_functions(session, project_key, filters, limit)
        return schemas.FunctionReportResponse(data=report)

    @get(
        "/services",
        operation_id="listServices",
        summary="The project's service names (service.name of its requests), with request counts",
    )
    async def list_services(
        self,
        db: NamedDependency[Database],
        project_key: ProjectKey,
        start: Start = None,
        end: End = None,
    ) -> schemas.ServiceListResponse:
        async with db.session() as session:
            services = await stats_service.services(session, project_key, start, end)
        return schemas.ServiceListResponse(data=services)
