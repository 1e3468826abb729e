"""Rows to write: the one place that maps a decoded span to ``spans`` and ``performance_records``.

Decoders (OTLP JSON, the seed's legacy JSON) call :meth:`Batch.add_span` with plain values; the protobuf hot
path builds the same row tuples itself (``_otlp_proto``) and shares :meth:`Batch.add_record`, where every
request-record rule (HTTP fields, cpu/memory, error flag) lives. Times in rows are integer microseconds since
Postgres' epoch (2000-01-01 UTC): the writer's connections encode ``timestamptz`` from them directly, which
saves building and converting a ``datetime`` per span.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import msgspec

from pystrument_collector.ingest._redact import scrub_attributes, scrub_name, scrub_url

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z in Unix microseconds
KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
MEMORY_PREFIX = "pystrument.memory."
MAX_SERVICE = 200
MAX_METHOD = 16
MAX_SEVERITY_TEXT = 32
MAX_SCOPE = 200


_json_encoder = msgspec.json.Encoder()


def encode_json(value: Any) -> str:
    """JSON text for a JSONB column (non-finite floats become null)."""
    return _json_encoder.encode(value).decode()


def clean_text(value: str) -> str:
    """Postgres text and JSONB refuse NUL characters; drop them."""
    return value.replace("\x00", "") if "\x00" in value else value


def ns_to_datetime(ns: int) -> datetime:
    """Unix nanoseconds as an aware datetime (the epoch itself when out of range)."""
    try:
        return EPOCH + timedelta(microseconds=ns // 1000)
    except OverflowError:
        return EPOCH


def ns_to_pg(ns: int) -> int:
    """Unix nanoseconds → the row time format (microseconds since 2000-01-01 UTC)."""
    return ns // 1000 - PG_EPOCH_US


def pg_to_datetime(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us + PG_EPOCH_US)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _url_path(url: str) -> str:
    """The path of a full URL; by hand when ``urlsplit`` refuses it (a scrubbed ``[REDACTED]`` password)."""
    try:
        return urlsplit(url).path
    except ValueError:
        rest = url.split("://", 1)[-1]
        return "/" + rest.split("/", 1)[1] if "/" in rest else ""


class Batch:
    """One chunk of a request: span rows (tuples in ``SPAN_COLUMNS`` order), request records column by column,
    log rows (tuples in ``LOG_COLUMNS`` order), and rejection bookkeeping."""

    SPAN_COLUMNS = (
        "trace_id", "span_id", "project_id", "parent_span_id", "name", "kind", "start_time", "duration",
        "status_code", "status_message", "service_name", "synthetic", "attributes", "events",
    )  # fmt: skip
    RECORD_COLUMNS = (
        "trace_id", "span_id", "project_id", "service_name", "method", "route", "path", "status_code",
        "duration", "cpu_time", "memory", "is_error", "timestamp",
    )  # fmt: skip

    LOG_COLUMNS = (
        "project_id", "timestamp", "log_id", "trace_id", "span_id", "severity_number", "severity_text", "body",
        "attributes", "service_name", "scope_name",
    )  # fmt: skip

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.log_rows: list[tuple[Any, ...]] = []
        self.records: list[list[Any]] = [[] for _ in self.RECORD_COLUMNS]
        self.rejected = 0
        self.reject_reasons: dict[str, int] = {}
        self.first_error = ""
        self.project_ids: set[int] = set()

    def __len__(self) -> int:
        return len(self.rows) + len(self.log_rows)

    @property
    def record_count(self) -> int:
        return len(self.records[0])

    def log_columns(self) -> list[list[Any]]:
        """The log rows transposed, for ``unnest`` inserts."""
        if not self.log_rows:
            return [[] for _ in self.LOG_COLUMNS]
        return [list(column) for column in zip(*self.log_rows, strict=True)]

    def warn(self, message: str) -> None:
        """Something stored in part (e.g. attributes over the cap): said in the partial success, nothing rejected."""
        if not self.first_error:
            self.first_error = message

    def reject(self, reason: str, message: str) -> None:
        self.rejected += 1
        self.reject_reasons[reason] = self.reject_reasons.get(reason, 0) + 1
        if not self.first_error:
            self.first_error = message

    def add_span(
        self,
        *,
        project_id: int,
        service_name: str,
        trace_id: str,
        span_id: str,
        parent_span_id: str | None,
        name: str,
        kind: str,
        start_ns: int,
        end_ns: int,
        status_code: int,
        status_message: str,
        attributes: dict[str, Any],
        events: list[dict[str, Any]],
        request: bool | None = None,
    ) -> None:
        """Append one span (ids already validated); also a request record for SERVER or root spans."""
        attrs = scrub_attributes(attributes)
        start = ns_to_pg(start_ns)
        duration = max(0, end_ns - start_ns) / 1e9
        service = clean_text(service_name)[:MAX_SERVICE]
        synthetic = attrs.get("pystrument.synthetic") in (True, "true", "True", 1)
        if status_code not in (0, 1, 2):
            status_code = 0
        self.rows.append(
            (
                trace_id,
                span_id,
                project_id,
                parent_span_id,
                scrub_name(clean_text(name)),
                kind,
                start,
                duration,
                status_code,
                scrub_name(clean_text(status_message)),
                service,
                synthetic,
                encode_json(attrs),
                encode_json(events),
            )
        )
        self.project_ids.add(project_id)
        if request is None:
            request = kind == "SERVER" or parent_span_id is None
        if request:
            self.add_record(project_id, service, trace_id, span_id, start, duration, status_code, attrs)

    def add_record(
        self,
        project_id: int,
        service: str,
        trace_id: str,
        span_id: str,
        start: int,
        duration: float,
        status_code: int,
        attrs: dict[str, Any],
    ) -> None:
        """A request record from a request span's (already scrubbed) attributes; ``start`` in row time."""
        method = attrs.get("http.request.method") or attrs.get("http.method") or ""
        route = attrs.get("http.route") or ""
        path = attrs.get("url.path") or attrs.get("http.target") or ""
        if not isinstance(path, str):
            path = str(path)
        if not path and isinstance(full := attrs.get("url.full") or attrs.get("http.url"), str):
            path = _url_path(full)
        path = path.split("?", 1)[0].split("#", 1)[0]
        http_status = _as_int(attrs.get("http.response.status_code", attrs.get("http.status_code")))
        cpu_ms = _as_float(attrs.get("pystrument.cpu_time_ms"))
        memory = {k[len(MEMORY_PREFIX) :]: v for k, v in attrs.items() if k.startswith(MEMORY_PREFIX)}
        is_error = status_code == 2 or (http_status is not None and http_status >= 500)
        r = self.records
        r[0].append(trace_id)
        r[1].append(span_id)
        r[2].append(project_id)
        r[3].append(service)
        r[4].append(str(method)[:MAX_METHOD].upper())
        r[5].append(str(route))
        r[6].append(path)
        r[7].append(http_status if http_status is not None and -(2**31) <= http_status < 2**31 else None)
        r[8].append(duration)
        r[9].append(cpu_ms / 1000 if cpu_ms is not None else None)
        r[10].append(encode_json(memory))
        r[11].append(is_error)
        r[12].append(start)

    def add_log(
        self,
        *,
        project_id: int,
        service_name: str,
        scope_name: str,
        time_ns: int,
        trace_id: str | None,
        span_id: str | None,
        severity_number: int,
        severity_text: str,
        body: Any,
        attributes: dict[str, Any],
    ) -> None:
        """Append one log record (ids already validated; ``None`` when absent), scrubbed like span attributes.

        Its key is a digest of what is stored, so the same record sent again (an exporter's retry) is stored once.
        """
        if isinstance(body, str):
            body = scrub_url(clean_text(body))
        elif isinstance(body, dict):
            body = scrub_attributes(body)
        attrs = encode_json(scrub_attributes(attributes))
        body_json = encode_json(body)
        service = clean_text(service_name)[:MAX_SERVICE]
        scope = clean_text(scope_name)[:MAX_SCOPE]
        severity = clean_text(severity_text)[:MAX_SEVERITY_TEXT]
        number = severity_number if 0 <= severity_number <= 24 else 0
        identity = encode_json([time_ns, trace_id, span_id, number, severity, body_json, attrs, service, scope])
        log_id = hashlib.blake2b(identity.encode(), digest_size=16).hexdigest()
        row = (project_id, ns_to_pg(time_ns), log_id, trace_id, span_id, number, severity, body_json, attrs)
        self.log_rows.append((*row, service, scope))
        self.project_ids.add(project_id)
