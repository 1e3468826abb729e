"""The one place that maps errors to an HTTP status and the seed envelope ``{code, msg, data}``.

Error codes (documented in docs/api.md):

| code  | HTTP | meaning |
|-------|------|---------|
| 0     | 200  | success |
| 40001 | 400  | invalid request (body, query or path parameter) |
| 40002 | 400  | the Host header is not in PYSTRUMENT_ALLOWED_HOSTS |
| 40101 | 401  | missing or unknown project key / API token |
| 40301 | 403  | cross-site request refused (Origin is not this server) |
| 40401 | 404  | resource not found |
| 40501 | 405  | method not allowed |
| 40901 | 409  | conflict |
| 41301 | 413  | request body too large |
| 41501 | 415  | unsupported Content-Type (the API takes application/json) |
| 42901 | 429  | too many wrong API tokens from this address; see Retry-After |
| 50001 | 500  | internal error |
| 50301 | 503  | database unavailable, retry later |
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.types import ExceptionHandlersMap

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """A domain error with its envelope code and HTTP status."""

    code = 50001
    status = 500

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.msg = msg


class BadRequest(ApiError):
    code, status = 40001, 400


class Unauthorized(ApiError):
    code, status = 40101, 401


class NotFound(ApiError):
    code, status = 40401, 404


class Conflict(ApiError):
    code, status = 40901, 409


class TooManyRequests(ApiError):
    code, status = 42901, 429

    def __init__(self, msg: str, retry_after: int) -> None:
        super().__init__(msg)
        self.retry_after = retry_after


def envelope(data: Any, msg: str = "success", code: int = 0) -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": data}


def _error_response(
    code: int, status: int, msg: str, headers: dict[str, str] | None = None
) -> Response[dict[str, Any]]:
    return Response(envelope(None, msg=msg, code=code), status_code=status, headers=headers)


def _api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[dict[str, Any]]:
    retry_after = getattr(exc, "retry_after", None)
    return _error_response(exc.code, exc.status, exc.msg, {"Retry-After": str(retry_after)} if retry_after else None)


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    detail = exc.detail
    extra = exc.extra
    if isinstance(extra, list) and extra:
        parts = []
        for item in extra:
            if isinstance(item, dict):
                key = item.get("key") or item.get("source") or ""
                parts.append(f"{key}: {item.get('message', '')}".strip(": "))
        if parts:
            detail = f"{detail}: " + "; ".join(parts)
    return _error_response(BadRequest.code, 400, str(detail))


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if not request.url.path.startswith("/api/"):
        return Response({"status_code": exc.status_code, "detail": exc.detail}, status_code=exc.status_code)
    code = {400: 40001, 401: 40101, 404: 40401, 405: 40501, 409: 40901, 413: 41301, 415: 41501, 503: 50301}.get(
        exc.status_code, exc.status_code * 100 + 1
    )
    return _error_response(code, exc.status_code, str(exc.detail), dict(exc.headers or {}) or None)


def _too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[Any]:
    """A body nested deeper than the decoder's recursion limit: the client's error, not the server's."""
    msg = "the request body is nested too deeply to decode"
    if request.url.path.startswith("/v1/"):
        return Response({"code": 3, "message": msg}, status_code=400)  # google.rpc.Status, INVALID_ARGUMENT
    return _error_response(BadRequest.code, 400, msg)


def _internal(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    if request.url.path.startswith("/v1/"):  # the OTLP receiver answers in google.rpc.Status, even here
        return Response({"code": 13, "message": "internal error"}, status_code=500)
    return _error_response(50001, 500, "internal error")


def exception_handlers() -> ExceptionHandlersMap:
    return {
        ApiError: _api_error,
        ValidationException: _validation,
        NotFoundException: _http,
        HTTPException: _http,
        RecursionError: _too_deep,
        Exception: _internal,
    }
