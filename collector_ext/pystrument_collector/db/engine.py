"""The database handle shared by the receiver and the API: engine, sessions, migrations."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from pystrument_collector.db.embedded import EmbeddedPostgres

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class Database:
    """Owns the engine; with no URL it runs an embedded Postgres in ``data_dir``."""

    def __init__(self, url: str | None, data_dir: Path | None = None, *, pool_size: int = 10) -> None:
        self._configured_url = url
        self._data_dir = data_dir
        self._pool_size = pool_size
        self._embedded: EmbeddedPostgres | None = None
        self.url: str | None = None
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("Database.start() has not run")
        return self._engine

    def start_sync(self) -> None:
        """Resolve the URL (starting the embedded cluster if needed) and build the engine."""
        if self._engine is not None:
            return
        url = self._configured_url
        if url is None:
            if self._data_dir is None:
                raise ValueError("no database URL and no data directory: give one of them")
            self._embedded = EmbeddedPostgres(self._data_dir)
            url = self._embedded.start()
        self.url = url
        self._engine = create_async_engine(
            url, pool_size=self._pool_size, max_overflow=self._pool_size, pool_pre_ping=True
        )
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)

    async def start(self) -> None:
        await asyncio.to_thread(self.start_sync)

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision; on Citus, then distribute the tables."""
        from pystrument_collector.db.migrate import distribute, upgrade

        async with self.engine.begin() as conn:
            await conn.run_sync(upgrade)
        async with self.engine.begin() as conn:
            await conn.run_sync(distribute)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed on success."""
        if self._sessions is None:
            raise RuntimeError("Database.start() has not run")
        async with self._sessions() as session, session.begin():
            yield session

    async def stop(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)
            self._embedded = None
