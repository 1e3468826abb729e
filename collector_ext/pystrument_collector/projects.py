"""Project lookup by key for ingest, with a short positive cache (a new project works at once)."""

from __future__ import annotations

import asyncio
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
        # Keys being looked up now: concurrent requests for them wait for that one query (no stampede when an
        # entry expires under load).
        self._inflight: dict[str, asyncio.Future[ProjectRef | None]] = {}

    async def resolve(self, db: Database, keys: Iterable[str]) -> dict[str, ProjectRef]:
        """Map each known key to its project; unknown keys are absent from the result."""
        now = time.monotonic()
        found: dict[str, ProjectRef] = {}
        missing: list[str] = []
        waiting: list[tuple[str, asyncio.Future[ProjectRef | None]]] = []
        for key in set(keys):
            hit = self._cache.get(key)
            if hit is not None and hit[1] > now:
                found[key] = hit[0]
            elif key in self._inflight:
                waiting.append((key, self._inflight[key]))
            else:
                missing.append(key)
        if missing:
            found.update(await self._query(db, missing, now))
        for key, future in waiting:
            ref = await future
            if ref is not None:
                found[key] = ref
        return found

    async def _query(self, db: Database, keys: list[str], now: float) -> dict[str, ProjectRef]:
        loop = asyncio.get_running_loop()
        futures = {key: loop.create_future() for key in keys}
        self._inflight.update(futures)
        found: dict[str, ProjectRef] = {}
        try:
            query = select(Project.project_key, Project.id, Project.status).where(Project.project_key.in_(keys))
            async with db.session() as session:
                rows = (await session.execute(query)).all()
            if len(self._cache) > MAX_CACHED:
                self._cache.clear()
            for key, project_id, status in rows:
                ref = ProjectRef(project_id, status)
                found[key] = ref
                if ref.accepts_spans:
                    self._cache[key] = (ref, now + self.ttl)
        except BaseException as exc:
            for future in futures.values():
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
                    future.exception()  # retrieved here; waiters get it from ``await``
            raise
        else:
            for key, future in futures.items():
                future.set_result(found.get(key))
        finally:
            for key, future in futures.items():
                if self._inflight.get(key) is future:
                    del self._inflight[key]
        return found

    def forget(self, project_ids: Iterable[int]) -> None:
        """Drop cached keys of these projects (e.g. after a write found one deleted)."""
        ids = set(project_ids)
        for key in [k for k, (ref, _) in self._cache.items() if ref.id in ids]:
            del self._cache[key]
