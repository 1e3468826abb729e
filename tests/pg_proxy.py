"""A loopback TCP proxy in front of the test Postgres, and fixtures that route the app's database through it,
for the tests that take the database away mid-load (``close()``) and bring it back (``open()``)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


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


def running_proxy(database_url: str) -> Iterator[PgProxy]:
    """An open proxy to ``database_url`` for the duration of a fixture."""
    proxy = PgProxy(database_url)
    proxy.open()
    yield proxy
    proxy.stop()


def proxied_settings(database_url: str, proxy: PgProxy, data_dir: Path) -> Any:
    """Server settings whose database URL goes through ``proxy``."""
    from pystrument_collector.settings import Settings
    from sqlalchemy.engine import make_url

    proxied = make_url(database_url).set(host="127.0.0.1", port=proxy.port, query={})
    return Settings(database_url=proxied.render_as_string(hide_password=False), data_dir=data_dir)
