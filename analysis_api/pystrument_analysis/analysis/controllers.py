"""``/api/v1/analysis``: trigger an analysis (seed 5.3.1), poll its result (5.3.2), list analyses.

Analyses are scoped to a project: the list needs ``project_key``; a result read by its (unguessable) id alone
does not say which project it belongs to; a trigger's body key and X-Project-Key header must agree.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import Parameter, PathParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK
from pystrument_collector.db import Database
from pystrument_collector.db.models import Analysis, Project
from sqlalchemy import func, select

from pystrument_analysis.analysis.config import AIConfig
from pystrument_analysis.analysis.runtime import AnalysisRuntime
from pystrument_analysis.analysis.schemas import (
    AnalysisPage,
    AnalysisPageResponse,
    AnalysisResponse,
    TriggerData,
    TriggerRequest,
    TriggerResponse,
)
from pystrument_analysis.analysis.service import (
    new_analysis_id,
    pending_count,
    project_by_key,
    public,
    trace_project_ids,
)
from pystrument_analysis.api.errors import BadRequest, NotFound

BUILTIN_SECONDS = 2
_HEX_TRACE = re.compile(r"^[0-9a-fA-F]{32}$")


def provide_analysis(state: State) -> AnalysisRuntime:
    runtime = state.get("analysis")
    if not isinstance(runtime, AnalysisRuntime):
        raise RuntimeError("the app was built without an AnalysisRuntime in state.analysis")
    return runtime


def estimate_seconds(config: AIConfig, service: str, ahead: int) -> int:
    """Time for one job of this service, plus the queue ahead of it shared by this server's slots."""
    svc = config.service(service)
    per_job = BUILTIN_SECONDS if svc is None else max(BUILTIN_SECONDS, math.ceil(min(svc.timeout, 60)))
    return per_job + (ahead // max(1, config.worker.concurrency)) * per_job


class AnalysisController(Controller):
    """AI analysis of one trace; jobs run in the background and are polled."""

    path = "/api/v1/analysis"
    tags = ("analysis",)
    dependencies = {"analysis": Provide(provide_analysis, sync_to_thread=False)}  # noqa: RUF012

    @post(
        "/trigger",
        operation_id="triggerAnalysis",
        status_code=HTTP_200_OK,
        summary="Queue an analysis of one trace (seed 5.3.1); answers at once with status pending",
    )
    async def trigger(
        self,
        db: NamedDependency[Database],
        analysis: NamedDependency[AnalysisRuntime],
        data: TriggerRequest,
        x_project_key: Annotated[
            str | None, Parameter(header="X-Project-Key", required=False, description="the trace's project")
        ] = None,
    ) -> TriggerResponse:
        config = analysis.config
        service = data.ai_service or config.default_service
        if service not in config.service_names():
            raise BadRequest(
                f"ai_service {service!r} is not configured; configured services: {', '.join(config.service_names())}"
            )
        trace_id = data.trace_id.strip()
        if _HEX_TRACE.match(trace_id):
            trace_id = trace_id.lower()
        if data.project_key and x_project_key and data.project_key != x_project_key:
            raise BadRequest("project_key in the body and the X-Project-Key header differ; give one of them")
        key = data.project_key or x_project_key
        async with db.session() as session:
            if key:
                project = await project_by_key(session, key)
                if project is None:
                    raise NotFound(f"project {key} not found")
                if not await trace_project_ids(session, trace_id, project.id):
                    raise NotFound(f"trace {trace_id} not found in project {key}")
            else:
                ids = await trace_project_ids(session, trace_id)
                if not ids:
                    raise NotFound(f"trace {trace_id} not found")
                if len(ids) > 1:
                    raise BadRequest(
                        f"trace {trace_id} exists in several projects; give project_key or the X-Project-Key header"
                    )
                project = await session.get_one(Project, ids[0])
            ahead = await pending_count(session)
            job = Analysis(
                id=new_analysis_id(),
                project_id=project.id,
                trace_id=trace_id,
                analysis_type=data.analysis_type,
                ai_service=service,
                status="pending",
                language=data.language,
                result={},
                error="",
                attempts=0,
                provider_used="",
            )
            session.add(job)
        analysis.notify()
        return TriggerResponse(
            data=TriggerData(
                analysis_id=job.id,
                status="pending",
                estimated_duration=estimate_seconds(config, service, ahead),
                ai_service=service,
                trace_id=trace_id,
                project_key=project.project_key if key else None,
            )
        )

    @get(
        "/results/{analysis_id:str}",
        operation_id="getAnalysisResult",
        summary="One analysis: status, score, bottlenecks and suggestions (seed 5.3.2)",
    )
    async def result(
        self,
        db: NamedDependency[Database],
        analysis_id: Annotated[str, PathParameter(min_length=1, max_length=64, description="analysis_...")],
        project_key: Annotated[
            str | None,
            QueryParameter(
                min_length=1,
                max_length=64,
                description="the analysis' project: checked, and then echoed in the answer (seed 5.3.2 works without)",
            ),
        ] = None,
    ) -> AnalysisResponse:
        async with db.session() as session:
            row = (
                await session.execute(
                    select(Analysis, Project.project_key)
                    .join(Project, Project.id == Analysis.project_id)
                    .where(Analysis.id == analysis_id)
                )
            ).first()
        if row is None or (project_key is not None and row[1] != project_key):
            raise NotFound(f"analysis {analysis_id} not found" + (" in this project" if project_key else ""))
        # The unguessable id alone reads the result (seed 5.3.2), but not which project it belongs to.
        return AnalysisResponse(data=public(row[0], row[1] if project_key else None))

    @get("/results", operation_id="listAnalysisResults", summary="Analyses, newest first, filtered")
    async def results(
        self,
        db: NamedDependency[Database],
        project_key: Annotated[str, QueryParameter(min_length=1, max_length=64, description="the project")],
        trace_id: Annotated[str | None, QueryParameter(max_length=64)] = None,
        status: Annotated[str | None, QueryParameter(pattern="^(pending|running|completed|failed)$")] = None,
        page: Annotated[int, QueryParameter(ge=1, le=1_000_000)] = 1,  # OFFSET must fit int64
        size: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
    ) -> AnalysisPageResponse:
        conditions = []
        async with db.session() as session:
            project = await project_by_key(session, project_key)
            if project is None:
                raise NotFound(f"project {project_key} not found")
            conditions.append(Analysis.project_id == project.id)
            if trace_id:
                tid = trace_id.strip()
                conditions.append(Analysis.trace_id == (tid.lower() if _HEX_TRACE.match(tid) else tid))
            if status:
                conditions.append(Analysis.status == status)
            total = int(await session.scalar(select(func.count()).select_from(Analysis).where(*conditions)) or 0)
            rows = (
                await session.execute(
                    select(Analysis, Project.project_key)
                    .join(Project, Project.id == Analysis.project_id)
                    .where(*conditions)
                    .order_by(Analysis.created_at.desc(), Analysis.id)
                    .offset((page - 1) * size)
                    .limit(size)
                )
            ).all()
        items = [public(a, k) for a, k in rows]
        return AnalysisPageResponse(data=AnalysisPage(analyses=items, total=total, page=page, size=size))


__all__ = ["AnalysisController"]
