"""``POST /api/v1/performance/collect``: the seed's JSON report, stored like OTLP spans, answered in the envelope."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.types import ControllerRouterHandler

from pystrument_collector.db import Database
from pystrument_collector.ingest import Batch, IngestError, Ingestor
from pystrument_collector.ingest._legacy import LegacyReport
from pystrument_collector.receiver._body import JSON_WEIGHT, MemoryBudget, Reservation, read_body
from pystrument_collector.receiver._stats import IngestStats

logger = logging.getLogger(__name__)

# The seed envelope's error codes (same table as the REST API's).
_ENVELOPE_CODES = {400: 40001, 401: 40101, 403: 40301, 413: 41301, 503: 50301}


def _envelope(status: int, msg: str, data: Any = None, headers: dict[str, str] | None = None) -> Response[Any]:
    """The seed's envelope; an error answered before the body was read to its end also closes the connection."""
    code = 0 if status == 200 else _ENVELOPE_CODES.get(status, status * 100 + 1)
    return Response({"code": code, "msg": msg, "data": data}, status_code=status, headers=headers)


def legacy_handler(
    ingestor: Ingestor, stats: IngestStats, limit: int, budget: MemoryBudget | None = None
) -> ControllerRouterHandler:
    """The collect endpoint, sharing the OTLP receiver's key cache, writer and counters."""

    @post(
        "/api/v1/performance/collect",
        operation_id="collect_performance",
        summary="Report one request's performance (seed 5.2.1 legacy JSON)",
        tags=["ingest"],
        request_max_body_size=None,
        status_code=200,
    )
    async def collect(request: Request[Any, Any, Any], db: NamedDependency[Database]) -> Response[Any]:
        report: LegacyReport | None = None
        hold = Reservation(budget, JSON_WEIGHT)
        complete = False
        try:
            key = request.headers.get("x-project-key", "").strip() or None
            [project_id] = await ingestor.project_ids(db, key, [None])  # before the body: a bogus key costs nothing
            body = await read_body(request, limit, hold)
            complete = True
            report = LegacyReport(body)
            batch = Batch()
            report.fill(batch, project_id)
            result = await ingestor.writer.write(db, lambda: [batch], skip_if_recorded=True)
        except IngestError as exc:
            stats.request(exc.status)
            stats.drop(exc.reason, 0)
            retry = getattr(exc, "retry_after", None)
            headers = {"Retry-After": str(retry)} if retry else {}
            if not complete:
                headers["Connection"] = "close"
            return _envelope(exc.status, exc.message, headers=headers or None)
        finally:
            hold.release()
        stats.request(200)
        stats.accepted(result.inserted, result.duplicates, result.records)
        recorded_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return _envelope(200, "success", {"trace_id": report.trace_id, "recorded_at": recorded_at})

    return collect
