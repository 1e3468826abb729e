"""Shared fixtures: one real Postgres for the whole run, a fresh database per test.

``PYSTRUMENT_TEST_DATABASE_URL`` (``postgresql+asyncpg://...``, a user allowed to CREATE DATABASE)
points the suite at an external server; otherwise an embedded cluster starts in a temp dir.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

TEST_DB_ENV = "PYSTRUMENT_TEST_DATABASE_URL"


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """URL of a Postgres maintenance database on which tests create their own databases."""
    url = os.environ.get(TEST_DB_ENV)
    if url:
        yield url
        return
    import shutil
    import tempfile

    from pystrument_collector.db.embedded import EmbeddedPostgres

    # Not under pytest's basetemp: pytest prunes old basetemps, which would pull the data directory
    # from under a cluster still serving another pytest run on the same machine.
    data_dir = Path(tempfile.mkdtemp(prefix="pystrument-test-pg-"))
    embedded = EmbeddedPostgres(data_dir)
    try:
        yield embedded.start()
    finally:
        embedded.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _with_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture
async def database_url(pg_admin_url: str) -> AsyncIterator[str]:
    """A new, empty database for one test, dropped afterwards."""
    import asyncpg
    from sqlalchemy.engine import make_url

    name = f"t_{uuid.uuid4().hex[:12]}"
    u = make_url(pg_admin_url)
    params = dict(
        user=u.username,
        password=u.password,
        host=u.query.get("host") or u.host,
        port=u.port,
        database=u.database,
    )
    conn = await asyncpg.connect(**{k: v for k, v in params.items() if v is not None})
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        yield _with_database(pg_admin_url, name)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[object]:
    """A started, migrated ``Database`` on a fresh database."""
    from pystrument_collector.db import Database

    database = Database(database_url)
    await database.start()
    await database.migrate()
    yield database
    await database.stop()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> object:
    from pystrument_collector.settings import Settings

    return Settings(database_url=database_url, data_dir=tmp_path)


@pytest.fixture
async def client(settings: object) -> AsyncIterator[object]:
    """An httpx client on the real app (lifespan run), on a fresh database."""
    from litestar.testing import AsyncTestClient
    from pystrument_analysis.app import create_app

    app = create_app(settings)  # type: ignore[arg-type]
    async with AsyncTestClient(app=app, base_url="http://localhost") as c:
        yield c


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """The real app under uvicorn in a background thread, reachable over loopback HTTP."""

    def __init__(self, settings: object) -> None:
        import threading

        import uvicorn
        from pystrument_analysis.app import create_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(settings)  # type: ignore[arg-type]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        import time

        import httpx

        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("live server did not become healthy in 30 s")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def live_server(settings: object) -> Iterator[LiveServer]:
    """``pystrument``'s app on a free loopback port, on a fresh database."""
    with LiveServer(settings) as server:
        yield server


@pytest.fixture(scope="session")
def get_free_port() -> object:
    """A function returning a free loopback TCP port (for subprocess servers)."""
    return free_port
