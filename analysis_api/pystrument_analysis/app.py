"""The one Litestar app: OTLP receiver, REST API, OpenAPI schema, health and the web UI."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, get
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE
from pystrument_collector.db import Database
from pystrument_collector.receiver import receiver_handlers
from pystrument_collector.settings import Settings

from pystrument_analysis.api import api_handlers, exception_handlers
from pystrument_analysis.web import web_handlers

logger = logging.getLogger(__name__)


def provide_db(state: State) -> Database:
    db: Database = state.db
    return db


@get("/health", operation_id="health", include_in_schema=False, sync_to_thread=False)
def health(state: State) -> dict[str, str]:
    if not state.get("ready"):
        from litestar.exceptions import HTTPException

        raise HTTPException(status_code=HTTP_503_SERVICE_UNAVAILABLE, detail="database starting")
    return {"status": "ok"}


def create_app(settings: Settings, database: Database | None = None) -> Litestar:
    """Build the app; the database starts (and migrates) in the lifespan, not at import."""
    db = database or Database(settings.database_url, settings.data_dir)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await db.start()
        await db.migrate()
        app.state.ready = True
        logger.info("pystrument ready on http://%s:%s", settings.host, settings.port)
        try:
            yield
        finally:
            app.state.ready = False
            if database is None:
                await db.stop()

    cors = CORSConfig(allow_origins=list(settings.cors_origins)) if settings.cors_origins else None
    return Litestar(
        route_handlers=[health, *receiver_handlers(), *api_handlers(), *web_handlers()],
        dependencies={"db": Provide(provide_db, sync_to_thread=False)},
        exception_handlers=exception_handlers(),
        lifespan=[lifespan],
        state=State({"db": db, "settings": settings, "ready": False}),
        cors_config=cors,
        openapi_config=OpenAPIConfig(title="pystrument", version="0.1.0", path="/schema"),
    )
