"""Finding 4 (slow bodies with a bogus key took every ingest slot) and finding 11's early 413 that kept the
connection open (the client's next request on it hung)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import ThreadServer, new_project

SLOTS = 4


@pytest.fixture
def small_server(settings: Any, get_free_port: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadServer]:
    monkeypatch.setenv("PYSTRUMENT_MAX_CONCURRENT_EXPORTS", str(SLOTS))
    monkeypatch.setenv("PYSTRUMENT_MAX_BODY_BYTES", "100000")
    with ThreadServer(settings, get_free_port()) as server:
        yield server


def open_slow(port: int, path: str, key: str, length: int = 50_000) -> socket.socket:
    """Headers and the first bytes of a body that never finishes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"X-Project-Key: {key}\r\nContent-Length: {length}\r\n\r\n"
    )
    sock.sendall(head.encode() + b'{"resourceSpans": [')
    return sock


def read_response(sock: socket.socket, seconds: float = 5) -> tuple[bytes, bool]:
    """(what the server sent, whether it then closed the connection) within ``seconds``."""
    sock.settimeout(seconds)
    data = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return data, False
        if not chunk:
            return data, True
        data += chunk
    return data, False


def test_a_bogus_key_is_refused_before_the_body(small_server: ThreadServer) -> None:
    key = new_project(small_server.url)
    slow = [open_slow(small_server.port, "/v1/traces", "proj_bogus") for _ in range(SLOTS * 3)]
    slow += [open_slow(small_server.port, "/api/v1/performance/collect", "proj_bogus") for _ in range(SLOTS)]
    try:
        for sock in slow:
            data, closed = read_response(sock)
            assert data.startswith(b"HTTP/1.1 401"), data[:200]
            assert b"connection: close" in data.lower() and closed
        ok = httpx.post(
            small_server.url + "/v1/traces", json={"resourceSpans": []}, headers={"X-Project-Key": key}, timeout=5
        )
        assert ok.status_code == 200, ok.text
    finally:
        for sock in slow:
            sock.close()


def test_keyless_slow_bodies_leave_slots_for_keyed_exporters(small_server: ThreadServer) -> None:
    key = new_project(small_server.url)
    slow = []
    for _ in range(SLOTS):
        sock = socket.create_connection(("127.0.0.1", small_server.port), timeout=5)
        sock.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50000\r\n\r\n{"
        )
        slow.append(sock)
    try:
        time.sleep(0.3)
        ok = httpx.post(
            small_server.url + "/v1/traces", json={"resourceSpans": []}, headers={"X-Project-Key": key}, timeout=5
        )
        assert ok.status_code == 200, ok.text
    finally:
        for sock in slow:
            sock.close()


@pytest.mark.parametrize("path", ["/v1/traces", "/api/v1/performance/collect"])
def test_an_early_413_closes_the_connection(small_server: ThreadServer, path: str) -> None:
    key = new_project(small_server.url)
    sock = open_slow(small_server.port, path, key, length=10_000_000)
    try:
        data, closed = read_response(sock)
        assert data.startswith(b"HTTP/1.1 413"), data[:200]
        assert b"connection: close" in data.lower() and closed
    finally:
        sock.close()
    # a body that grows past the limit while streaming (chunked, no Content-Length)
    sock = socket.create_connection(("127.0.0.1", small_server.port), timeout=5)
    try:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Project-Key: {key}\r\n"
            f"Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"x" * 60_000
        for _ in range(2):
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        data, closed = read_response(sock)
        assert data.startswith(b"HTTP/1.1 413"), data[:200]
        assert b"connection: close" in data.lower() and closed
    finally:
        sock.close()
