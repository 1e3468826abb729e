"""The protobuf hot path (lite wire view, attribute cache) maps exactly what the generated OTLP classes decode."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import msgspec
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from pystrument_collector.ingest import Batch, PayloadError, ProtoTraces, _attrs
from pystrument_collector.ingest._attrs import any_value
from pystrument_collector.ingest._batch import clean_text, pg_to_datetime
from pystrument_collector.ingest._redact import scrub_attributes


def kv(key: str, value: Any) -> KeyValue:
    return KeyValue(key=key, value=value if isinstance(value, AnyValue) else _any(value))


def _any(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[_any(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=[kv(k, v) for k, v in value.items()]))
    return AnyValue(string_value=value)


EVERY_SHAPE = [
    kv("http.request.method", "GET"),
    kv("empty", ""),
    kv("unicode", "naïve ☃ 日本"),
    kv("long", "x" * 200),  # two-byte lengths
    kv("longer", "y" * 20_000),  # three-byte lengths
    kv("nul\x00key", "a\x00b"),
    kv("yes", True),
    kv("no", False),
    kv("zero", 0),
    kv("negative", -42),
    kv("big", 2**63 - 1),
    kv("small", -(2**63)),
    kv("pi", 3.25),
    kv("nan", math.nan),
    kv("inf", math.inf),
    kv("minus_zero", -0.0),
    kv("tags", ["a", 2, True, 1.5]),
    kv("map", {"inner": "v", "n": 3}),
    kv("blob", b"\x00\x01\xff"),
    KeyValue(key="unset"),  # an AnyValue with no value
    KeyValue(key="", value=AnyValue(string_value="empty key")),
    kv("http.request.header.authorization", "Bearer s3cr3t"),
    kv("url.query", "page=2&access_token=abc"),
    kv("url.full", "https://user:pw@example.com/x?api_key=k"),
    kv("dup", "first"),
    kv("dup", "second"),
]


def reference(span: Span) -> dict[str, Any]:
    """What the generated classes decode, scrubbed and as JSON text round-trips it (NaN/inf → null)."""
    attrs = scrub_attributes({clean_text(k.key): any_value(k.value) for k in span.attributes})
    return json.loads(msgspec.json.encode(attrs))


def request(spans: list[Span], service: str = "svc") -> bytes:
    resource = Resource(attributes=[kv("service.name", service)])
    rs = ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])
    return ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()


def span(attributes: list[KeyValue], **kw: Any) -> Span:
    fields: dict[str, Any] = {
        "trace_id": random.randbytes(16),
        "span_id": random.randbytes(8),
        "name": "op",
        "kind": Span.SPAN_KIND_INTERNAL,
        "start_time_unix_nano": 1_700_000_000_123_456_789,
        "end_time_unix_nano": 1_700_000_000_623_456_789,
        **kw,
    }
    return Span(attributes=attributes, **fields)


def rows(body: bytes, size: int = 2048) -> list[Batch]:
    return list(ProtoTraces(body).batches([7], size))


def test_every_attribute_shape_matches_the_generated_classes_cold_and_cached() -> None:
    random.seed(1)
    original = span(EVERY_SHAPE)
    body = request([original])
    for _ in range(3):  # first a miss for every attribute, then cache hits
        [batch] = rows(body)
        [row] = batch.rows
        assert json.loads(row[12]) == reference(original)
    stored = json.loads(row[12])
    assert stored["http.request.header.authorization"] == "[REDACTED]"
    assert stored["url.query"] == "page=2&access_token=[REDACTED]"
    assert stored["nulkey"] == "ab" and stored["dup"] == "second" and stored["nan"] is None
    # A root span: its request record takes the path from the scrubbed url.full.
    assert batch.records[Batch.RECORD_COLUMNS.index("path")] == ["/x"]


def test_volatile_values_and_the_double_prefix_path_match_too() -> None:
    rnd = random.Random(3)
    originals = [
        span(
            [
                kv("pystrument.self_time_ms", round(rnd.random() * 50, 3)),
                kv("pystrument.samples", rnd.randrange(10**6)),
                kv("url.path", f"/items/{rnd.randrange(10**6)}"),
                kv("score", rnd.choice([math.nan, math.inf, -math.inf, 1e300, 5e-324, -0.0, 2.5])),
                kv("pystrument.synthetic", True),
            ]
        )
        for _ in range(_attrs.VOLATILE_AFTER + 300)
    ]
    batches = rows(request(originals), size=500)
    assert [len(b) for b in batches] == [500, 500, 300]
    got = [json.loads(r[12]) for b in batches for r in b.rows]
    assert got == [reference(s) for s in originals]
    assert all(r[11] is True for b in batches for r in b.rows)  # synthetic flag from the cached member
    # Keys with ever new values stopped being cached (doubles after their first value); constant ones still are.
    assert _attrs._keys[b"url.path"].misses == _attrs.VOLATILE_AFTER
    assert _attrs._keys[b"pystrument.samples"].misses == _attrs.VOLATILE_AFTER
    assert any(info.key == "pystrument.self_time_ms" for info in _attrs._double_prefixes.values())
    assert "pystrument.synthetic" in {pair[0] for pair in _attrs._pairs.values()}


def test_span_fields_status_events_and_records() -> None:
    parent = random.randbytes(8)
    server = span(
        [kv("http.method", "post"), kv("http.target", "/orders?id=3"), kv("http.status_code", "503")],
        kind=Span.SPAN_KIND_SERVER,
        name="POST /orders",
        status=Status(code=Status.STATUS_CODE_ERROR, message="upstream\x00 down"),
        events=[Span.Event(time_unix_nano=1_700_000_000_200_000_000, name="retry", attributes=[kv("n", 2)])],
    )
    child = span([], parent_span_id=parent, kind=7, trace_id=server.trace_id)  # unknown kind
    zero_parent = span([], parent_span_id=bytes(8))
    [batch] = rows(request([server, child, zero_parent], service="s" * 300))
    by_id = {r[1]: r for r in batch.rows}
    srow = by_id[server.span_id.hex()]
    assert srow[:6] == (server.trace_id.hex(), server.span_id.hex(), 7, None, "POST /orders", "SERVER")
    assert pg_to_datetime(srow[6]).isoformat() == "2023-11-14T22:13:20.123456+00:00"
    assert srow[7] == pytest.approx(0.5) and srow[8:10] == (2, "upstream down") and len(srow[10]) == 200
    assert json.loads(srow[13]) == [
        {"name": "retry", "timestamp": "2023-11-14T22:13:20.200000+00:00", "attributes": {"n": 2}}
    ]
    crow = by_id[child.span_id.hex()]
    assert crow[3] == parent.hex() and crow[5] == "UNSPECIFIED" and crow[13] == "[]"
    assert by_id[zero_parent.span_id.hex()][3] is None
    # Request records: the SERVER span and the root (zero-parent) span, not the child.
    records = dict(zip(Batch.RECORD_COLUMNS, batch.records, strict=True))
    assert sorted(records["span_id"]) == sorted([server.span_id.hex(), zero_parent.span_id.hex()])
    i = records["span_id"].index(server.span_id.hex())
    assert (records["method"][i], records["path"][i], records["status_code"][i]) == ("POST", "/orders", 503)
    assert records["is_error"][i] is True and records["timestamp"][i] == srow[6]


def test_invalid_spans_are_rejected_with_reasons() -> None:
    good = span([])
    bad = [
        span([], trace_id=bytes(16)),
        span([], trace_id=b"short"),
        span([], span_id=bytes(8)),
        span([], parent_span_id=b"\x01\x02"),
        span([], start_time_unix_nano=0),
    ]
    [batch] = rows(request([good, *bad]))
    assert len(batch) == 1 and batch.rejected == 5
    assert batch.reject_reasons == {
        "invalid_trace_id": 2,
        "invalid_span_id": 1,
        "invalid_parent_span_id": 1,
        "missing_start_time": 1,
    }


def test_bad_bytes_inside_an_attribute_are_a_payload_error() -> None:
    # A KeyValue whose string value is not UTF-8, swapped in at the same length so the outer message still
    # parses: the lite view keeps attributes raw, and the mapper refuses it.
    good_kv = kv("ok", "fine").SerializeToString()
    bad_kv = good_kv[:-4] + b"\xff\xfe\xfd\xfc"
    body = request([span([kv("ok", "fine")])]).replace(good_kv, bad_kv)
    with pytest.raises(Exception):  # noqa: B017 - the generated classes refuse it too
        ExportTraceServiceRequest.FromString(body)
    traces = ProtoTraces(body)
    with pytest.raises(PayloadError, match="UTF-8"):
        list(traces.batches([1], 10))


def test_chunks_split_at_the_size() -> None:
    body = request([span([kv("i", i)]) for i in range(25)])
    assert [len(b) for b in rows(body, size=10)] == [10, 10, 5]


def test_attributes_and_events_per_span_are_capped() -> None:
    from pystrument_collector.ingest._otlp_proto import MAX_ATTRIBUTES, MAX_EVENTS

    many = span(
        [kv(f"k{i}", i) for i in range(MAX_ATTRIBUTES + 500)],
        events=[Span.Event(time_unix_nano=1, name=f"e{i}") for i in range(MAX_EVENTS + 5)],
    )
    [batch] = rows(request([many]))
    [row] = batch.rows
    stored = json.loads(row[12])
    assert stored.pop("pystrument.dropped_attributes_count") == 500  # and said in the partial success (#16)
    assert len(stored) == MAX_ATTRIBUTES and stored[f"k{MAX_ATTRIBUTES - 1}"] == MAX_ATTRIBUTES - 1
    assert "500 attributes beyond the first" in batch.first_error and batch.rejected == 0
    assert len(json.loads(row[13])) == MAX_EVENTS
