"""Project create, list, read, update, delete and key rotation."""

from __future__ import annotations

from datetime import datetime

from msgspec import UNSET
from pystrument_collector.db.models import PerformanceRecord, Project
from pystrument_collector.keys import new_project_key
from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pystrument_analysis.api import schemas
from pystrument_analysis.api.errors import BadRequest
from pystrument_analysis.api.hygiene import no_nul
from pystrument_analysis.api.services._common import offset, project_by_key, utc_seconds

KNOWN_FRAMEWORKS = ("flask", "django", "fastapi", "other")


def _clean_name(name: str) -> str:
    cleaned = no_nul(name, "name").strip()
    if not cleaned:
        raise BadRequest("name must not be empty or blank")
    return cleaned


def _clean_framework(framework: str) -> str:
    cleaned = no_nul(framework, "framework").strip()
    return cleaned.lower() if cleaned.lower() in KNOWN_FRAMEWORKS else cleaned


async def _newest_records(session: AsyncSession, project_ids: list[int]) -> dict[int, datetime]:
    """Each project's newest record time. Not a subquery correlated with ``projects``: on Citus that is a reference
    table, and a distributed table cannot be correlated with it; here each project's rows are read by its key."""
    if not project_ids:
        return {}
    r = PerformanceRecord
    rows = await session.execute(
        select(r.project_id, func.max(r.timestamp)).where(r.project_id.in_(project_ids)).group_by(r.project_id)
    )
    return {int(pid): newest for pid, newest in rows.all() if newest is not None}


def _last_activity(stored: datetime | None, newest_record: datetime | None) -> datetime | None:
    """Newest of the stored ``last_activity`` and the newest record, so it is right whoever updates it."""
    known = [t for t in (stored, newest_record) if t is not None]
    return max(known) if known else None


def _opt_seconds(value: datetime | None) -> datetime | None:
    return None if value is None else utc_seconds(value)


async def create(session: AsyncSession, body: schemas.ProjectCreate) -> schemas.ProjectCreated:
    project = Project(
        project_key=new_project_key(),
        name=_clean_name(body.name),
        description=no_nul(body.description, "description").strip(),
        framework=_clean_framework(body.framework),
        status="active",
    )
    session.add(project)
    await session.flush()
    await session.refresh(project)
    return schemas.ProjectCreated(
        project_key=project.project_key,
        name=project.name,
        status=project.status,
        created_at=utc_seconds(project.created_at),
    )


async def list_page(
    session: AsyncSession, page: int, size: int, q: str | None = None, status: str | None = None
) -> schemas.ProjectPage:
    conditions: list[ColumnElement[bool]] = []
    if q:
        escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(Project.name.ilike(f"%{escaped}%", escape="\\"))
    if status:
        conditions.append(Project.status == status)
    total = await session.scalar(select(func.count()).select_from(Project).where(*conditions)) or 0
    page_rows = (
        await session.scalars(
            select(Project)
            .where(*conditions)
            .order_by(Project.created_at.desc(), Project.id.desc())
            .offset(offset(page, size))
            .limit(size)
        )
    ).all()
    newest = await _newest_records(session, [p.id for p in page_rows])
    projects = [
        schemas.ProjectItem(
            project_key=p.project_key,
            name=p.name,
            framework=p.framework,
            status=p.status,
            last_activity=_opt_seconds(activity),
            description=p.description,
            created_at=utc_seconds(p.created_at),
            id=p.id,
        )
        for p in page_rows
        for activity in [_last_activity(p.last_activity, newest.get(p.id))]
    ]
    return schemas.ProjectPage(projects=projects, total=total, page=page, size=size)


async def detail(session: AsyncSession, project_key: str) -> schemas.ProjectDetail:
    project = await project_by_key(session, project_key)
    return await _detail_of(session, project)


async def _detail_of(session: AsyncSession, project: Project) -> schemas.ProjectDetail:
    r = PerformanceRecord
    row = (await session.execute(select(func.count(), func.max(r.timestamp)).where(r.project_id == project.id))).one()
    return schemas.ProjectDetail(
        project_key=project.project_key,
        name=project.name,
        description=project.description,
        framework=project.framework,
        status=project.status,
        created_at=utc_seconds(project.created_at),
        updated_at=utc_seconds(project.updated_at),
        last_activity=_opt_seconds(_last_activity(project.last_activity, row[1])),
        record_count=int(row[0]),
        id=project.id,
    )


async def update(
    session: AsyncSession, project_key: str, body: schemas.ProjectPatch | schemas.ProjectReplace
) -> schemas.ProjectDetail:
    """Apply a PATCH (only given fields) or a PUT (every field)."""
    project = await project_by_key(session, project_key)
    if body.name is not UNSET:
        project.name = _clean_name(body.name)
    if body.description is not UNSET:
        project.description = no_nul(body.description, "description").strip()
    if body.framework is not UNSET:
        project.framework = _clean_framework(body.framework)
    if body.status is not UNSET:
        project.status = body.status
    project.updated_at = func.now()
    await session.flush()
    await session.refresh(project)
    return await _detail_of(session, project)


async def remove(session: AsyncSession, project_key: str) -> schemas.ProjectDeleted:
    """Delete the project; its spans, records and analyses go with it (``ON DELETE CASCADE``)."""
    project = await project_by_key(session, project_key)
    await session.execute(delete(Project).where(Project.id == project.id))
    return schemas.ProjectDeleted(project_key=project_key, deleted=True)


async def rotate_key(session: AsyncSession, project_key: str) -> schemas.ProjectDetail:
    """Give the project a new key; the old one stops working at once, the data stays."""
    project = await project_by_key(session, project_key)
    project.project_key = new_project_key()
    project.updated_at = func.now()
    await session.flush()
    await session.refresh(project)
    return await _detail_of(session, project)
