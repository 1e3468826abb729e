"""Hostile input: property-based fuzzing of the OTLP protobuf and JSON decoders and of the HTTP endpoints.

Most cases run against the decoders directly (fast); a few thousand go through the real app over loopback HTTP.
Every case must end in success or a 4xx/``PayloadError`` with a message: never a crash, never a 5xx.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import msgspec
from google.rpc.status_pb2 import Status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pystrument_collector.ingest import JsonTraces, PayloadError, ProtoTraces

CASES: dict[str, int] = {}
FUZZ = settings(
    deadline=None,
    database=None,
    derandomize=False,
    suppress_health_check=list(HealthCheck),
)

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(["", "0" * 32, "f" * 16, "SPAN_KIND_SERVER", "STATUS_CODE_ERROR", "\x00", "\ud7ff", "1e999"])
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def _valid_proto(otlp: Any) -> bytes:
    return otlp.proto_body(otlp.make_spans(4, attrs={"http.request.header.authorization": ("Bearer x",)}))


def _valid_json(otlp: Any) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    doc = MessageToDict(ExportTraceServiceRequest.FromString(_valid_proto(otlp)))
    # OTLP/JSON ids are hex, not protobuf-JSON's base64.
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for field in ("traceId", "spanId", "parentSpanId"):
                    if field in span:
                        import base64

                        span[field] = base64.b64decode(span[field]).hex()
    return doc


@st.composite
def mutated_bytes(draw: st.DrawFn, base: bytes) -> bytes:
    """A valid protobuf with bit flips, truncation, insertions or a splice of random bytes."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "splice", "set"]))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "splice":
            end = draw(st.integers(pos, len(data)))
            data[pos:end] = draw(st.binary(max_size=16))
        else:
            data[pos] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0x0A, 0x12, 0x1A, 0x22]))
    return bytes(data)


_PATHS: dict[int, list[tuple[Any, ...]]] = {}
_encoder, _decoder = msgspec.json.Encoder(), msgspec.json.Decoder()


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated_json(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    """Valid OTLP/JSON with some fields (at any depth) replaced by values of random type."""
    doc = _decoder.decode(_encoder.encode(base))  # a fast deep copy
    paths = _PATHS.get(id(base)) or _PATHS.setdefault(id(base), _paths(base))
    for _ in range(draw(st.integers(1, 5))):
        path = draw(st.sampled_from(paths))
        value = draw(JSON_VALUES)
        if not path:
            return value
        parent = doc
        try:
            for part in path[:-1]:
                parent = parent[part]
            parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    return doc


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")


def _decode_fully(traces: Any) -> None:
    """Everything the receiver does with a body before it touches the database."""
    keys = traces.resource_keys()
    traces.span_count()
    for batch in traces.batches([1] * len(keys), 50):
        for row in batch.rows:
            assert row is not None


def _ok_or_payload_error(decoder: type, body: bytes) -> None:
    try:
        _decode_fully(decoder(body))
    except PayloadError as exc:
        assert str(exc), "a rejected body must say why"


def test_protobuf_decoder_never_crashes(otlp: Any) -> None:
    base = _valid_proto(otlp)
    _decode_fully(ProtoTraces(base))

    @settings(FUZZ, max_examples=4900)
    @given(st.binary(max_size=300) | mutated_bytes(base))
    def case(body: bytes) -> None:
        CASES["protobuf decoder"] = CASES.get("protobuf decoder", 0) + 1
        _ok_or_payload_error(ProtoTraces, body)

    case()
    print(f"fuzz cases: {CASES}")
    assert CASES["protobuf decoder"] >= 4900


def test_json_decoder_never_crashes(otlp: Any) -> None:
    base = _valid_json(otlp)
    _decode_fully(JsonTraces(_dumps(base)))

    @settings(FUZZ, max_examples=3000)
    @given(mutated_json(base) | JSON_VALUES | st.binary(max_size=200).map(lambda b: b"\x00" + b))
    def case(doc: Any) -> None:
        CASES["json decoder"] = CASES.get("json decoder", 0) + 1
        body = doc if isinstance(doc, bytes) else _dumps(doc)
        _ok_or_payload_error(JsonTraces, body)

    case()
    print(f"fuzz cases: {CASES}")
    assert CASES["json decoder"] >= 3000


SEED_REPORT = {
    "trace_id": "trace_fuzz",
    "request_info": {
        "method": "GET",
        "path": "/a?token=x",
        "headers": {"Authorization": "Bearer s"},
        "status_code": 200,
    },
    "performance_metrics": {"total_duration": 0.5, "cpu_time": 0.1, "memory_usage": {"peak_mb": 4}},
    "function_calls": [{"function": "f", "module": "m", "duration": 0.2, "children": [{"name": "g", "duration": 0.1}]}],
}


def _message(r: httpx.Response) -> str:
    """The human-readable reason in any of the receiver's error bodies."""
    ctype = r.headers.get("content-type", "")
    if "protobuf" in ctype:
        return str(Status.FromString(r.content).message)
    doc = r.json()
    return str(doc.get("msg") or doc.get("message") or doc.get("detail") or "")


def _check(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        assert _message(r), f"{r.status_code} without a message: {r.content[:200]!r}"


async def test_http_endpoints_never_5xx(live_server: Any, project: tuple[int, str], otlp: Any) -> None:
    key = project[1]
    proto, doc = _valid_proto(otlp), _valid_json(otlp)
    http = httpx.Client(base_url=live_server.url, timeout=30)

    @settings(FUZZ, max_examples=700)
    @given(st.binary(max_size=200) | mutated_bytes(proto), st.sampled_from(["identity", "gzip", "deflate", "br"]))
    def otlp_proto(body: bytes, encoding: str) -> None:
        CASES["HTTP /v1/traces protobuf"] = CASES.get("HTTP /v1/traces protobuf", 0) + 1
        headers = {"content-type": "application/x-protobuf", "x-project-key": key}
        if encoding != "identity":
            headers["content-encoding"] = encoding  # a body that is not actually compressed: must be a 4xx
        _check(http.post("/v1/traces", content=body, headers=headers))

    @settings(FUZZ, max_examples=700)
    @given(mutated_json(doc) | JSON_VALUES)
    def otlp_json(body: Any) -> None:
        CASES["HTTP /v1/traces json"] = CASES.get("HTTP /v1/traces json", 0) + 1
        headers = {"content-type": "application/json", "x-project-key": key}
        _check(http.post("/v1/traces", content=_dumps(body), headers=headers))

    @settings(FUZZ, max_examples=700)
    @given(mutated_json(SEED_REPORT) | JSON_VALUES, st.sampled_from([key, "", "pk_nope", "pk nope; with spaces"]))
    def collect(body: Any, project_key: str) -> None:
        CASES["HTTP collect"] = CASES.get("HTTP collect", 0) + 1
        headers = {"content-type": "application/json"}
        if project_key:
            headers["x-project-key"] = project_key
        _check(http.post("/api/v1/performance/collect", content=_dumps(body), headers=headers))

    with http:
        otlp_proto()
        otlp_json()
        collect()
        # The valid inputs still go through after all that.
        r = http.post(
            "/v1/traces", content=proto, headers={"content-type": "application/x-protobuf", "x-project-key": key}
        )
        assert r.status_code == 200
    print(f"fuzz cases: {CASES}")
    assert all(CASES[k] >= 700 for k in ("HTTP /v1/traces protobuf", "HTTP /v1/traces json", "HTTP collect"))
    print(f"fuzz total: {sum(CASES.values())}")
