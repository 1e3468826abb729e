"""Analysis jobs: create, read, and run one (extract -> preprocess -> call -> validate -> result)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from pystrument_collector.db import Database
from pystrument_collector.db.models import Analysis, FunctionSpanPack, Project, Span
from pystrument_collector.logs import TraceLog, trace_logs
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pystrument_analysis.analysis import builtin
from pystrument_analysis.analysis.config import BUILTIN, AIConfig
from pystrument_analysis.analysis.detectors import run_rules
from pystrument_analysis.analysis.preprocess import build_summary, load_baseline
from pystrument_analysis.analysis.providers import ProviderError, build_request, make_provider
from pystrument_analysis.analysis.schemas import AnalysisDetail, AnalysisOutput
from pystrument_analysis.analysis.texts import FALLBACK_NOTE
from pystrument_analysis.analysis.trace import Trace, load_trace

logger = logging.getLogger(__name__)

LOAD_ATTEMPTS = 3
#: Log lines read with a trace for an AI provider (``preprocess.log_context`` keeps the most severe).
LOG_LIMIT = 500
LOAD_RETRY_SECONDS = 0.5


def new_analysis_id() -> str:
    return "analysis_" + secrets.token_hex(8)


@dataclass(frozen=True)
class Job:
    """A claimed analysis job: what the worker needs to run it."""

    id: str
    project_id: int
    trace_id: str
    ai_service: str
    analysis_type: str
    language: str
    attempts: int = 1


@dataclass
class Outcome:
    """How a job ended; written back by the worker that holds its lease."""

    status: str
    score: float | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    provider_used: str = ""


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def project_by_key(session: AsyncSession, key: str) -> Project | None:
    return (await session.scalars(select(Project).where(Project.project_key == key))).first()


async def trace_project_ids(session: AsyncSession, trace_id: str, project_id: int | None = None) -> list[int]:
    """Projects holding spans of ``trace_id`` (restricted to ``project_id`` when given)."""
    found: set[int] = set()
    for table in (Span, FunctionSpanPack):
        stmt = select(table.project_id).where(table.trace_id == trace_id)
        if project_id is not None:
            stmt = stmt.where(table.project_id == project_id)
        found.update((await session.scalars(stmt.distinct().limit(5))).all())
    return sorted(found)[:5]


async def pending_count(session: AsyncSession) -> int:
    stmt = select(func.count()).select_from(Analysis).where(Analysis.status == "pending")
    return int(await session.scalar(stmt) or 0)


def public(analysis: Analysis, project_key: str | None) -> AnalysisDetail:
    """The seed 5.3.2 shape plus pystrument's extras."""
    return msgspec.convert(public_dict(analysis, project_key), AnalysisDetail, strict=False)


def public_dict(analysis: Analysis, project_key: str | None) -> dict[str, Any]:
    result = analysis.result or {}
    return {
        "analysis_id": analysis.id,
        "status": analysis.status,
        "performance_score": analysis.performance_score,
        "builtin_score": result.get(
            "builtin_score", analysis.performance_score if analysis.provider_used == BUILTIN else None
        ),
        "bottleneck_analysis": result.get("bottleneck_analysis", []),
        "optimization_suggestions": result.get("optimization_suggestions", []),
        "summary": result.get("summary", ""),
        "trace_id": analysis.trace_id,
        "project_key": project_key,
        "coverage": result.get("coverage"),
        "analysis_type": analysis.analysis_type,
        "ai_service": analysis.ai_service,
        "provider_used": analysis.provider_used or None,
        "language": analysis.language,
        "fallback": bool(result.get("fallback", False)),
        "error": analysis.error or None,
        "attempts": analysis.attempts,
        "created_at": iso(analysis.created_at),
        "started_at": iso(analysis.started_at),
        "completed_at": iso(analysis.completed_at),
    }


def _match_function(trace: Trace, name: str) -> list[Any]:
    spans = [s for s in trace.functions() if s.function == name or s.name == name]
    if not spans:
        spans = [s for s in trace.functions() if s.function.endswith("." + name)]
    return sorted(spans, key=lambda s: -s.self_ms)


