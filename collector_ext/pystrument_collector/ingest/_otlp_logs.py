"""OTLP logs (``ExportLogsServiceRequest``, protobuf or JSON) → log rows of :class:`Batch`.

A record keeps its trace and span ids (empty or all-zero ids mean "not in a span"), severity, body and
attributes; its time is ``time_unix_nano``, or ``observed_time_unix_nano`` when the source gave none. Records
with malformed ids or no time at all are refused one by one (partial success), like spans.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from pystrument_collector.ingest import _otlp_json
from pystrument_collector.ingest._attrs import any_value
from pystrument_collector.ingest._batch import Batch, clean_text
from pystrument_collector.ingest._errors import PayloadError
from pystrument_collector.ingest._otlp_proto import MAX_ATTRIBUTES, PROJECT_KEY_ATTRIBUTE, attributes

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_MAX_NANOS = 2**64
_SEVERITY_NAMES = {
    f"SEVERITY_NUMBER_{name}": number
    for number, name in enumerate(
        ["UNSPECIFIED"]
        + [f"{level}{'' if i == 1 else i}" for level in ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
           for i in range(1, 5)]
    )
}  # fmt: skip
_decoder = msgspec.json.Decoder()


def _key(attrs: dict[str, Any]) -> str | None:
    key = attrs.get(PROJECT_KEY_ATTRIBUTE)
    return key if isinstance(key, str) and key else None


class ProtoLogs:
    """A decoded protobuf ``ExportLogsServiceRequest``."""

    def __init__(self, body: bytes) -> None:
        try:
            self.message = ExportLogsServiceRequest.FromString(body)
        except (DecodeError, ValueError, RuntimeError) as exc:
            raise PayloadError(f"body is not a valid OTLP ExportLogsServiceRequest protobuf: {exc}") from None
        self._resources = [attributes(rl.resource.attributes) for rl in self.message.resource_logs]

    def resource_keys(self) -> list[str | None]:
        return [_key(attrs) for attrs in self._resources]

    def span_count(self) -> int:
        """Log records in the request (the ingest protocol's item count)."""
        return sum(len(sl.log_records) for rl in self.message.resource_logs for sl in rl.scope_logs)

    def batches(self, project_ids: list[int], size: int) -> Iterator[Batch]:
        batch = Batch()
        for rl, project_id, resource in zip(self.message.resource_logs, project_ids, self._resources, strict=True):
            service = resource.get("service.name")
            service = service if isinstance(service, str) else ""
            batch.project_ids.add(project_id)
            for sl in rl.scope_logs:
                scope = clean_text(sl.scope.name)
                for record in sl.log_records:
                    time_ns = record.time_unix_nano or record.observed_time_unix_nano
                    tid, sid = record.trace_id, record.span_id
                    if not time_ns:
                        batch.reject("missing_time", "log record: timeUnixNano and observedTimeUnixNano are missing")
                    elif len(tid) not in (0, 16):
                        batch.reject("invalid_trace_id", "log record: trace_id must be empty or 16 bytes")
                    elif len(sid) not in (0, 8):
                        batch.reject("invalid_span_id", "log record: span_id must be empty or 8 bytes")
                    else:
                        batch.add_log(
                            project_id=project_id,
                            service_name=service,
                            scope_name=scope,
                            time_ns=time_ns,
                            trace_id=tid.hex() if tid and tid != _ZERO_TRACE else None,
                            span_id=sid.hex() if sid and sid != _ZERO_SPAN else None,
                            severity_number=record.severity_number,
                            severity_text=record.severity_text,
                            body=any_value(record.body) if record.HasField("body") else None,
                            attributes=attributes(record.attributes[:MAX_ATTRIBUTES]),
                        )
                    if len(batch.log_rows) >= size:
                        yield batch
                        batch = Batch()
                        batch.project_ids.add(project_id)
        yield batch


class JsonLogs:
    """A decoded OTLP/JSON logs request (lowerCamelCase or snake_case, hex or base64 ids, enums by number or name)."""

    def __init__(self, body: bytes) -> None:
        try:
            doc = _decoder.decode(body) if body.strip() else {}
        except msgspec.DecodeError as exc:
            raise PayloadError(f"body is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise PayloadError("OTLP/JSON body must be an object with 'resourceLogs'")
        rl = _otlp_json._get(doc, "resourceLogs", "resource_logs")
        if rl is not None and not isinstance(rl, list):
            raise PayloadError("'resourceLogs' must be a list")
        self.resource_logs: list[dict[str, Any]] = [r if isinstance(r, dict) else {} for r in rl or []]
        self._resources = [
            _otlp_json.attributes(_otlp_json._dict(r.get("resource")).get("attributes")) for r in self.resource_logs
        ]

    @staticmethod
    def _scopes(rl: dict[str, Any]) -> list[dict[str, Any]]:
        return [_otlp_json._dict(s) for s in _otlp_json._list(_otlp_json._get(rl, "scopeLogs", "scope_logs"))]

    @staticmethod
    def _records(sl: dict[str, Any]) -> list[Any]:
        return _otlp_json._list(_otlp_json._get(sl, "logRecords", "log_records"))

    def resource_keys(self) -> list[str | None]:
        return [_key(attrs) for attrs in self._resources]

    def span_count(self) -> int:
        return sum(len(self._records(sl)) for rl in self.resource_logs for sl in self._scopes(rl))

    def batches(self, project_ids: list[int], size: int) -> Iterator[Batch]:
        j = _otlp_json
        batch = Batch()
        for rl, project_id, resource in zip(self.resource_logs, project_ids, self._resources, strict=True):
            service = resource.get("service.name")
            service = service if isinstance(service, str) else ""
            batch.project_ids.add(project_id)
            for sl in self._scopes(rl):
                scope_name = j._dict(sl.get("scope")).get("name")
                scope_name = scope_name if isinstance(scope_name, str) else ""
                for raw in self._records(sl):
                    self._one(batch, project_id, service, scope_name, j._dict(raw))
                    if len(batch.log_rows) >= size:
                        yield batch
                        batch = Batch()
                        batch.project_ids.add(project_id)
        yield batch

    @staticmethod
    def _one(batch: Batch, project_id: int, service: str, scope: str, record: dict[str, Any]) -> None:
        j = _otlp_json
        time_ns = j._int(j._get(record, "timeUnixNano", "time_unix_nano")) or j._int(
            j._get(record, "observedTimeUnixNano", "observed_time_unix_nano")
        )
        if time_ns <= 0:
            batch.reject("missing_time", "log record: timeUnixNano and observedTimeUnixNano are missing")
            return
        if time_ns >= _MAX_NANOS:
            batch.reject("invalid_time", "log record: timeUnixNano is out of range")
            return
        raw_trace = j._get(record, "traceId", "trace_id")
        trace_id = j._id(raw_trace, 16) if raw_trace else None
        if raw_trace and trace_id is None:
            batch.reject("invalid_trace_id", "log record: traceId must be empty or 32 hex digits")
            return
        raw_span = j._get(record, "spanId", "span_id")
        span_id = j._id(raw_span, 8) if raw_span else None
        if raw_span and span_id is None:
            batch.reject("invalid_span_id", "log record: spanId must be empty or 16 hex digits")
            return
        text = j._get(record, "severityText", "severity_text")
        body = record.get("body")
        batch.add_log(
            project_id=project_id,
            service_name=service,
            scope_name=scope,
            time_ns=time_ns,
            trace_id=trace_id if trace_id != "0" * 32 else None,
            span_id=span_id if span_id != "0" * 16 else None,
            severity_number=j._enum(j._get(record, "severityNumber", "severity_number"), _SEVERITY_NAMES),
            severity_text=text if isinstance(text, str) else "",
            body=j.any_value(body) if body is not None else None,
            attributes=j.attributes(record.get("attributes")),
        )
