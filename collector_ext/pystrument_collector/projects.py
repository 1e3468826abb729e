"""Project lookup by key for ingest, with a short positive cache (a new project works at once)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from pystrument_collector.db.models import Project

if TYPE_CHECKING:
    from pystrument_collector.db import Database

POSITIVE_TTL_SECONDS = 10.0
MAX_CACHED = 10_000
# Projects in these states refuse ingest (403); spans sent meanwhile are not stored.
INACTIVE_STATUSES = frozenset({"paused", "archived"})


@dataclass(frozen=True)
class ProjectRef:
    """What ingest needs of a project."""

    id: int
    status: str

    @property
    def accepts_spans(self) -> bool:
        return self.status not in INACTIVE_STATUSES


class ProjectKeys:
    """Resolve project keys; active projects are cached for ``ttl`` seconds, anything else asks the database.

    So a new or resumed project accepts spans at once; pausing, deleting or rotating a key takes effect
    within ``ttl`` seconds.
    """

    def __init__(self, ttl: float = POSITIVE_TTL_SECONDS) -> None:
        self.ttl = ttl
        self._cache: dict[str, tuple[ProjectRef, float]] = {}

    async def resolve(self, db: Database, keys: Iterable[str]) -> dict[str, ProjectRef]:
        """Map each known key to its project; unknown keys are absent from the result."""
        now = time.monotonic()
        found: dict[str, ProjectRef] = {}
        missing: list[str] = []
        for key in set(keys):
            hit = self._cache.get(key)
            if hit is not None and hit[1] > now:
                found[key] = hit[0]
            else:
                missing.append(key)
        if missing:
            query = select(Project.project_key, Project.id, Project.status).where(Project.project_key.in_(missing))
            async with db.session() as session:
                rows = (await session.execute(query)).all()
            if len(self._cache) > MAX_CACHED:
                self._cache.clear()
            for key, project_id, status in rows:
                ref = ProjectRef(project_id, status)
                found[key] = ref
                if ref.accepts_spans:
                    self._cache[key] = (ref, now + self.ttl)
        return found

    def forget(self, project_ids: Iterable[int]) -> None:
        """Drop cached keys of these projects (e.g. after a write found one deleted)."""
        ids = set(project_ids)
        for key in [k for k, (ref, _) in self._cache.items() if ref.id in ids]:
            del self._cache[key]
