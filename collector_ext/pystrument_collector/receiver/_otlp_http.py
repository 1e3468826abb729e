"""OTLP/HTTP wire details: content types, ``ExportTraceServiceResponse`` and ``google.rpc.Status`` bodies."""

from __future__ import annotations

from google.rpc.status_pb2 import Status
from litestar import Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from pystrument_collector.ingest import encode_json

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
PROTOBUF_TYPES = frozenset({PROTOBUF, "application/protobuf"})

# google.rpc.Code for each HTTP status we answer with.
_RPC_CODES = {400: 3, 401: 16, 403: 7, 413: 8, 415: 3, 429: 8, 500: 13, 503: 14}


def wire_format(content_type: str) -> str | None:
    """The normalised content type, or None when it is not OTLP/HTTP's."""
    if content_type in PROTOBUF_TYPES:
        return PROTOBUF
    if content_type == JSON:
        return JSON
    return None


def export_response(fmt: str, rejected: int, message: str) -> Response[bytes]:
    """200 with an empty response, or ``partial_success`` when spans were refused."""
    if fmt == JSON:
        doc: dict[str, object] = {}
        if rejected:
            doc["partialSuccess"] = {"rejectedSpans": str(rejected), "errorMessage": message}
        return Response(encode_json(doc).encode(), media_type=JSON, status_code=200)
    msg = ExportTraceServiceResponse()
    if rejected:
        msg.partial_success.CopyFrom(ExportTracePartialSuccess(rejected_spans=rejected, error_message=message))
    return Response(msg.SerializeToString(), media_type=PROTOBUF, status_code=200)


def error_response(fmt: str, status: int, message: str, retry_after: int | None = None) -> Response[bytes]:
    """A ``google.rpc.Status`` body in the request's content type."""
    code = _RPC_CODES.get(status, 2)
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    if fmt == JSON:
        body = encode_json({"code": code, "message": message}).encode()
    else:
        body = Status(code=code, message=message).SerializeToString()
    return Response(body, media_type=fmt, status_code=status, headers=headers)