def enrich(output: AnalysisOutput, trace: Trace) -> dict[str, Any]:
    """An AI answer as stored: bottlenecks get span ids, file and line from the trace where they match."""
    bottlenecks = msgspec.to_builtins(output.bottleneck_analysis)
    for b in bottlenecks:
        spans = _match_function(trace, b["function"])
        if spans:
            top = spans[0]
            b["span_ids"] = b.get("span_ids") or [s.span_id for s in spans[:10]]
            b["file"] = b.get("file") or top.file
            b["line"] = b.get("line") or top.line
            if b.get("self_time_ms") is None:
                b["self_time_ms"] = round(top.self_ms, 3)
    return {
        "bottleneck_analysis": bottlenecks,
        "optimization_suggestions": msgspec.to_builtins(output.optimization_suggestions),
        "summary": "",
    }


async def over_budget(db: Database, job: Job, max_spans: int) -> str:
    """Why the trace is too large to analyse (more than ``max_spans`` spans), or ``""``; counted before it is read."""
    async with db.session() as session:
        capped = (
            select(Span.span_id)
            .where(Span.project_id == job.project_id, Span.trace_id == job.trace_id)
            .limit(max_spans + 1)
            .subquery()
        )
        count = int(await session.scalar(select(func.count()).select_from(capped)) or 0)
        p = FunctionSpanPack
        packed = select(func.coalesce(func.sum(p.n), 0)).where(
            p.project_id == job.project_id, p.trace_id == job.trace_id
        )
        count += int(await session.scalar(packed) or 0)
    if count <= max_spans:
        return ""
    return (
        f"trace {job.trace_id} has more than {max_spans} spans, over the analysis budget "
        f"(PYSTRUMENT_ANALYSIS_MAX_SPANS); not analysed"
    )


async def run_analysis(db: Database, config: AIConfig, job: Job) -> Outcome:
    """Run one job; AI failures fall back to the builtin result with the error recorded."""
    ai = config.service(job.ai_service)
    over = await over_budget(db, job, config.worker.max_spans)
    if over:
        return Outcome(status="failed", error=over)
    trace, baseline = None, None
    logs: list[TraceLog] = []
    for attempt in range(LOAD_ATTEMPTS):
        # spans being moved between partitions by maintenance can be invisible for a moment: look again
        if attempt:
            await asyncio.sleep(LOAD_RETRY_SECONDS)
        async with db.session() as session:
            trace = await load_trace(session, job.project_id, job.trace_id)
            if trace is not None:
                if ai is not None:
                    baseline = await load_baseline(session, trace)
                    logs = await trace_logs(session, job.project_id, job.trace_id, limit=LOG_LIMIT)
                break
    if trace is None:
        return Outcome(status="failed", error=f"trace {job.trace_id} has no spans in this project")
    analysis = run_rules(trace)
    rules = builtin.analyze(trace, job.language, analysis)
    if ai is None:
        error = ""
        if job.ai_service not in config.service_names():
            error = f"service {job.ai_service!r} is no longer configured; used builtin analysis instead"
            rules["fallback"] = True
        return Outcome("completed", rules["performance_score"], rules, error=error, provider_used=BUILTIN)
    request = build_request(
        ai,
        analysis_id=job.id,
        analysis_type=job.analysis_type,
        language=job.language,
        template=config.template_for(job.analysis_type),
        summary=build_summary(trace, analysis.all, baseline, logs),
    )
    try:
        output = await make_provider(ai).analyze(request)
    except ProviderError as exc:
        logger.warning("analysis %s: %s; falling back to builtin", job.id, exc)
        note = FALLBACK_NOTE.get(job.language, FALLBACK_NOTE["en"]).format(service=ai.name, error=exc)
        rules["summary"] = " ".join(x for x in (note, rules.get("summary", "")) if x)
        rules["fallback"] = True
        return Outcome("completed", rules["performance_score"], rules, error=str(exc), provider_used=BUILTIN)
    result = enrich(output, trace)
    result["builtin_score"] = rules["performance_score"]
    return Outcome("completed", round(output.performance_score, 1), result, provider_used=ai.name)
