"""OTLP/gRPC: TraceService, LogsService and MetricsService on the serve host, in the server's own event loop.

A ``grpc.aio`` server started in the app's lifespan; each call runs the same :class:`ExportPipeline` as
``POST /v1/*`` (bounds, project key, mapping, idempotent write, counters). Handlers take the raw request bytes,
so spans go through the same light wire decoder as HTTP protobuf. gRPC decompresses gzip itself. The project
key comes from the ``x-project-key`` metadata or the ``pystrument.project_key`` resource attribute.

Errors use the OTLP spec's codes: INVALID_ARGUMENT (undecodable), UNAUTHENTICATED (missing or unknown key),
PERMISSION_DENIED (paused project), RESOURCE_EXHAUSTED (too large; not retryable, so no RetryInfo),
UNAVAILABLE with a ``google.rpc.RetryInfo`` (database down, receiver overloaded). The RetryInfo travels both as
``google.rpc.retryinfo-bin`` (what the OpenTelemetry SDKs read) and inside ``grpc-status-details-bin``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.any_pb2 import Any as PbAny
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status

from pystrument_collector.ingest import IngestError
from pystrument_collector.receiver._body import Reservation
from pystrument_collector.receiver._pipeline import LOGS, METRICS, TRACES, ExportPipeline, Signal
from pystrument_collector.settings import ENV_GRPC_PORT, workers_from_env

if TYPE_CHECKING:
    from pystrument_collector.db import Database

logger = logging.getLogger(__name__)

PROJECT_KEY_METADATA = "x-project-key"
SERVICES = {
    "opentelemetry.proto.collector.trace.v1.TraceService": TRACES,
    "opentelemetry.proto.collector.logs.v1.LogsService": LOGS,
    "opentelemetry.proto.collector.metrics.v1.MetricsService": METRICS,
}
_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


def _trailers(code: grpc.StatusCode, message: str, retry_after: int | None) -> tuple[tuple[str, bytes], ...]:
    if not retry_after:
        return ()
    info = RetryInfo(retry_delay=Duration(seconds=retry_after))
    detail = PbAny()
    detail.Pack(info)
    status = Status(code=code.value[0], message=message, details=[detail])
    return (
        ("google.rpc.retryinfo-bin", info.SerializeToString()),
        ("grpc-status-details-bin", status.SerializeToString()),
    )


class GrpcReceiver:
    """The gRPC server; ``await start(host, port)`` in a running loop, ``await stop()`` at shutdown."""

    def __init__(self, pipeline: ExportPipeline, db: Database) -> None:
        self.pipeline = pipeline
        self.db = db
        self.server: Any = None

    def _handler(self, signal: Signal) -> Any:
        pipeline, db = self.pipeline, self.db

        async def export(request: bytes, context: Any) -> bytes:
            key = None
            for name, value in context.invocation_metadata() or ():
                if name == PROJECT_KEY_METADATA:
                    key = (value.decode() if isinstance(value, bytes) else value).strip() or None
                    break

            async def read(hold: Reservation) -> bytes:
                hold.take(len(request))  # already in memory: count it against the same budget as HTTP bodies
                return request

            try:
                result = await pipeline.export(db, signal, True, read, key, transport="grpc")
            except IngestError as exc:
                code = _CODES.get(exc.status, grpc.StatusCode.INTERNAL)
                retry = getattr(exc, "retry_after", None) if code == grpc.StatusCode.UNAVAILABLE else None
                await context.abort(code, exc.message, _trailers(code, exc.message, retry))
                raise  # not reached: abort raises
            return signal.response_bytes(result.rejected, result.error_message)

        return grpc.unary_unary_rpc_method_handler(export)  # no (de)serializers: raw bytes in and out

    async def start(self, host: str, port: int) -> int:
        """Bind and start; ``OSError`` naming the fix when the address is taken."""
        # A second server on the port must fail, not share its traffic; except the processes of one
        # ``serve --workers N``, which share it on purpose (the kernel spreads connections over them).
        shared = workers_from_env() > 1
        server = grpc.aio.server(
            options=[
                ("grpc.so_reuseport", 1 if shared else 0),
                ("grpc.max_receive_message_length", self.pipeline.limit),
                ("grpc.max_send_message_length", 4 * 1024 * 1024),
            ]
        )
        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(service, {"Export": self._handler(signal)})
                for service, signal in SERVICES.items()
            ]
        )
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        error: RuntimeError | None = None
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError as exc:
            bound, error = 0, exc
        if not bound:
            await server.stop(None)
            raise OSError(
                f"cannot serve OTLP/gRPC on {address}: the address is in use or not available "
                f"({error or 'bind failed'}); pass --grpc-port N (env {ENV_GRPC_PORT}) for another port, "
                "or 0 to turn gRPC off"
            )
        await server.start()
        self.server = server
        return int(bound)

    async def stop(self, grace: float = 5.0) -> None:
        """Finish calls in progress (up to ``grace`` seconds), then close the port."""
        server, self.server = self.server, None
        if server is not None:
            await server.stop(grace)


__all__ = ["GrpcReceiver"]
