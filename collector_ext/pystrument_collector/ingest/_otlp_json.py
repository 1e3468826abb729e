"""OTLP/JSON → :class:`Batch` by a direct walk of the decoded dict (faster than ``json_format``).

Liberal in what it accepts, as the OTLP spec asks: lowerCamelCase or snake_case field names, hex ids (base64
too, as generic protobuf-JSON encoders write them), enums as ints or names, int64 as strings or numbers.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from typing import Any

import msgspec

from pystrument_collector.ingest._attrs import MAX_VALUE_DEPTH, TOO_DEEP
from pystrument_collector.ingest._batch import KINDS, Batch, clean_text, ns_to_datetime
from pystrument_collector.ingest._errors import PayloadError
from pystrument_collector.ingest._otlp_proto import (
    DROPPED_ATTRIBUTE,
    FUTURE_MESSAGE,
    MAX_ATTRIBUTES,
    MAX_EVENTS,
    PROJECT_KEY_ATTRIBUTE,
    RECORD_KEYS,
    future_limit_ns,
)
from pystrument_collector.ingest._redact import scrub_attributes, scrub_name

_KIND_NAMES = {f"SPAN_KIND_{k}": i for i, k in enumerate(KINDS)} | {k: i for i, k in enumerate(KINDS)}
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2, "UNSET": 0, "OK": 1, "ERROR": 2}
_HEX = frozenset("0123456789abcdefABCDEF")
_decoder = msgspec.json.Decoder()
_MAX_NANOS = 2**64  # fixed64 in the protobuf form; also keeps times within Postgres' timestamptz range


def _get(d: dict[str, Any], camel: str, snake: str) -> Any:
    value = d.get(camel)
    return d.get(snake) if value is None else value


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def any_value(v: Any, depth: int = 0) -> Any:
    """An OTLP/JSON ``AnyValue`` object as a plain JSON value (``TOO_DEEP`` past ``MAX_VALUE_DEPTH``, as in
    protobuf)."""
    if not isinstance(v, dict):
        return None
    for field, value in v.items():
        if field in ("stringValue", "string_value"):
            return clean_text(value) if isinstance(value, str) else str(value)
        if field in ("intValue", "int_value"):
            try:
                return int(value)
            except (TypeError, ValueError):
                return None
        if field in ("boolValue", "bool_value"):
            return bool(value)
        if field in ("doubleValue", "double_value"):
            try:
                return float(value)
            except (TypeError, ValueError):
                return None
        if field in ("arrayValue", "array_value"):
            if depth >= MAX_VALUE_DEPTH:
                return TOO_DEEP
            return [any_value(x, depth + 1) for x in _list(_dict(value).get("values"))]
        if field in ("kvlistValue", "kvlist_value"):
            if depth >= MAX_VALUE_DEPTH:
                return TOO_DEEP
            return attributes(_dict(value).get("values"), depth + 1)
        if field in ("bytesValue", "bytes_value"):
            return value if isinstance(value, str) else None
    return None


def attributes(kvs: Any, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in _list(kvs)[:MAX_ATTRIBUTES]:
        if isinstance(kv, dict) and isinstance(key := kv.get("key"), str):
            out[clean_text(key)] = any_value(kv.get("value"), depth)
    return out


def _span_attributes(batch: Batch, name: str, kvs: list[Any]) -> dict[str, Any]:
    """A span's attributes: past ``MAX_ATTRIBUTES`` only the record's keys are kept, as in protobuf."""
    attrs = attributes(kvs)
    if len(kvs) > MAX_ATTRIBUTES:
        extra = [kv for kv in kvs[MAX_ATTRIBUTES:] if isinstance(kv, dict) and kv.get("key") in RECORD_KEYS]
        attrs.update(attributes(extra))
        dropped = len(kvs) - MAX_ATTRIBUTES - len(extra)
        attrs[DROPPED_ATTRIBUTE] = dropped
        batch.warn(f"span {name!r}: {dropped} attributes beyond the first {MAX_ATTRIBUTES} were dropped")
    return attrs


def _id(value: Any, size: int) -> str | None:
    """A lowercase hex id of ``size`` bytes from hex (or base64) text; None if absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) == size * 2 and _HEX.issuperset(value):
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == size else None


def _int(value: Any) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str | float):
        try:
            return int(value)
        except ValueError:
            return 0
    return 0


def _enum(value: Any, names: dict[str, int]) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return names.get(value.upper(), 0)
    return 0


