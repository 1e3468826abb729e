"""OTLP receivers: ``POST /v1/traces``, ``/v1/logs`` and ``/v1/metrics`` (protobuf and JSON, gzip/deflate), the
OTLP/gRPC services on their own port (:mod:`._grpc`), ``GET /v1/stats`` and the seed's legacy
``POST /api/v1/performance/collect``.

HTTP responses follow the OTLP/HTTP spec: 200 with an ``Export*ServiceResponse`` (``partial_success`` when some
items were refused), 400/401/413 with a ``google.rpc.Status`` body, 415 for other content types, 503 with
``Retry-After`` when the database is unavailable. All bodies use the request's content type. Metrics are
checked and answered, not stored.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.types import ControllerRouterHandler

from pystrument_collector.db import Database
from pystrument_collector.ingest import IngestError, Ingestor
from pystrument_collector.receiver._body import (
    MemoryBudget,
    Reservation,
    max_body_bytes,
    max_inflight_bytes,
    read_body,
)
from pystrument_collector.receiver._grpc import GrpcReceiver
from pystrument_collector.receiver._legacy import legacy_handler
from pystrument_collector.receiver._otlp_http import (
    JSON,
    PROTOBUF_TYPES,
    error_response,
    export_response,
    wire_format,
)
from pystrument_collector.receiver._pipeline import (
    LOGS,
    METRICS,
    OVERLOAD_RETRY_AFTER_SECONDS,
    TRACES,
    ExportPipeline,
    Signal,
)
from pystrument_collector.receiver._stats import IngestStats

logger = logging.getLogger(__name__)

PROJECT_KEY_HEADER = "x-project-key"
ENV_MAX_CONCURRENT = "PYSTRUMENT_MAX_CONCURRENT_EXPORTS"
DEFAULT_MAX_CONCURRENT = 64


def max_concurrent_exports() -> int:
    """Exports handled at once before answering 503 (``PYSTRUMENT_MAX_CONCURRENT_EXPORTS``, default 64)."""
    text = os.environ.get(ENV_MAX_CONCURRENT, "").strip()
    if not text:
        return DEFAULT_MAX_CONCURRENT
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{ENV_MAX_CONCURRENT}={text!r} must be a positive integer, e.g. 64")
    return int(text)


class Receiver:
    """The receiver of one app: HTTP route handlers and the gRPC server share one :class:`ExportPipeline`
    (key cache, writer, counters, memory budget, exports in flight)."""

    def __init__(self, ingestor: Ingestor | None = None) -> None:
        self.ingestor = ingestor or Ingestor()
        limit = max_body_bytes()
        self.pipeline = ExportPipeline(
            self.ingestor, IngestStats(), limit, MemoryBudget(max_inflight_bytes(limit)), max_concurrent_exports()
        )
        self.grpc: GrpcReceiver | None = None

    def handlers(self) -> list[ControllerRouterHandler]:
        pipeline = self.pipeline
        budget = pipeline.budget
        return [
            _otlp_route(
                pipeline, TRACES, "/v1/traces", "otlp_export_traces", "OTLP/HTTP trace export (protobuf or JSON)"
            ),
            _otlp_route(pipeline, LOGS, "/v1/logs", "otlp_export_logs", "OTLP/HTTP log export (protobuf or JSON)"),
            _otlp_route(
                pipeline,
                METRICS,
                "/v1/metrics",
                "otlp_export_metrics",
                "OTLP/HTTP metrics export: answered, not stored",
            ),
            _stats_route(pipeline),
            legacy_handler(self.ingestor, pipeline.stats, pipeline.limit, budget),
        ]

    async def start_grpc(self, db: Database, host: str, port: int) -> int:
        """Serve OTLP/gRPC on ``host:port`` (0 picks a free port); returns the port bound."""
        self.grpc = GrpcReceiver(self.pipeline, db)
        return await self.grpc.start(host, port)

    async def stop_grpc(self, grace: float = 5.0) -> None:
        grpc, self.grpc = self.grpc, None
        if grpc is not None:
            await grpc.stop(grace)

    async def close(self) -> None:
        """Stop gRPC and close the writer's connections (the app's shutdown)."""
        await self.stop_grpc()
        await self.ingestor.close()


def _otlp_route(pipeline: ExportPipeline, signal: Signal, path: str, operation_id: str, summary: str) -> Any:
    @post(
        path,
        operation_id=operation_id,
        summary=summary,
        tags=["ingest"],
        request_max_body_size=None,
        status_code=200,
        name=operation_id,
    )
    async def export(request: Request[Any, Any, Any], db: NamedDependency[Database]) -> Response[bytes]:
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        fmt = wire_format(content_type)
        if fmt is None:
            pipeline.stats.request(415)
            pipeline.stats.drop("unsupported_media_type", 0, signal.name)
            return error_response(
                JSON, 415, f"unsupported Content-Type {content_type!r}; use application/x-protobuf or application/json"
            )

        async def read(hold: Reservation) -> bytes:
            return await read_body(request, pipeline.limit, hold)

        header_key = request.headers.get(PROJECT_KEY_HEADER, "").strip() or None
        try:
            result = await pipeline.export(db, signal, fmt in PROTOBUF_TYPES, read, header_key)
        except IngestError as exc:
            return error_response(fmt, exc.status, exc.message, retry_after=getattr(exc, "retry_after", None))
        return export_response(fmt, result.rejected, result.error_message, signal)

    return export


def _stats_route(pipeline: ExportPipeline) -> Any:
    @get("/v1/stats", operation_id="ingest_stats", summary="Ingest counters of this server process", tags=["ingest"])
    async def ingest_stats() -> dict[str, Any]:
        budget = pipeline.budget
        return {
            **pipeline.stats.snapshot(),
            "memory": {"inflight_bytes": budget.used, "peak_inflight_bytes": budget.peak, "limit": budget.limit},
        }

    return ingest_stats


def receiver_handlers(ingestor: Ingestor | None = None) -> list[ControllerRouterHandler]:
    """The receiver's HTTP route handlers with fresh per-app state (see :class:`Receiver` for gRPC too)."""
    return Receiver(ingestor).handlers()


__all__ = [
    "OVERLOAD_RETRY_AFTER_SECONDS",
    "PROJECT_KEY_HEADER",
    "Receiver",
    "max_concurrent_exports",
    "receiver_handlers",
]
