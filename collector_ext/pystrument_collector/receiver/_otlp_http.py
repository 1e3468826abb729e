"""OTLP/HTTP wire details: content types, ``Export*ServiceResponse`` and ``google.rpc.Status`` bodies."""

from __future__ import annotations

from google.rpc.status_pb2 import Status
from litestar import Response

from pystrument_collector.ingest import encode_json
from pystrument_collector.receiver._pipeline import TRACES, Signal

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


def export_response(fmt: str, rejected: int, message: str, signal: Signal = TRACES) -> Response[bytes]:
    """200 with an empty response, or ``partial_success`` when items were refused."""
    if fmt == JSON:
        return Response(encode_json(signal.response_json(rejected, message)).encode(), media_type=JSON, status_code=200)
    return Response(signal.response_bytes(rejected, message), media_type=PROTOBUF, status_code=200)


def error_response(
    fmt: str, status: int, message: str, retry_after: int | None = None, *, close: bool = True
) -> Response[bytes]:
    """A ``google.rpc.Status`` body in the request's content type.

    ``close`` (the default): the request's body may not have been read to its end (refused on its headers, or
    past the size limit), so the connection cannot carry another request: say ``Connection: close`` (the
    server then closes it) rather than leave the client's next request on it hanging.
    """
    code = _RPC_CODES.get(status, 2)
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    if close:
        headers["Connection"] = "close"
    if fmt == JSON:
        body = encode_json({"code": code, "message": message}).encode()
    else:
        body = Status(code=code, message=message).SerializeToString()
    return Response(body, media_type=fmt, status_code=status, headers=headers or None)
