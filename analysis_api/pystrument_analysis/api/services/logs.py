"""A trace's log lines for the record detail (read through the collector's :func:`trace_logs`)."""

from __future__ import annotations

from pystrument_collector.logs import trace_logs
from sqlalchemy.ext.asyncio import AsyncSession

from pystrument_analysis.api import schemas
from pystrument_analysis.api.services._common import utc


async def log_items(session: AsyncSession, project_id: int, trace_id: str) -> list[schemas.LogItem]:
    """The trace's logs, oldest first, as the API returns them."""
    return [
        schemas.LogItem(
            timestamp=utc(log.timestamp),
            span_id=log.span_id,
            severity_text=log.severity_text,
            severity_number=log.severity_number,
            body=log.body,
            attributes=log.attributes,
            scope_name=log.scope_name,
        )
        for log in await trace_logs(session, project_id, trace_id)
    ]
