"""Bounded bodies (413, decompression bombs), overload (503 + Retry-After)."""

from __future__ import annotations

import gzip
import socket
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator

import httpx
import pytest
from google.rpc.status_pb2 import Status
from pystrument_collector.ingest import PayloadTooLarge
from pystrument_collector.receiver._body import read_body

LIMIT = 100_000
PROTOBUF = {"content-type": "application/x-protobuf"}


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Must come before ``live_server`` in a test's arguments: the app reads these when it is built."""
    monkeypatch.setenv("PYSTRUMENT_MAX_BODY_BYTES", str(LIMIT))
    monkeypatch.setenv("PYSTRUMENT_MAX_CONCURRENT_EXPORTS", "1")


async def test_oversized_bodies_are_413(small_limits, live_server, project, rows) -> None:
    url, key = live_server.url + "/v1/traces", project[1]
    r = httpx.post(url, content=b"\x00" * (LIMIT + 1), headers={**PROTOBUF, "x-project-key": key})
    assert r.status_code == 413
    assert "limit" in Status.FromString(r.content).message
    bomb = gzip.compress(b"\x00" * (20 * LIMIT))
    assert len(bomb) < LIMIT
    r = httpx.post(url, content=bomb, headers={**PROTOBUF, "content-encoding": "gzip", "x-project-key": key})
    assert r.status_code == 413 and "decompressed" in Status.FromString(r.content).message
    # Under the limit still works (an empty export is a valid request).
    r = httpx.post(
        url, content=gzip.compress(b""), headers={**PROTOBUF, "content-encoding": "gzip", "x-project-key": key}
    )
    assert r.status_code == 200
    stats = httpx.get(live_server.url + "/v1/stats").json()
    assert stats["spans"]["dropped"]["too_large"]["requests"] == 2
    assert stats["requests"]["413"] == 2


async def test_too_many_concurrent_exports_is_503_with_retry_after(small_limits, live_server, project) -> None:
    url, key = live_server.url + "/v1/traces", project[1]
    # One export held open: its headers and half its body sent over a raw socket, the rest later.
    slow = socket.create_connection(("127.0.0.1", live_server.port), timeout=30)
    head = (
        f"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-Project-Key: {key}\r\nContent-Length: 2\r\n\r\n{{"
    )
    try:
        slow.sendall(head.encode())
        with httpx.Client(timeout=30) as probe:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                r = probe.post(url, content=b"{}", headers={"content-type": "application/json", "x-project-key": key})
                if r.status_code == 503:
                    break
                time.sleep(0.05)
            assert r.status_code == 503
            assert r.headers["retry-after"] == "2" and "overloaded" in r.json()["message"]
            slow.sendall(b"}")
            assert slow.recv(65536).startswith(b"HTTP/1.1 200")
            r = probe.post(url, content=b"{}", headers={"content-type": "application/json", "x-project-key": key})
            assert r.status_code == 200
    finally:
        slow.close()


class _StreamingRequest:
    """Just what ``read_body`` uses of a Litestar request: headers and an async chunk stream."""

    def __init__(self, data: bytes, encoding: str) -> None:
        self.headers = {"content-encoding": encoding}
        self._data = data

    async def stream(self) -> AsyncIterator[bytes]:
        for i in range(0, len(self._data), 65536):
            yield self._data[i : i + 65536]


async def test_decompression_bomb_is_refused_in_bounded_memory() -> None:
    bomb = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    data = bomb.compress(b"\x00" * (128 * 1024 * 1024)) + bomb.flush()
    assert len(data) < 1024 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge):
            await read_body(_StreamingRequest(data, "gzip"), 1024 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024
    ok = zlib.compress(b"x" * 5000)
    assert await read_body(_StreamingRequest(ok, "deflate"), 1024 * 1024) == b"x" * 5000


def _padded_export(size: int) -> bytes:
    """A valid, empty ExportTraceServiceRequest of exactly ``size`` bytes (an unknown field as padding)."""
    for length in range(size, 0, -1):
        head = b"\x7a" + _varint(length)
        if len(head) + length == size:
            return head + b"\x00" * length
    raise AssertionError(size)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


@pytest.fixture
def small_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Must come before ``live_server``: bodies up to 100 kB, 1.2 MB of request memory (protobuf counts 8x)."""
    monkeypatch.setenv("PYSTRUMENT_MAX_BODY_BYTES", "100000")
    monkeypatch.setenv("PYSTRUMENT_MAX_INFLIGHT_BYTES", "1200000")


async def test_memory_budget_is_503_with_retry_after_until_released(small_budget, live_server, project) -> None:
    url, key = live_server.url + "/v1/traces", project[1]
    held = _padded_export(90_000)
    slow = socket.create_connection(("127.0.0.1", live_server.port), timeout=30)
    head = (
        f"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
        f"X-Project-Key: {key}\r\nContent-Length: {len(held)}\r\n\r\n"
    )
    probe_body = _padded_export(80_000)
    headers = {**PROTOBUF, "x-project-key": key}
    try:
        slow.sendall(head.encode() + held[:80_000])  # 80 kB (640 kB counted) held by the server, 10 kB to come
        with httpx.Client(timeout=30) as probe:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                r = probe.post(url, content=probe_body, headers=headers)
                if r.status_code == 503:
                    break
                time.sleep(0.05)
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert "memory budget" in Status.FromString(r.content).message
            slow.sendall(held[80_000:])
            assert slow.recv(65536).startswith(b"HTTP/1.1 200")
            assert probe.post(url, content=probe_body, headers=headers).status_code == 200
            # JSON counts 16x: 80 kB of it can never fit in 1.2 MB, so that is 413, not a retry.
            r = probe.post(url, content=b" " * 78_000 + b"{}", headers={**headers, "content-type": "application/json"})
            assert r.status_code == 413 and "memory budget" in r.json()["message"]
            stats = probe.get(live_server.url + "/v1/stats").json()
    finally:
        slow.close()
    assert stats["spans"]["dropped"]["overloaded"]["requests"] >= 1
    assert stats["memory"]["limit"] == 1_200_000 and stats["memory"]["inflight_bytes"] == 0
    assert 1_200_000 >= stats["memory"]["peak_inflight_bytes"] >= 8 * 80_000


def test_budget_smaller_than_a_body_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from pystrument_collector.receiver._body import max_inflight_bytes

    monkeypatch.setenv("PYSTRUMENT_MAX_INFLIGHT_BYTES", "1000")
    with pytest.raises(ValueError, match="PYSTRUMENT_MAX_INFLIGHT_BYTES"):
        max_inflight_bytes(100_000)
