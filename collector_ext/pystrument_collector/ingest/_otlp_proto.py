"""OTLP protobuf (``ExportTraceServiceRequest``) → span rows, the hot path of ingest.

Decoded with the lighter wire view of ``_wire`` (attributes stay raw bytes), then each span becomes a row
tuple with no per-span dicts: attributes are joined from cached JSON members (``_attrs``), resource-level
values are computed once per resource, and times stay integers. Request spans (SERVER or root, a few per
cent of traffic) also get their attributes as a dict for the request record.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as PbStatus

from pystrument_collector.ingest import _attrs
from pystrument_collector.ingest._attrs import any_value
from pystrument_collector.ingest._batch import (
    KINDS,
    MAX_SERVICE,
    PG_EPOCH_US,
    Batch,
    clean_text,
    encode_json,
    ns_to_datetime,
)
from pystrument_collector.ingest._errors import PayloadError
from pystrument_collector.ingest._redact import scrub_attributes, scrub_name
from pystrument_collector.ingest._wire import LiteTraceRequest

PROJECT_KEY_ATTRIBUTE = "pystrument.project_key"
# Per span, like the OTel SDK's limits (128 by default) but roomier: more is stored truncated, which keeps a
# hostile body from turning into millions of Python objects at once.
MAX_ATTRIBUTES = 1000
MAX_EVENTS = 1000
# A span that starts or ends more than this ahead of the server's clock is refused (partial success): far-future
# times would top every newest-first list and never expire.
FUTURE_TOLERANCE_NS = 86_400 * 10**9
FUTURE_MESSAGE = "times more than a day ahead of the server's clock are refused"


# What the request record reads (Batch.add_record): kept even beyond MAX_ATTRIBUTES, so a span with too many
# attributes still gets its route, path and status; the rest beyond the cap is dropped, counted in
# ``pystrument.dropped_attributes_count`` and said in the export's partial success.
RECORD_KEYS = (
    "http.request.method", "http.method", "http.route", "url.path", "http.target", "url.full", "http.url",
    "http.response.status_code", "http.status_code", "pystrument.cpu_time_ms", "pystrument.synthetic",
)  # fmt: skip
DROPPED_ATTRIBUTE = "pystrument.dropped_attributes_count"
_RECORD_PREFIXES = tuple(b"\x0a" + bytes([len(k)]) + k.encode() + b"\x12" for k in RECORD_KEYS)


def over_cap(raws: Any, name: str, batch: Batch) -> tuple[list[bytes], int]:
    """The first ``MAX_ATTRIBUTES`` raw attributes plus the record's own keys from the rest, and how many were
    dropped; the batch carries a warning for the partial success."""
    kept = list(raws[:MAX_ATTRIBUTES])
    kept += [r for r in raws[MAX_ATTRIBUTES:] if r.startswith(_RECORD_PREFIXES)]
    dropped = len(raws) - len(kept)
    batch.warn(f"span {name!r}: {dropped} attributes beyond the first {MAX_ATTRIBUTES} were dropped")
    return kept, dropped


def future_limit_ns() -> int:
    """The latest start or end time accepted now (Unix nanoseconds)."""
    return time.time_ns() + FUTURE_TOLERANCE_NS


_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_SYNTHETIC = frozenset(
    '"pystrument.synthetic":' + v for v in ("true", '"true"', '"True"', "1")
)  # the JSON members that mark a function span
_NO_EVENTS = "[]"


def attributes(kvs: Any) -> dict[str, Any]:
    """Generated ``KeyValue`` messages as a dict (resources and events: a few per request)."""
    return {clean_text(kv.key): any_value(kv.value) for kv in kvs}


def _decode(cls: Any, raw: bytes, what: str) -> Any:
    try:
        return cls.FromString(raw)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise PayloadError(f"{what} is not valid OTLP protobuf: {exc}") from None


def _events(raws: Any) -> str:
    events = []
    for raw in raws:
        e = _decode(PbSpan.Event, raw, "a span event")
        events.append(
            {
                "name": scrub_name(clean_text(e.name)),
                "timestamp": ns_to_datetime(e.time_unix_nano).isoformat(),
                "attributes": scrub_attributes(attributes(e.attributes[:MAX_ATTRIBUTES])),
            }
        )
    return encode_json(events)


class ProtoTraces:
    """A decoded protobuf export request."""

    def __init__(self, body: bytes) -> None:
        try:
            self.message = LiteTraceRequest.FromString(body)
        except (DecodeError, ValueError, RuntimeError) as exc:
            raise PayloadError(f"body is not a valid OTLP ExportTraceServiceRequest protobuf: {exc}") from None
        self._resources: list[dict[str, Any]] | None = None

    def resources(self) -> list[dict[str, Any]]:
        """Each resource_spans' resource attributes (decoded once)."""
        if self._resources is None:
            self._resources = [
                attributes(_decode(Resource, rs.resource, "a resource").attributes) if rs.resource else {}
                for rs in self.message.resource_spans
            ]
        return self._resources

    def resource_keys(self) -> list[str | None]:
        """The ``pystrument.project_key`` resource attribute of each resource_spans (None if absent)."""
        keys: list[str | None] = []
        for attrs in self.resources():
            key = attrs.get(PROJECT_KEY_ATTRIBUTE)
            keys.append(key if isinstance(key, str) and key else None)
        return keys

    def span_count(self) -> int:
        return sum(len(ss.spans) for rs in self.message.resource_spans for ss in rs.scope_spans)

    def batches(self, project_ids: list[int], size: int) -> Iterator[Batch]:
        """Map every span, ``size`` spans a batch; spans with invalid ids or times are counted as rejected."""
        batch = Batch()
        rows = batch.rows
        append = rows.append
        latest = future_limit_ns()
        get_member = _attrs._members.get
        decode = _attrs._decode
        not_synthetic = _SYNTHETIC.isdisjoint
        join = ",".join
        for rs, project_id, resource in zip(self.message.resource_spans, project_ids, self.resources(), strict=True):
            service = resource.get("service.name")
            service = clean_text(service)[:MAX_SERVICE] if isinstance(service, str) else ""
            batch.project_ids.add(project_id)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    tid = span.trace_id
                    sid = span.span_id
                    if len(tid) != 16 or tid == _ZERO_TRACE:
                        batch.reject("invalid_trace_id", f"span {span.name!r}: trace_id must be 16 non-zero bytes")
                        continue
                    if len(sid) != 8 or sid == _ZERO_SPAN:
                        batch.reject("invalid_span_id", f"span {span.name!r}: span_id must be 8 non-zero bytes")
                        continue
                    pid = span.parent_span_id
                    if pid:
                        if len(pid) != 8:
                            batch.reject(
                                "invalid_parent_span_id",
                                f"span {span.name!r}: parent_span_id must be empty or 8 bytes",
                            )
                            continue
                        parent = None if pid == _ZERO_SPAN else pid.hex()
                    else:
                        parent = None
                    start = span.start_time_unix_nano
                    if not start:
                        batch.reject("missing_start_time", f"span {span.name!r}: start_time_unix_nano is missing")
                        continue
                    if start > latest or span.end_time_unix_nano > latest:
                        batch.reject("future_time", f"span {span.name!r}: {FUTURE_MESSAGE}")
                        continue
                    # One C-level pass over the raw attributes; only cache misses run Python per attribute.
                    raws = span.attributes
                    dropped = 0
                    if len(raws) > MAX_ATTRIBUTES:
                        raws, dropped = over_cap(raws, span.name, batch)
                    members: list[str | None] = list(map(get_member, raws))
                    misses = members.count(None)
                    i = -1
                    for _ in range(misses):  # C-level scans from the previous miss on: linear in the span
                        i = members.index(None, i + 1)
                        members[i] = decode(raws[i])[0]
                    if dropped:
                        members.append(f'"{DROPPED_ATTRIBUTE}":{dropped}')
                    kind = span.kind
                    status = span.status
                    if status:
                        st = _decode(PbStatus, status, "a span status")
                        code = st.code if st.code in (1, 2) else 0
                        message = scrub_name(clean_text(st.message))
                    else:
                        code, message = 0, ""
                    events = span.events
                    name = span.name
                    end = span.end_time_unix_nano
                    start_us = start // 1000 - PG_EPOCH_US
                    duration = (end - start) / 1e9 if end > start else 0.0
                    trace_hex = tid.hex()
                    span_hex = sid.hex()
                    append(
                        (
                            trace_hex,
                            span_hex,
                            project_id,
                            parent,
                            scrub_name(clean_text(name) if "\x00" in name else name),
                            KINDS[kind] if 0 <= kind < 6 else "UNSPECIFIED",
                            start_us,
                            duration,
                            code,
                            message,
                            service,
                            not not_synthetic(members),
                            "{" + join(members) + "}",  # type: ignore[arg-type]  # no None left
                            _events(events[:MAX_EVENTS]) if events else _NO_EVENTS,
                        )
                    )
                    if kind == 2 or parent is None:
                        batch.add_record(
                            project_id, service, trace_hex, span_hex, start_us, duration, code, _attrs.pairs(raws)
                        )
                    if len(rows) >= size:
                        yield batch
                        batch = Batch()
                        batch.project_ids.add(project_id)
                        rows = batch.rows
                        append = rows.append
        yield batch
