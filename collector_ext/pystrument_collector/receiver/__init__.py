"""OTLP/HTTP receiver: ``POST /v1/traces`` (protobuf and JSON, gzip/deflate), ``GET /v1/stats`` and the
seed's legacy ``POST /api/v1/performance/collect``.

Responses follow the OTLP/HTTP spec: 200 with an ``ExportTraceServiceResponse`` (``partial_success`` when some
spans were refused), 400/401/413 with a ``google.rpc.Status`` body, 415 for other content types, 503 with
``Retry-After`` when the database is unavailable. All bodies use the request's content type.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.types import ControllerRouterHandler

from pystrument_collector.db import Database
from pystrument_collector.ingest import IngestError, Ingestor, JsonTraces, PayloadTooLarge, ProtoTraces, Traces
from pystrument_collector.receiver._body import (
    JSON_WEIGHT,
    PROTOBUF_WEIGHT,
    MemoryBudget,
    Reservation,
    max_body_bytes,
    max_inflight_bytes,
    read_body,
)
from pystrument_collector.receiver._legacy import legacy_handler
from pystrument_collector.receiver._otlp_http import (
    JSON,
    PROTOBUF_TYPES,
    error_response,
    export_response,
    wire_format,
)
from pystrument_collector.receiver._stats import IngestStats

logger = logging.getLogger(__name__)

PROJECT_KEY_HEADER = "x-project-key"
ENV_MAX_CONCURRENT = "PYSTRUMENT_MAX_CONCURRENT_EXPORTS"
DEFAULT_MAX_CONCURRENT = 64
OVERLOAD_RETRY_AFTER_SECONDS = 2


def max_concurrent_exports() -> int:
    """Exports handled at once before answering 503 (``PYSTRUMENT_MAX_CONCURRENT_EXPORTS``, default 64)."""
    text = os.environ.get(ENV_MAX_CONCURRENT, "").strip()
    if not text:
        return DEFAULT_MAX_CONCURRENT
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{ENV_MAX_CONCURRENT}={text!r} must be a positive integer, e.g. 64")
    return int(text)


def receiver_handlers(ingestor: Ingestor | None = None) -> list[ControllerRouterHandler]:
    """The receiver's route handlers; each call makes fresh per-app state (key cache, counters).

    Pass the app's ``Ingestor`` to close its database connections at shutdown (``await ingestor.close()``).
    """
    ingestor = ingestor or Ingestor()
    stats = IngestStats()
    limit = max_body_bytes()
    budget = MemoryBudget(max_inflight_bytes(limit))
    max_in_flight = max_concurrent_exports()
    in_flight = [0]

    @post(
        "/v1/traces",
        operation_id="otlp_export_traces",
        summary="OTLP/HTTP trace export (protobuf or JSON)",
        tags=["ingest"],
        request_max_body_size=None,
        status_code=200,
    )
    async def export_traces(request: Request[Any, Any, Any], db: NamedDependency[Database]) -> Response[bytes]:
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        fmt = wire_format(content_type)
        if fmt is None:
            stats.request(415)
            stats.drop("unsupported_media_type")
            return error_response(
                JSON, 415, f"unsupported Content-Type {content_type!r}; use application/x-protobuf or application/json"
            )
        if in_flight[0] >= max_in_flight:
            stats.request(503)
            stats.drop("overloaded")
            return error_response(fmt, 503, "receiver overloaded, retry later", OVERLOAD_RETRY_AFTER_SECONDS)
        traces: Traces | None = None
        in_flight[0] += 1
        hold = Reservation(budget, PROTOBUF_WEIGHT if fmt in PROTOBUF_TYPES else JSON_WEIGHT)
        try:
            body = await read_body(request, limit, hold)
            traces = ProtoTraces(body) if fmt in PROTOBUF_TYPES else JsonTraces(body)
            header_key = request.headers.get(PROJECT_KEY_HEADER, "").strip() or None
            result = await ingestor.store(db, traces, header_key, len(body))
        except IngestError as exc:
            stats.request(exc.status)
            stats.drop(exc.reason, traces.span_count() if traces is not None else 0)
            if not isinstance(exc, PayloadTooLarge):
                logger.info("OTLP export refused (%d): %s", exc.status, exc.message)
            return error_response(fmt, exc.status, exc.message, retry_after=getattr(exc, "retry_after", None))
        finally:
            hold.release()
            in_flight[0] -= 1
        stats.request(200)
        stats.accepted(result.inserted, result.duplicates, result.records)
        stats.reject(result.reject_reasons)
        return export_response(fmt, result.rejected, result.error_message)

    @get("/v1/stats", operation_id="ingest_stats", summary="Ingest counters of this server process", tags=["ingest"])
    async def ingest_stats() -> dict[str, Any]:
        return {
            **stats.snapshot(),
            "memory": {"inflight_bytes": budget.used, "peak_inflight_bytes": budget.peak, "limit": budget.limit},
        }

    return [export_traces, ingest_stats, legacy_handler(ingestor, stats, limit, budget)]


__all__ = ["PROJECT_KEY_HEADER", "max_concurrent_exports", "receiver_handlers"]
