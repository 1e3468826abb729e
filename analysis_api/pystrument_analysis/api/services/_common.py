"""Small helpers shared by the services: UTC normalisation and paging."""

from __future__ import annotations

from datetime import UTC, datetime

from pystrument_collector.db.models import Project
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pystrument_analysis.api.errors import NotFound


def utc(value: datetime) -> datetime:
    """The same instant in UTC, so it serialises with ``Z``; naive values are taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def utc_seconds(value: datetime) -> datetime:
    """UTC, truncated to whole seconds, as the seed writes project times (``2024-08-24T10:00:00Z``)."""
    return utc(value).replace(microsecond=0)


MAX_PAGE = 1_000_000  # deeper than this, page with a cursor (records) or narrower filters


def offset(page: int, size: int) -> int:
    return (page - 1) * size


async def project_by_key(session: AsyncSession, project_key: str) -> Project:
    """The project with this key, or ``NotFound`` (404, code 40401)."""
    project = await session.scalar(select(Project).where(Project.project_key == project_key))
    if project is None:
        raise NotFound(f"project not found: {project_key!r}")
    return project
