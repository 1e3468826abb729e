"""Bounded memory under a 1 GiB gzip bomb (a real ``pystrument serve`` process), and slow clients.

The 413 behaviour itself is covered by tests/collector_ext/test_limits.py; this measures the server's peak RSS.
"""

from __future__ import annotations

import socket
import time
import zlib
from typing import Any

import httpx
from google.rpc.status_pb2 import Status

GIB = 1 << 30
MIB = 1 << 20


def gzip_bomb(size: int) -> bytes:
    """``size`` zero bytes, gzip-compressed in chunks (never held uncompressed)."""
    z = zlib.compressobj(1, zlib.DEFLATED, 31)  # level 1: 1 GiB -> ~4.5 MiB in ~3 s
    chunk = bytes(4 * MIB)
    parts = [z.compress(chunk) for _ in range(size // len(chunk))]
    parts.append(z.flush())
    return b"".join(parts)


async def test_gzip_bomb_is_413_in_bounded_memory(serve: Any, project: tuple[int, str], otlp: Any, count_spans) -> None:
    server = serve()
    key = project[1]
    headers = {"content-type": "application/x-protobuf", "x-project-key": key}
    # Warm the server up with real traffic first, so the baseline includes its normal working set.
    body = otlp.proto_body(otlp.make_spans(50))
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for _ in range(20):
            assert http.post("/v1/traces", content=body, headers=headers).status_code == 200
        baseline = server.peak_rss_kib()
        bomb = gzip_bomb(GIB)
        assert len(bomb) < 8 * MIB
        started = time.monotonic()
        for _ in range(2):
            r = http.post("/v1/traces", content=bomb, headers={**headers, "content-encoding": "gzip"})
            assert r.status_code == 413 and "decompressed" in Status.FromString(r.content).message
        elapsed = time.monotonic() - started
        peak = server.peak_rss_kib()
        # Still serving normally afterwards.
        assert http.post("/v1/traces", content=body, headers=headers).status_code == 200
    growth_mib = (peak - baseline) / 1024
    print(
        f"\ngzip bomb 1 GiB ({len(bomb)} B compressed) x2: 413 in {elapsed:.1f}s; "
        f"server peak RSS {baseline / 1024:.0f} -> {peak / 1024:.0f} MiB (+{growth_mib:.0f} MiB)"
    )
    # The default body limit is 64 MiB after decompression: the peak grows by about that, never by the bomb.
    assert growth_mib < 160, f"peak RSS grew {growth_mib:.0f} MiB under a 1 GiB bomb"
    assert await count_spans() == 50  # the same 50 spans each time: stored once


async def test_slow_client_does_not_block_others(live_server: Any, project: tuple[int, str], otlp: Any) -> None:
    """A client that sends headers and then trickles its body holds only its own connection."""
    key = project[1]
    body = otlp.proto_body(otlp.make_spans(3))
    slow = socket.create_connection(("127.0.0.1", live_server.port), timeout=30)
    head = (
        f"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
        f"X-Project-Key: {key}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    try:
        slow.sendall(head.encode())
        with httpx.Client(base_url=live_server.url, timeout=5) as http:
            for i in range(len(body)):
                slow.sendall(body[i : i + 1])
                if i % max(1, len(body) // 10) == 0:
                    t0 = time.monotonic()
                    r = http.post(
                        "/v1/traces",
                        content=body,
                        headers={"content-type": "application/x-protobuf", "x-project-key": key},
                    )
                    assert r.status_code == 200 and time.monotonic() - t0 < 2
                time.sleep(0.002)
        assert slow.recv(65536).startswith(b"HTTP/1.1 200")
    finally:
        slow.close()