class JsonTraces:
    """A decoded OTLP/JSON export request."""

    def __init__(self, body: bytes) -> None:
        try:
            doc = _decoder.decode(body) if body.strip() else {}
        except msgspec.DecodeError as exc:
            raise PayloadError(f"body is not valid JSON: {exc}") from None
        except RecursionError:
            raise PayloadError("body is nested too deeply to decode") from None
        if not isinstance(doc, dict):
            raise PayloadError("OTLP/JSON body must be an object with 'resourceSpans'")
        rs = _get(doc, "resourceSpans", "resource_spans")
        if rs is not None and not isinstance(rs, list):
            raise PayloadError("'resourceSpans' must be a list")
        self.resource_spans: list[dict[str, Any]] = [r if isinstance(r, dict) else {} for r in rs or []]

    def resource_keys(self) -> list[str | None]:
        keys: list[str | None] = []
        for rs in self.resource_spans:
            attrs = attributes(_dict(rs.get("resource")).get("attributes"))
            key = attrs.get(PROJECT_KEY_ATTRIBUTE)
            keys.append(key if isinstance(key, str) and key else None)
        return keys

    def span_count(self) -> int:
        return sum(len(_list(_dict(ss).get("spans"))) for rs in self.resource_spans for ss in self._scopes(rs))

    @staticmethod
    def _scopes(rs: dict[str, Any]) -> list[Any]:
        return _list(_get(rs, "scopeSpans", "scope_spans") or rs.get("instrumentationLibrarySpans"))

    def batches(self, project_ids: list[int], size: int) -> Iterator[Batch]:
        """Map every span, ``size`` spans a batch; spans with invalid ids or times are counted as rejected."""
        batch = Batch()
        latest = future_limit_ns()
        for rs, project_id in zip(self.resource_spans, project_ids, strict=True):
            service = attributes(_dict(rs.get("resource")).get("attributes")).get("service.name")
            service = service if isinstance(service, str) else ""
            for ss in self._scopes(rs):
                for span in _list(_dict(ss).get("spans")):
                    self._one(batch, project_id, service, _dict(span), latest)
                    if len(batch) >= size:
                        yield batch
                        batch = Batch()
        yield batch

    @staticmethod
    def _one(batch: Batch, project_id: int, service: str, span: dict[str, Any], latest: int) -> None:
        name = span.get("name")
        name = name if isinstance(name, str) else ""
        trace_id = _id(_get(span, "traceId", "trace_id"), 16)
        if trace_id is None or trace_id == "0" * 32:
            batch.reject("invalid_trace_id", f"span {name!r}: traceId must be 32 hex digits, not all zero")
            return
        span_id = _id(_get(span, "spanId", "span_id"), 8)
        if span_id is None or span_id == "0" * 16:
            batch.reject("invalid_span_id", f"span {name!r}: spanId must be 16 hex digits, not all zero")
            return
        raw_parent = _get(span, "parentSpanId", "parent_span_id")
        parent = _id(raw_parent, 8) if raw_parent else None
        if raw_parent and parent is None:
            batch.reject("invalid_parent_span_id", f"span {name!r}: parentSpanId must be empty or 16 hex digits")
            return
        start = _int(_get(span, "startTimeUnixNano", "start_time_unix_nano"))
        if start <= 0:
            batch.reject("missing_start_time", f"span {name!r}: startTimeUnixNano is missing")
            return
        if start >= _MAX_NANOS:
            batch.reject("invalid_start_time", f"span {name!r}: startTimeUnixNano is out of range")
            return
        end = _int(_get(span, "endTimeUnixNano", "end_time_unix_nano"))
        if start > latest or end > latest:
            batch.reject("future_time", f"span {name!r}: {FUTURE_MESSAGE}")
            return
        events = []
        for e in _list(span.get("events"))[:MAX_EVENTS]:
            e = _dict(e)
            ev_name = e.get("name")
            events.append(
                {
                    "name": scrub_name(clean_text(ev_name)) if isinstance(ev_name, str) else "",
                    "timestamp": ns_to_datetime(_int(_get(e, "timeUnixNano", "time_unix_nano"))).isoformat(),
                    "attributes": scrub_attributes(attributes(e.get("attributes"))),
                }
            )
        status = _dict(span.get("status"))
        message = status.get("message")
        kind = _enum(span.get("kind"), _KIND_NAMES)
        batch.add_span(
            project_id=project_id,
            service_name=service,
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent if parent != "0" * 16 else None,
            name=name,
            kind=KINDS[kind] if 0 <= kind < len(KINDS) else "UNSPECIFIED",
            start_ns=start,
            end_ns=end,
            status_code=_enum(status.get("code"), _STATUS_NAMES),
            status_message=message if isinstance(message, str) else "",
            attributes=_span_attributes(batch, name, _list(span.get("attributes"))),
            events=events,
        )
