"""A wire-compatible, lighter view of ``ExportTraceServiceRequest`` for the hot path.

upb builds a Python wrapper for every sub-message touched: reading a span's attributes through the
generated classes costs ~0.4 µs per ``KeyValue`` before any value is read. This schema declares the same
field numbers and wire types but leaves ``attributes``, ``events``, ``status`` and ``resource`` as raw
bytes, so the mapper gets one ``bytes`` object per attribute and decodes (and caches) it itself. Fields
pystrument does not store (trace_state, links, flags, dropped counts, scope) are left undeclared: upb keeps
them as unknown fields and never builds objects for them. Validation is unchanged where it matters:
``name`` stays a proto3 ``string`` (UTF-8 checked by the parser) and every raw part is decoded with the
real OTLP classes or an exact decoder before it is stored.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_PACKAGE = "pystrument.wire"
_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED

# (message, [(field, number, type, label, message type)]) — numbers and wire types as in opentelemetry-proto.
_MESSAGES: list[tuple[str, list[tuple[str, int, int, int, str]]]] = [
    (
        "Span",
        [
            ("trace_id", 1, _F.TYPE_BYTES, _OPTIONAL, ""),
            ("span_id", 2, _F.TYPE_BYTES, _OPTIONAL, ""),
            ("parent_span_id", 4, _F.TYPE_BYTES, _OPTIONAL, ""),
            ("name", 5, _F.TYPE_STRING, _OPTIONAL, ""),
            ("kind", 6, _F.TYPE_INT32, _OPTIONAL, ""),
            ("start_time_unix_nano", 7, _F.TYPE_FIXED64, _OPTIONAL, ""),
            ("end_time_unix_nano", 8, _F.TYPE_FIXED64, _OPTIONAL, ""),
            ("attributes", 9, _F.TYPE_BYTES, _REPEATED, ""),  # each a serialized KeyValue
            ("events", 11, _F.TYPE_BYTES, _REPEATED, ""),  # each a serialized Span.Event
            ("status", 15, _F.TYPE_BYTES, _OPTIONAL, ""),  # a serialized Status (b"" when unset)
        ],
    ),
    ("ScopeSpans", [("spans", 2, _F.TYPE_MESSAGE, _REPEATED, "Span")]),
    (
        "ResourceSpans",
        [
            ("resource", 1, _F.TYPE_BYTES, _OPTIONAL, ""),  # a serialized Resource
            ("scope_spans", 2, _F.TYPE_MESSAGE, _REPEATED, "ScopeSpans"),
        ],
    ),
    ("ExportTraceServiceRequest", [("resource_spans", 1, _F.TYPE_MESSAGE, _REPEATED, "ResourceSpans")]),
]


def _build() -> Any:
    proto = descriptor_pb2.FileDescriptorProto(name="pystrument/wire.proto", package=_PACKAGE, syntax="proto3")
    for name, fields in _MESSAGES:
        message = proto.message_type.add(name=name)
        for field, number, type_, label, type_name in fields:
            f = message.field.add(name=field, number=number, type=type_, label=label)
            if type_name:
                f.type_name = f".{_PACKAGE}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.ExportTraceServiceRequest"))


LiteTraceRequest: Any = _build()
