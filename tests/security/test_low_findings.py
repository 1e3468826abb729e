"""Finding 11 (kvlist depth parity, 1M attributes, span ids reused across days) and finding 9 (500s on deep
JSON, absurd numbers and dates, ``/schema/openapi.json?token=``)."""

from __future__ import annotations

import os
import time
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from pystrument_collector.ingest._attrs import TOO_DEEP

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def varint(n: int) -> bytes:
    out = b""
    while True:
        low, n = n & 0x7F, n >> 7
        if not n:
            return out + bytes([low])
        out += bytes([low | 0x80])


def deep_kv(depth: int) -> bytes:
    """A KeyValue ``deep`` whose value is ``depth`` nested kvlists around ``"x"``, serialized by hand (the
    protobuf library itself refuses to build it past its recursion limit)."""
    value = AnyValue(string_value="x").SerializeToString()
    for _ in range(depth):
        kv = b"\x0a\x01k\x12" + varint(len(value)) + value
        kvlist = b"\x0a" + varint(len(kv)) + kv
        value = b"\x32" + varint(len(kvlist)) + kvlist
    return b"\x0a\x04deep\x12" + varint(len(value)) + value


def deep_json(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"stringValue": "x"}
    for _ in range(depth):
        value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    return {"key": "deep", "value": value}


def span_bytes(trace: bytes, span: bytes, start: int, attributes: list[bytes]) -> bytes:
    """An ExportTraceServiceRequest with one span, its attributes given serialized (appended as raw fields)."""
    request = ExportTraceServiceRequest()
    s = request.resource_spans.add().scope_spans.add().spans.add()
    s.trace_id, s.span_id, s.name, s.kind = trace, span, "GET /x", 2
    s.start_time_unix_nano, s.end_time_unix_nano = start, start + 10**6
    head = request.SerializeToString()
    # the span is the innermost message: re-encode the three length prefixes with the extra attribute fields
    extra = b"".join(b"\x4a" + varint(len(a)) + a for a in attributes)
    span_msg = s.SerializeToString() + extra
    scope = b"\x12" + varint(len(span_msg)) + span_msg
    resource = b"\x12" + varint(len(scope)) + scope
    assert head  # (built above only to validate the fields)
    return b"\x0a" + varint(len(resource)) + resource


async def new_key(client: Any) -> str:
    return str((await client.post("/api/v1/projects", json={"name": "low"})).json()["data"]["project_key"])


async def detail(client: Any, key: str, trace: str) -> dict[str, Any]:
    r = await client.get(f"/api/v1/performance/records/{trace}", params={"project_key": key})
    assert r.status_code == 200, r.text
    return dict(r.json()["data"])


async def test_a_50_deep_kvlist_is_stored_alike_from_protobuf_and_json(client: Any) -> None:
    key = await new_key(client)
    now = time.time_ns()
    t1, t2 = os.urandom(16), os.urandom(16)
    body = span_bytes(t1, os.urandom(8), now, [deep_kv(50)])
    r = await client.post("/v1/traces", content=body, headers={**PROTOBUF, "X-Project-Key": key})
    assert r.status_code == 200, r.content
    span = {"traceId": t2.hex(), "spanId": os.urandom(8).hex(), "name": "GET /x", "kind": 2,
            "startTimeUnixNano": str(now), "endTimeUnixNano": str(now + 10**6),
            "attributes": [deep_json(50)]}  # fmt: skip
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    r = await client.post("/v1/traces", json=doc, headers={"X-Project-Key": key})
    assert r.status_code == 200, r.text
    from_proto = (await detail(client, key, t1.hex()))["spans"][0]["attributes"]["deep"]
    from_json = (await detail(client, key, t2.hex()))["spans"][0]["attributes"]["deep"]
    assert from_proto == from_json
    assert TOO_DEEP in str(from_proto)


