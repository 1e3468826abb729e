"""Ingest orchestration: decoded request → project resolution → mapping → write."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import anyio.to_thread

from pystrument_collector.ingest._batch import Batch
from pystrument_collector.ingest._errors import ProjectInactive, Unavailable, UnknownProject
from pystrument_collector.ingest._writer import Writer, is_unavailable
from pystrument_collector.projects import ProjectKeys

if TYPE_CHECKING:
    from pystrument_collector.db import Database

# Mapping a large request runs in a worker thread so the event loop keeps answering meanwhile.
THREAD_THRESHOLD_BYTES = 512 * 1024


class Traces(Protocol):
    """A decoded export request in any wire format."""

    def resource_keys(self) -> list[str | None]: ...

    def span_count(self) -> int: ...

    def fill(self, batch: Batch, project_ids: list[int]) -> None: ...


@dataclass
class IngestResult:
    """What happened to one request's spans."""

    received: int
    inserted: int
    records: int
    rejected: int
    reject_reasons: dict[str, int]
    error_message: str

    @property
    def duplicates(self) -> int:
        return self.received - self.inserted


class Ingestor:
    """Per-app ingest state: the project-key cache and the writer."""

    def __init__(self) -> None:
        self.projects = ProjectKeys()
        self.writer = Writer()

    async def project_ids(self, db: Database, header_key: str | None, resource_keys: list[str | None]) -> list[int]:
        """The project id for each resource; the header key wins. ``UnknownProject`` if any is missing/unknown."""
        missing = "missing project key: send the X-Project-Key header or the resource attribute pystrument.project_key"
        if header_key:
            per_resource = [header_key] * len(resource_keys)
            keys = {header_key}
        else:
            if not resource_keys or any(k is None for k in resource_keys):
                raise UnknownProject(missing)
            per_resource = [k for k in resource_keys if k is not None]
            keys = set(per_resource)
        try:
            found = await self.projects.resolve(db, keys)
        except Exception as exc:
            if is_unavailable(exc):
                raise Unavailable("database unavailable, retry later") from exc
            raise
        unknown = keys - found.keys()
        if unknown:
            raise UnknownProject("unknown project key")
        for ref in found.values():
            if not ref.accepts_spans:
                raise ProjectInactive(f"project is {ref.status}; set it active to accept spans")
        return [found[k].id for k in per_resource]

    async def store(self, db: Database, traces: Traces, header_key: str | None, body_size: int) -> IngestResult:
        """Authenticate, map and write one export request; nothing is stored unless every resource is authorised."""
        ids = await self.project_ids(db, header_key, traces.resource_keys())
        batch = Batch()
        if body_size >= THREAD_THRESHOLD_BYTES:
            await anyio.to_thread.run_sync(traces.fill, batch, ids)
        else:
            traces.fill(batch, ids)
        try:
            inserted, records = await self.writer.write(db, batch)
        except UnknownProject:
            self.projects.forget(batch.project_ids)
            raise
        return IngestResult(
            received=len(batch),
            inserted=inserted,
            records=records,
            rejected=batch.rejected,
            reject_reasons=batch.reject_reasons,
            error_message=batch.first_error,
        )
