"""One export, whatever the transport: admission, body bounds, decode, authorise, map, write, counters.

The OTLP/HTTP routes and the OTLP/gRPC services both run :meth:`ExportPipeline.export`, so limits, idempotence,
scrubbing and the counters are the same on both; only how the body arrives and how errors are spelled differ.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from pystrument_collector.ingest import (
    IngestError,
    Ingestor,
    IngestResult,
    JsonLogs,
    JsonTraces,
    Overloaded,
    PayloadTooLarge,
    ProjectInactive,
    ProtoLogs,
    ProtoTraces,
    Traces,
    Unavailable,
    UnknownProject,
    check_metrics,
)
from pystrument_collector.receiver._body import (
    JSON_WEIGHT,
    PROTOBUF_WEIGHT,
    TRIM_AFTER_BYTES,
    MemoryBudget,
    Reservation,
    give_back_memory,
)
from pystrument_collector.receiver._stats import IngestStats

if TYPE_CHECKING:
    from pystrument_collector.db import Database

logger = logging.getLogger(__name__)

OVERLOAD_RETRY_AFTER_SECONDS = 2


@dataclass(frozen=True)
class Signal:
    """An OTLP signal: its decoders (None: checked, not stored) and its response's partial-success fields."""

    name: str
    proto: Callable[[bytes], Traces] | None
    json: Callable[[bytes], Traces] | None
    response: type
    rejected_field: str  # in the response's partial_success, snake_case (JSON: lowerCamelCase)

    def response_bytes(self, rejected: int, message: str) -> bytes:
        """The serialized ``Export*ServiceResponse``, with ``partial_success`` when items were refused."""
        msg = self.response()
        if rejected or message:  # rejected 0 with a message: a warning, as the OTLP spec allows
            msg.partial_success.error_message = message
            setattr(msg.partial_success, self.rejected_field, rejected)
        return bytes(msg.SerializeToString())

    def response_json(self, rejected: int, message: str) -> dict[str, object]:
        if not rejected and not message:
            return {}
        head, *rest = self.rejected_field.split("_")
        field = head + "".join(w.title() for w in rest)
        return {"partialSuccess": {field: str(rejected), "errorMessage": message}}


TRACES = Signal("traces", ProtoTraces, JsonTraces, ExportTraceServiceResponse, "rejected_spans")
LOGS = Signal("logs", ProtoLogs, JsonLogs, ExportLogsServiceResponse, "rejected_log_records")
METRICS = Signal("metrics", None, None, ExportMetricsServiceResponse, "rejected_data_points")

BodyReader = Callable[[Reservation], Awaitable[bytes]]


class ExportPipeline:
    """Per-app receiver state shared by every transport: the ingestor, counters, memory budget, exports in flight."""

    def __init__(
        self, ingestor: Ingestor, stats: IngestStats, limit: int, budget: MemoryBudget, max_in_flight: int
    ) -> None:
        self.ingestor = ingestor
        self.stats = stats
        self.limit = limit
        self.budget = budget
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    async def export(
        self,
        db: Database,
        signal: Signal,
        protobuf: bool,
        read: BodyReader,
        header_key: str | None,
        transport: str = "http",
    ) -> IngestResult:
        """Store one export request; an ``IngestError`` (already counted) says why nothing was stored."""
        stats = self.stats
        if header_key:  # checked before a slot is taken and the body read: a bogus key costs no slot time
            try:
                await self.ingestor.project_ids(db, header_key, [None])
            except (UnknownProject, ProjectInactive) as exc:
                stats.request(exc.status, transport)
                stats.drop(exc.reason, 0, signal.name)
                raise
            except Unavailable:
                pass  # the database: the export runs on and is refused (and counted, spans too) as before
        # Without the header the key is in the body: such exports get half the slots, so a crowd of slow keyless
        # bodies never shuts out the exporters that say who they are.
        if self.in_flight >= (self.max_in_flight if header_key else max(1, self.max_in_flight // 2)):
            stats.request(503, transport)
            stats.drop("overloaded", 0, signal.name)
            raise Overloaded("receiver overloaded, retry later", OVERLOAD_RETRY_AFTER_SECONDS)
        decoded: Traces | None = None
        body = b""
        self.in_flight += 1
        hold = Reservation(self.budget, PROTOBUF_WEIGHT if protobuf else JSON_WEIGHT)
        try:
            body = await read(hold)
            decode = signal.proto if protobuf else signal.json
            if decode is None:
                check_metrics(body, protobuf)
                result = IngestResult()
            else:
                decoded = decode(body)
                result = await self.ingestor.store(db, decoded, header_key, len(body))
        except IngestError as exc:
            stats.request(exc.status, transport)
            stats.drop(exc.reason, decoded.span_count() if decoded is not None else 0, signal.name)
            if not isinstance(exc, PayloadTooLarge):
                logger.info("OTLP %s export refused (%d): %s", signal.name, exc.status, exc.message)
            raise
        finally:
            hold.release()
            self.in_flight -= 1
            if hold.bytes >= TRIM_AFTER_BYTES:
                body, decoded = b"", None
                await asyncio.to_thread(give_back_memory, hold.bytes)
        stats.request(200, transport)
        stats.accepted(result.inserted, result.duplicates, result.records, signal.name)
        stats.reject(result.reject_reasons, signal.name)
        return result


__all__ = ["LOGS", "METRICS", "OVERLOAD_RETRY_AFTER_SECONDS", "TRACES", "ExportPipeline", "Signal"]