async def test_a_million_attributes_keep_the_record_and_say_so(client: Any) -> None:
    key = await new_key(client)
    trace = os.urandom(16)
    filler = [KeyValue(key=f"a{i}", value=AnyValue(int_value=i)).SerializeToString() for i in range(1_000_000)]
    path = KeyValue(key="url.path", value=AnyValue(string_value="/kept/path")).SerializeToString()
    body = span_bytes(trace, os.urandom(8), time.time_ns(), [*filler, path])
    r = await client.post("/v1/traces", content=body, headers={**PROTOBUF, "X-Project-Key": key})
    assert r.status_code == 200, r.content
    answer = ExportTraceServiceResponse.FromString(r.content)
    assert answer.partial_success.rejected_spans == 0
    assert "999000 attributes beyond the first 1000 were dropped" in answer.partial_success.error_message
    data = await detail(client, key, trace.hex())
    assert data["record"]["request_path"] == "/kept/path"
    assert data["spans"][0]["attributes"]["pystrument.dropped_attributes_count"] == 999_000


async def test_a_span_id_reused_on_another_day_is_stored_once(client: Any) -> None:
    key = await new_key(client)
    trace, span = os.urandom(16).hex(), os.urandom(8).hex()
    now = time.time_ns()

    def doc(start: int) -> dict[str, Any]:
        return {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": trace, "spanId": span, "name": "GET /d",
                "kind": 2, "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 10**6)}]}]}]}  # fmt: skip

    assert (await client.post("/v1/traces", json=doc(now), headers={"X-Project-Key": key})).json() == {}
    again = await client.post("/v1/traces", json=doc(now - 3 * 86_400 * 10**9), headers={"X-Project-Key": key})
    assert again.json()["partialSuccess"]["rejectedSpans"] == "1", again.text
    assert "stored already with another start time" in again.json()["partialSuccess"]["errorMessage"]
    assert (await client.post("/v1/traces", json=doc(now), headers={"X-Project-Key": key})).json() == {}  # a retry
    assert len((await detail(client, key, trace))["spans"]) == 1


async def test_deep_json_is_a_400_in_the_right_format(client: Any) -> None:
    key = await new_key(client)
    deep = b'{"resourceSpans":' + b"[" * 5000 + b"]" * 5000 + b"}"
    as_json = {"Content-Type": "application/json", "X-Project-Key": key}
    r = await client.post("/v1/traces", content=deep, headers=as_json)
    assert r.status_code == 400 and r.json()["code"] == 3 and "nested too deeply" in r.json()["message"], r.text
    r = await client.post("/api/v1/performance/collect", content=deep, headers={"Content-Type": "application/json",
                                                                               "X-Project-Key": key})  # fmt: skip
    assert r.status_code == 400 and r.json()["code"] == 40001, r.text
    body = b'{"name":' + b"[" * 5000 + b"]" * 5000 + b"}"
    r = await client.post("/api/v1/projects", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == 40001, r.text
    value = '{"stringValue": "x"}'
    for _ in range(400):  # by hand: JSON encoders refuse this depth
        value = '{"kvlistValue": {"values": [{"key": "k", "value": ' + value + "}]}}"
    nested = (
        '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "'
        + os.urandom(16).hex()
        + '", "spanId": "'
        + os.urandom(8).hex()
        + '", "name": "n", "startTimeUnixNano": "'
        + str(time.time_ns())
        + '", "attributes": [{"key": "deep", "value": '
        + value
        + "}]}]}]}]}"
    )
    r = await client.post("/v1/traces", content=nested, headers={"Content-Type": "application/json",
                                                                  "X-Project-Key": key})  # fmt: skip
    assert r.status_code in (200, 400), r.text  # stored truncated, or refused as too deep: never a 500
    assert r.status_code == 400 or r.json() == {}


async def test_dates_out_of_range_are_a_400(client: Any) -> None:
    key = await new_key(client)
    for path in ("stats", "functions", "routes/differential", "records"):
        for end in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"):
            for name in ("start", "end"):
                params = {"project_key": key, "route": "/x", name: end}
                r = await client.get(f"/api/v1/performance/{path}", params=params)
                assert r.status_code == 400 and r.json()["code"] == 40001, (path, name, end, r.text)


async def test_schema_with_a_token_parameter(client: Any) -> None:
    r = await client.get("/schema/openapi.json", params={"token": "x" * 40})
    assert r.status_code == 200 and r.json()["openapi"].startswith("3.")
