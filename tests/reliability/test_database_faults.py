"""Postgres going away mid-load: 503 + Retry-After while it is down, the real OTLP exporter retries, and
afterwards every exported span is stored. The server reaches Postgres through a loopback TCP proxy that the
test closes (dropping every connection) and reopens, as a restart or failover looks from the server.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult


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


async def test_postgres_down_mid_load_then_back_loses_nothing(
    pg_proxy: PgProxy, live_server: Any, project: tuple[int, str], otlp: Any, count_spans
) -> None:
    key = project[1]
    batches = [otlp.make_spans(10) for _ in range(60)]
    results: list[SpanExportResult] = []

    def export_all() -> None:
        exporter = OTLPSpanExporter(endpoint=live_server.url + "/v1/traces", headers={"x-project-key": key}, timeout=60)
        for spans in batches:
            results.append(exporter.export(spans))
            time.sleep(0.02)
        exporter.shutdown()

    sender = threading.Thread(target=export_all)
    sender.start()
    while len(results) < 10:
        time.sleep(0.01)
    pg_proxy.close()
    down_at = time.monotonic()
    unavailable = 0
    with httpx.Client(timeout=10) as http:
        while time.monotonic() - down_at < 3:
            stats = http.get(live_server.url + "/v1/stats").json()
            unavailable = stats["spans"]["dropped"].get("database_unavailable", {}).get("requests", 0)
            time.sleep(0.1)
    pg_proxy.open()
    sender.join(timeout=120)
    stored = await count_spans()
    print(
        f"\nPostgres down 3 s mid-load: {unavailable} exports answered 503 and retried; "
        f"exported {len(batches) * 10} spans, stored {stored}"
    )
    assert unavailable >= 1, "the outage must have been seen by the receiver"
    assert results == [SpanExportResult.SUCCESS] * len(batches)
    assert stored == len(batches) * 10
