"""Finding 2: distinct 1 MiB attribute values piled up in the ingest attribute caches (RSS 173 MB -> 1.47 GB).

The caches are now bounded in bytes: an attribute over ``MAX_CACHED_ATTRIBUTE_BYTES`` is never kept.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from pystrument_collector.ingest import _attrs
from pystrument_collector.ingest._redact import _key_cache, is_sensitive_key

from .conftest import ProcessServer, new_project

MIB = 1024 * 1024


def export(round_: int, values: int = 20) -> bytes:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = os.urandom(16)
    span.span_id = os.urandom(8)
    span.name = "big"
    span.kind = 1
    span.start_time_unix_nano = span.end_time_unix_nano = 1_700_000_000_000_000_000
    import time

    span.start_time_unix_nano = time.time_ns() - 1_000_000
    span.end_time_unix_nano = time.time_ns()
    for i in range(values):
        filler = f"{round_}-{i}-".encode() * 10
        text = (filler + os.urandom(MIB // 2).hex().encode())[:MIB].decode()
        span.attributes.append(KeyValue(key=f"big.{i}", value=AnyValue(string_value=text)))
    return request.SerializeToString()


def test_big_attributes_are_not_cached() -> None:
    before = dict(_attrs._members)
    raw = KeyValue(key="big", value=AnyValue(string_value="x" * 100_000)).SerializeToString()
    assert _attrs._decode(raw)[2] == "x" * 100_000
    assert raw not in _attrs._members and raw not in _attrs._pairs
    long_key = KeyValue(key="k" * 10_000, value=AnyValue(int_value=1)).SerializeToString()
    _attrs._decode(long_key)
    assert long_key[2:10_002] not in _attrs._keys
    is_sensitive_key("y" * 10_000)
    assert "y" * 10_000 not in _key_cache
    assert _attrs._cached_bytes[0] <= _attrs.MAX_CACHED_BYTES
    assert set(before) <= set(_attrs._members) or len(_attrs._members) < len(before)


def test_1mib_attribute_attack_leaves_rss_within_100_mb(database_url: str, tmp_path: Path, get_free_port: Any) -> None:
    with ProcessServer(database_url, tmp_path, get_free_port()) as server:
        key = new_project(server.url)
        headers = {"Content-Type": "application/x-protobuf", "X-Project-Key": key}
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
            for i in range(2):  # warm-up: code paths, pools, first allocations
                assert http.post("/v1/traces", content=export(1000 + i, values=2)).status_code == 200
            baseline = server.rss_bytes()
            for attack in range(2):
                for i in range(10):
                    r = http.post("/v1/traces", content=export(attack * 10 + i))
                    assert r.status_code == 200, r.text
                grown = server.rss_bytes() - baseline
                print(f"after {attack + 1} x 10 exports of 20 distinct 1 MiB values: RSS +{grown / MIB:.0f} MB")
                assert grown < 100 * MIB, f"RSS grew by {grown / MIB:.0f} MB"
