"""OTLP protobuf (``ExportTraceServiceRequest``) → :class:`Batch`, walking the decoded message directly."""

from __future__ import annotations

import base64
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from pystrument_collector.ingest._batch import KINDS, Batch, clean_text, ns_to_datetime
from pystrument_collector.ingest._errors import PayloadError
from pystrument_collector.ingest._redact import scrub_attributes

PROJECT_KEY_ATTRIBUTE = "pystrument.project_key"
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)


def any_value(v: Any) -> Any:
    """An OTLP ``AnyValue`` as a plain JSON value."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return clean_text(v.string_value)
    if which == "int_value":
        return v.int_value
    if which == "bool_value":
        return v.bool_value
    if which == "double_value":
        return v.double_value
    if which == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {clean_text(kv.key): any_value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return None


def attributes(kvs: Any) -> dict[str, Any]:
    return {clean_text(kv.key): any_value(kv.value) for kv in kvs}


class ProtoTraces:
    """A decoded protobuf export request."""

    def __init__(self, body: bytes) -> None:
        try:
            self.message = ExportTraceServiceRequest.FromString(body)
        except (DecodeError, ValueError, RuntimeError) as exc:
            raise PayloadError(f"body is not a valid OTLP ExportTraceServiceRequest protobuf: {exc}") from None

    def resource_keys(self) -> list[str | None]:
        """The ``pystrument.project_key`` resource attribute of each resource_spans (None if absent)."""
        keys: list[str | None] = []
        for rs in self.message.resource_spans:
            key = None
            for kv in rs.resource.attributes:
                if kv.key == PROJECT_KEY_ATTRIBUTE:
                    key = kv.value.string_value or None
                    break
            keys.append(key)
        return keys

    def span_count(self) -> int:
        return sum(len(ss.spans) for rs in self.message.resource_spans for ss in rs.scope_spans)

    def fill(self, batch: Batch, project_ids: list[int]) -> None:
        """Map every span; spans with invalid ids or times are counted as rejected."""
        for rs, project_id in zip(self.message.resource_spans, project_ids, strict=True):
            service = ""
            for kv in rs.resource.attributes:
                if kv.key == "service.name":
                    service = kv.value.string_value
                    break
            for ss in rs.scope_spans:
                for span in ss.spans:
                    self._one(batch, project_id, service, span)

    @staticmethod
    def _one(batch: Batch, project_id: int, service: str, span: Any) -> None:
        tid = span.trace_id
        sid = span.span_id
        if len(tid) != 16 or tid == _ZERO_TRACE:
            batch.reject("invalid_trace_id", f"span {span.name!r}: trace_id must be 16 non-zero bytes")
            return
        if len(sid) != 8 or sid == _ZERO_SPAN:
            batch.reject("invalid_span_id", f"span {span.name!r}: span_id must be 8 non-zero bytes")
            return
        pid = span.parent_span_id
        if pid and len(pid) != 8:
            batch.reject("invalid_parent_span_id", f"span {span.name!r}: parent_span_id must be empty or 8 bytes")
            return
        start = span.start_time_unix_nano
        if not start:
            batch.reject("missing_start_time", f"span {span.name!r}: start_time_unix_nano is missing")
            return
        events = [
            {
                "name": clean_text(e.name),
                "timestamp": ns_to_datetime(e.time_unix_nano).isoformat(),
                "attributes": scrub_attributes(attributes(e.attributes)),
            }
            for e in span.events
        ]
        kind = span.kind
        batch.add_span(
            project_id=project_id,
            service_name=service,
            trace_id=tid.hex(),
            span_id=sid.hex(),
            parent_span_id=pid.hex() if pid and pid != _ZERO_SPAN else None,
            name=span.name,
            kind=KINDS[kind] if 0 <= kind < len(KINDS) else "UNSPECIFIED",
            start_ns=start,
            end_ns=span.end_time_unix_nano,
            status_code=span.status.code,
            status_message=span.status.message,
            attributes=attributes(span.attributes),
            events=events,
        )
