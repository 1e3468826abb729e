"""Database unreachable → 503 with Retry-After (never 401 or 500); ingest resumes when it is back.

The live server reaches Postgres through a loopback TCP proxy that the test closes and reopens.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind


class PgProxy:
    """Forwards a loopback TCP port to Postgres (TCP or unix socket); ``close()`` drops every connection."""

    def __init__(self, target_url: str) -> None:
        from sqlalchemy.engine import make_url

        u = make_url(target_url)
        host = u.query.get("host") or u.host or "127.0.0.1"
        port = u.port or 5432
        self._unix = f"{host}/.s.PGSQL.{port}" if str(host).startswith("/") else None
        self._tcp = (host, port)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._unix:
            up_reader, up_writer = await asyncio.open_unix_connection(self._unix)
        else:
            up_reader, up_writer = await asyncio.open_connection(*self._tcp)
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in self._writers:
            w.close()
        self._writers.clear()

    def open(self) -> None:
        self._call(self._open())

    def close(self) -> None:
        self._call(self._close())

    def stop(self) -> None:
        self.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def pg_proxy(database_url: str) -> Iterator[PgProxy]:
    proxy = PgProxy(database_url)
    proxy.open()
    yield proxy
    proxy.stop()


@pytest.fixture
def settings(database_url: str, pg_proxy: PgProxy, tmp_path: Path) -> object:
    """The app's database URL goes through the proxy."""
    from pystrument_collector.settings import Settings
    from sqlalchemy.engine import make_url

    u = make_url(database_url)
    proxied = u.set(host="127.0.0.1", port=pg_proxy.port, query={})
    return Settings(database_url=proxied.render_as_string(hide_password=False), data_dir=tmp_path)


def _body() -> bytes:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("GET /", kind=SpanKind.SERVER):
        pass
    return encode_spans(memory.get_finished_spans()).SerializeToString()


async def test_database_down_is_503_then_recovers(pg_proxy, live_server, make_project, rows) -> None:
    import httpx
    from google.rpc.status_pb2 import Status

    _, cached_key = await make_project("cached")
    _, fresh_key = await make_project("fresh")
    url = live_server.url + "/v1/traces"

    def send(key: str) -> httpx.Response:
        headers = {"content-type": "application/x-protobuf", "x-project-key": key}
        return httpx.post(url, content=_body(), headers=headers, timeout=30)

    assert send(cached_key).status_code == 200
    pg_proxy.close()
    for key in (cached_key, fresh_key):  # a cached key fails at the write, an uncached one at the lookup
        r = send(key)
        assert r.status_code == 503, r.content
        assert int(r.headers["retry-after"]) > 0
        assert Status.FromString(r.content).code == 14
    pg_proxy.open()
    assert send(fresh_key).status_code == 200
    assert len(await rows("spans")) == 2
    stats = httpx.get(live_server.url + "/v1/stats").json()
    assert stats["spans"]["dropped"]["database_unavailable"] == {"requests": 2, "spans": 2}
