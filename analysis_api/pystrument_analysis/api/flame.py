"""Aggregated views of the stored function spans: a merged flame graph (of a route, a service or one trace) and
one function's callers, callees, share over time and traces. Same ``project_key`` contract as ``performance``.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from pystrument_collector.db import Database

from pystrument_analysis.api import flame_schemas
from pystrument_analysis.api.performance import End, Method, ProjectKey, Route, Service, Start
from pystrument_analysis.api.services import flame as flame_service


class FlameController(Controller):
    """``/api/v1/performance/flame`` and ``/api/v1/performance/function``."""

    path = "/api/v1/performance"
    tags = ("performance",)

    @get(
        "/flame",
        operation_id="getFlameTree",
        summary="Aggregated flame graph: the function spans of a route's, service's or one trace's requests, "
        "merged by call path",
    )
    async def get_flame_tree(
        self,
        db: NamedDependency[Database],
        project_key: ProjectKey,
        route: Route = None,
        service: Service = None,
        method: Method = None,
        trace_id: Annotated[
            str | None,
            QueryParameter(min_length=1, max_length=64, description="one trace instead of a route or service"),
        ] = None,
        start: Start = None,
        end: End = None,
        limit: Annotated[
            int, QueryParameter(ge=1, le=50_000, description="newest matching requests to merge (default 10000)")
        ] = 10_000,
        max_nodes: Annotated[
            int, QueryParameter(ge=2, le=100_000, description="call paths to return, the widest (default 20000)")
        ] = 20_000,
        sample: Annotated[
            int | None,
            QueryParameter(
                ge=1,
                le=50_000,
                description="merge every k-th of the newest `limit` requests so that at most about this many are "
                "read (a quick first view; unset: all)",
            ),
        ] = None,
    ) -> flame_schemas.FlameTreeResponse:
        async with db.session() as session:
            tree = await flame_service.flame_tree(
                session,
                project_key,
                route=route,
                service=service,
                method=method,
                trace_id=trace_id,
                start=start,
                end=end,
                limit=limit,
                max_nodes=max_nodes,
                sample=sample,
            )
        return flame_schemas.FlameTreeResponse(data=tree)

    @get(
        "/function",
        operation_id="getFunctionView",
        summary="One function over a time range: callers, callees, share of request time over time, its traces",
    )
    async def get_function_view(
        self,
        db: NamedDependency[Database],
        project_key: ProjectKey,
        name: Annotated[str, QueryParameter(min_length=1, max_length=2000, description="code.function.name")],
        file: Annotated[
            str | None, QueryParameter(max_length=2000, description="code.file.path (any file when unset)")
        ] = None,
        route: Route = None,
        service: Service = None,
        start: Start = None,
        end: End = None,
        limit: Annotated[
            int, QueryParameter(ge=1, le=20_000, description="newest requests calling it to read (default 5000)")
        ] = 5000,
        traces: Annotated[int, QueryParameter(ge=1, le=500, description="slowest traces to list (default 50)")] = 50,
    ) -> flame_schemas.FunctionViewResponse:
        async with db.session() as session:
            view = await flame_service.function_view(
                session,
                project_key,
                name=name,
                file=file,
                route=route,
                service=service,
                start=start,
                end=end,
                limit=limit,
                traces=traces,
            )
        return flame_schemas.FunctionViewResponse(data=view)
