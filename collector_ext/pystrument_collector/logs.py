"""Reading stored log records: a trace's logs, for the record detail and as context for the analysis."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pystrument_collector.db.models import LogRecord

MAX_TRACE_LOGS = 2000  # a trace's first N log lines; a loop logging more adds nothing a reader can use


@dataclass(frozen=True)
class TraceLog:
    """One log line of a trace; ``span_id`` is the span it was written in (None: outside any span)."""

    timestamp: datetime
    span_id: str | None
    severity_text: str
    severity_number: int
    body: Any
    attributes: dict[str, Any]
    scope_name: str
    service_name: str


async def trace_logs(
    session: AsyncSession, project_id: int, trace_id: str, *, limit: int = MAX_TRACE_LOGS
) -> list[TraceLog]:
    """The log records written in ``trace_id`` for this project, oldest first (at most ``limit``).

    Attributes are scrubbed as stored; bodies are strings for ordinary log lines, any JSON value otherwise.
    """
    rows = await session.execute(
        select(
            LogRecord.timestamp,
            LogRecord.span_id,
            LogRecord.severity_text,
            LogRecord.severity_number,
            LogRecord.body,
            LogRecord.attributes,
            LogRecord.scope_name,
            LogRecord.service_name,
        )
        .where(LogRecord.project_id == project_id, LogRecord.trace_id == trace_id)
        .order_by(LogRecord.timestamp, LogRecord.log_id)
        .limit(limit)
    )
    return [TraceLog(*row) for row in rows]


__all__ = ["MAX_TRACE_LOGS", "TraceLog", "trace_logs"]
