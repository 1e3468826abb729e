"""The pystrument server for the demo: the same app as ``pystrument serve``, under uvicorn in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import uvicorn
from pystrument_collector.settings import Settings

from pystrument_analysis.app import create_app


class EmbeddedServer:
    """``create_app(settings)`` under uvicorn in a background thread; the lifespan starts the database."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = f"http://{settings.host}:{settings.port}"
        config = uvicorn.Config(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="pystrument-server", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 20.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=timeout)


def wait_healthy(
    url: str, timeout: float, cancelled: Callable[[], bool], alive: Callable[[], bool] = lambda: True
) -> None:
    """Poll ``GET /health`` until it answers 200; raise with the reason when it cannot."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if cancelled():
            raise InterruptedError("stopped while waiting for the server")
        if not alive():
            raise RuntimeError(f"the server stopped before it became healthy ({last})")
        try:
            response = httpx.get(url + "/health", timeout=2)
            if response.status_code == 200:
                return
            last = f"/health answered {response.status_code}"
        except httpx.HTTPError as exc:
            last = str(exc) or type(exc).__name__
        time.sleep(0.2)
    raise RuntimeError(f"{url}/health did not answer 200 within {timeout:.0f} s ({last})")
