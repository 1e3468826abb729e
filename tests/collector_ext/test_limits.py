"""Bounded bodies (413, decompression bombs), overload (503 + Retry-After)."""

from __future__ import annotations

import gzip
import threading
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
    release = threading.Event()
    first: list[int] = []

    def slow_body():
        yield b"{"
        release.wait(10)
        yield b"}"

    def send_slow() -> None:
        r = httpx.post(url, content=slow_body(), headers={"content-type": "application/json", "x-project-key": key})
        first.append(r.status_code)

    t = threading.Thread(target=send_slow)
    t.start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            r = httpx.post(url, content=b"{}", headers={"content-type": "application/json", "x-project-key": key})
            if r.status_code == 503:
                break
            time.sleep(0.05)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "2" and "overloaded" in r.json()["message"]
    finally:
        release.set()
        t.join(10)
    assert first == [200]
    r = httpx.post(url, content=b"{}", headers={"content-type": "application/json", "x-project-key": key})
    assert r.status_code == 200


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
