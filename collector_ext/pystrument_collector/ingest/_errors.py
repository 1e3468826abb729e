"""Ingest errors the receiver turns into HTTP statuses."""

from __future__ import annotations


class IngestError(Exception):
    """Base: a request that cannot be stored; ``status`` is the HTTP status to answer with."""

    status = 400
    reason = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PayloadError(IngestError):
    """The body cannot be decoded (bad protobuf/JSON/compression): 400."""

    status, reason = 400, "decode_error"


class PayloadTooLarge(IngestError):
    """The body, compressed or decompressed, exceeds the configured bound: 413."""

    status, reason = 413, "too_large"


class UnknownProject(IngestError):
    """Missing or unknown project key: 401, nothing stored."""

    status, reason = 401, "unauthorized"


class ProjectInactive(IngestError):
    """The project is paused or archived: 403, nothing stored (exporters do not retry 403)."""

    status, reason = 403, "project_inactive"


class Unavailable(IngestError):
    """The database is unreachable or overloaded: 503 with Retry-After."""

    status, reason = 503, "database_unavailable"

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Overloaded(Unavailable):
    """The receiver is at a bound (memory budget, write connections): 503 with Retry-After."""

    reason = "overloaded"
