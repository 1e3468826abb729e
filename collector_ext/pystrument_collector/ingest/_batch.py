"""Rows to write, column by column: the one place that maps a decoded span to ``spans`` and ``performance_records``.

Decoders (protobuf, OTLP JSON, the seed's legacy JSON) call :meth:`Batch.add_span` with plain values; every
mapping rule (request detection, HTTP fields, cpu/memory, error flag, redaction) lives here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import msgspec

from pystrument_collector.ingest._redact import scrub_attributes

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
MEMORY_PREFIX = "pystrument.memory."
MAX_SERVICE = 200
MAX_METHOD = 16


_json_encoder = msgspec.json.Encoder()


def encode_json(value: Any) -> str:
    """JSON text for a JSONB column (non-finite floats become null)."""
    return _json_encoder.encode(value).decode()


def clean_text(value: str) -> str:
    """Postgres text and JSONB refuse NUL characters; drop them."""
    return value.replace("\x00", "") if "\x00" in value else value


def ns_to_datetime(ns: int) -> datetime:
    return EPOCH + timedelta(microseconds=ns // 1000)


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


class Batch:
    """Column lists for one request's spans and request records, plus rejection bookkeeping."""

    SPAN_COLUMNS = (
        "trace_id", "span_id", "project_id", "parent_span_id", "name", "kind", "start_time", "duration",
        "status_code", "status_message", "service_name", "synthetic", "attributes", "events",
    )  # fmt: skip
    RECORD_COLUMNS = (
        "trace_id", "span_id", "project_id", "service_name", "method", "route", "path", "status_code",
        "duration", "cpu_time", "memory", "is_error", "timestamp",
    )  # fmt: skip

    def __init__(self) -> None:
        self.spans: list[list[Any]] = [[] for _ in self.SPAN_COLUMNS]
        self.records: list[list[Any]] = [[] for _ in self.RECORD_COLUMNS]
        self.rejected = 0
        self.reject_reasons: dict[str, int] = {}
        self.first_error = ""
        self.project_ids: set[int] = set()

    def __len__(self) -> int:
        return len(self.spans[0])

    @property
    def record_count(self) -> int:
        return len(self.records[0])

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
        start = ns_to_datetime(start_ns)
        duration = max(0, end_ns - start_ns) / 1e9
        service = clean_text(service_name)[:MAX_SERVICE]
        synthetic = attrs.get("pystrument.synthetic") in (True, "true", "True", 1)
        if status_code not in (0, 1, 2):
            status_code = 0
        s = self.spans
        s[0].append(trace_id)
        s[1].append(span_id)
        s[2].append(project_id)
        s[3].append(parent_span_id)
        s[4].append(clean_text(name))
        s[5].append(kind)
        s[6].append(start)
        s[7].append(duration)
        s[8].append(status_code)
        s[9].append(clean_text(status_message))
        s[10].append(service)
        s[11].append(synthetic)
        s[12].append(encode_json(attrs))
        s[13].append(encode_json(events))
        self.project_ids.add(project_id)
        if request is None:
            request = kind == "SERVER" or parent_span_id is None
        if request:
            self._add_record(project_id, service, trace_id, span_id, start, duration, status_code, attrs)

    def _add_record(
        self,
        project_id: int,
        service: str,
        trace_id: str,
        span_id: str,
        start: datetime,
        duration: float,
        status_code: int,
        attrs: dict[str, Any],
    ) -> None:
        method = attrs.get("http.request.method") or attrs.get("http.method") or ""
        route = attrs.get("http.route") or ""
        path = attrs.get("url.path") or attrs.get("http.target") or ""
        if not isinstance(path, str):
            path = str(path)
        if not path and isinstance(full := attrs.get("url.full") or attrs.get("http.url"), str):
            path = urlsplit(full).path
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
        r[7].append(http_status)
        r[8].append(duration)
        r[9].append(cpu_ms / 1000 if cpu_ms is not None else None)
        r[10].append(encode_json(memory))
        r[11].append(is_error)
        r[12].append(start)
