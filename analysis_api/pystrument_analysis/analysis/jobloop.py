"""Analysis jobs run off the server's event loop: in one worker thread with its own loop and database engine.

Reading a trace and running the rules is CPU work proportional to the trace; on the server's loop a wide trace
would hold up ingest, the API and ``/health`` (and SIGTERM) for as long as it runs. Here it only shares the
GIL, which Python hands back every few milliseconds. The worker still claims, renews and finishes jobs on the
server's loop; cancelling the awaiting task (timeout, shutdown) cancels the job in the thread at its next await.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from pystrument_collector.db import Database

logger = logging.getLogger(__name__)

T = TypeVar("T")
POOL_SIZE = 2
STOP_SECONDS = 5.0


class JobLoop:
    """A daemon thread running an event loop, with a :class:`Database` on ``url`` that belongs to that loop."""

    def __init__(self, url: str, name: str = "pystrument-analysis") -> None:
        self.url = url
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._db: Database | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._loop is None:
            raise RuntimeError("the analysis thread did not start")

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._db = Database(self.url, pool_size=POOL_SIZE)
        self._db.start_sync()
        self._loop = loop
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(self._db.stop())
            loop.close()

    async def run(self, work: Callable[[Database], Coroutine[Any, Any, T]]) -> T:
        """``await work(db)`` in the thread; cancelling the caller cancels it there."""
        self.start()
        assert self._loop is not None and self._db is not None
        future = asyncio.run_coroutine_threadsafe(work(self._db), self._loop)
        return await asyncio.wrap_future(future)

    def stop(self) -> None:
        """Cancel what runs in the thread, close its database engine and end it (blocking, bounded)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(STOP_SECONDS)
        if thread.is_alive():
            logger.warning("analysis thread still busy after %.0f s; leaving it (daemon)", STOP_SECONDS)
        self._loop = self._thread = None
