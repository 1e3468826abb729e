"""Ingest orchestration: decoded request → project resolution → mapping → write."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from pystrument_collector.ingest._batch import Batch
from pystrument_collector.ingest._errors import ProjectInactive, Unavailable, UnknownProject
from pystrument_collector.ingest._writer import IngestResult, Writer, is_unavailable
from pystrument_collector.projects import ProjectKeys

if TYPE_CHECKING:
    from pystrument_collector.db import Database

# Mapping a large request runs in a worker thread so the event loop keeps answering meanwhile.
THREAD_THRESHOLD_BYTES = 512 * 1024
# Spans mapped and written at a time: a request's memory is its body plus one chunk of rows.
CHUNK_SPANS = 2048


class Traces(Protocol):
    """A decoded export request in any wire format."""

    def resource_keys(self) -> list[str | None]: ...

    def span_count(self) -> int: ...

    def batches(self, project_ids: list[int], size: int) -> Iterator[Batch]: ...


class Ingestor:
    """Per-app ingest state: the project-key cache and the writer."""

    def __init__(self, writer: Writer | None = None) -> None:
        self.projects = ProjectKeys()
        self.writer = writer or Writer()

    async def close(self) -> None:
        """Close the writer's connections (the app's shutdown)."""
        await self.writer.close()

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
        if not traces.span_count():
            return IngestResult()
        try:
            return await self.writer.write(
                db, lambda: traces.batches(ids, CHUNK_SPANS), threaded=body_size >= THREAD_THRESHOLD_BYTES
            )
        except UnknownProject:
            self.projects.forget(ids)
            raise
