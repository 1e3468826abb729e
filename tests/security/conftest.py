"""Fixtures for the security regressions of issue #16: the real server on loopback, in a thread or its own process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

TOKEN = "security-test-token-0123456789abcdefghij"


def wait_healthy(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not become healthy in {seconds} s")


class ThreadServer:
    """``create_app(settings, api_token=token)`` under uvicorn in a thread, on a free loopback port."""

    def __init__(self, settings: Any, port: int, token: str | None = None) -> None:
        import uvicorn
        from pystrument_analysis.app import create_app

        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        config = uvicorn.Config(
            create_app(settings, api_token=token), host="127.0.0.1", port=port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        wait_healthy(self.url, 30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


class ProcessServer:
    """``pystrument serve`` in its own process (its RSS and event loop are its own), stopped with SIGTERM."""

    def __init__(self, database_url: str, data_dir: Path, port: int, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = data_dir / f"server-{port}.log"
        self.env = {
            **os.environ,
            "PYSTRUMENT_DATABASE_URL": database_url,
            "PYSTRUMENT_RETENTION_DAYS": "0",
            **(env or {}),
        }
        if "PYSTRUMENT_API_TOKEN" not in (env or {}):
            self.env.pop("PYSTRUMENT_API_TOKEN", None)
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ProcessServer:
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pystrument_analysis.cli", "serve", "--port", str(self.port),
                 "--data-dir", str(self.data_dir)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            wait_healthy(self.url, 60)
        except RuntimeError:
            self.__exit__()
            raise RuntimeError(self.log.read_text()[-3000:]) from None
        return self

    def rss_bytes(self) -> int:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def __exit__(self, *exc: object) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def open_server(settings: Any, get_free_port: Any) -> Iterator[ThreadServer]:
    """The app without an API token (the default loopback set-up)."""
    with ThreadServer(settings, get_free_port()) as server:
        yield server


@pytest.fixture
def token_server(settings: Any, get_free_port: Any) -> Iterator[ThreadServer]:
    """The app with an API token."""
    with ThreadServer(settings, get_free_port(), token=TOKEN) as server:
        yield server


def new_project(url: str, headers: dict[str, str] | None = None) -> str:
    r = httpx.post(url + "/api/v1/projects", json={"name": "sec"}, headers=headers or {}, timeout=10)
    assert r.status_code == 200, r.text
    return str(r.json()["data"]["project_key"])
