"""The one Litestar app: OTLP receiver, REST API, OpenAPI schema, health and the web UI."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, get
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE
from pystrument_collector.db import Database
from pystrument_collector.ingest import Ingestor
from pystrument_collector.receiver import receiver_handlers
from pystrument_collector.retention import start_maintenance
from pystrument_collector.settings import Settings

from pystrument_analysis.analysis import AnalysisRuntime
from pystrument_analysis.api import api_handlers, exception_handlers
from pystrument_analysis.api.access import COOKIE, ApiAccess, token_from_env, token_guard, token_link
from pystrument_analysis.api.hygiene import nul_guard
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


_UNSET = object()

OPENAPI_COMPONENTS = Components(
    security_schemes={
        "apiToken": SecurityScheme(
            type="http", scheme="bearer", description="PYSTRUMENT_API_TOKEN, when the server has one"
        ),
        "apiCookie": SecurityScheme(
            type="apiKey", name=COOKIE, security_scheme_in="cookie", description="set by POST /api/v1/auth/login"
        ),
    }
)


def create_app(
    settings: Settings, database: Database | None = None, *, api_token: object = _UNSET, freeze_gc: bool = False
) -> Litestar:
    """Build the app; the database starts (and migrates) in the lifespan, not at import.

    ``api_token``: the REST API's bearer token (``None``: open); by default ``PYSTRUMENT_API_TOKEN``.
    ``freeze_gc``: move what start-up leaves alive into the permanent GC generation (``serve`` does; tests that
    build many apps in one process do not).
    """
    access = ApiAccess(token_from_env() if api_token is _UNSET else api_token)  # type: ignore[arg-type]
    db = database or Database(settings.database_url, settings.data_dir)
    analysis = AnalysisRuntime.from_env()  # bad AI configuration raises ValueError here, before serving
    ingestor = Ingestor()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await db.start()
        await db.migrate()
        app.state.ready = True
        maintenance = await start_maintenance(db, settings)  # span partitions ahead + retention, hourly
        await analysis.start(db)
        if freeze_gc:
            # Everything alive after start-up (modules, the app, the schema) lives as long as the process: keep it
            # out of the cyclic collector, whose full passes over ~100k objects cost ~100 ms of a request's time.
            gc.collect()
            gc.freeze()
        logger.info("pystrument ready on http://%s:%s", settings.host, settings.port)
        try:
            yield
        finally:
            app.state.ready = False
            await analysis.stop()
            await maintenance.stop()
            await ingestor.close()
            if database is None:
                await db.stop()

    cors = CORSConfig(allow_origins=list(settings.cors_origins)) if settings.cors_origins else None
    return Litestar(
        route_handlers=[health, *receiver_handlers(ingestor), *api_handlers(), *web_handlers()],
        dependencies={"db": Provide(provide_db, sync_to_thread=False)},
        exception_handlers=exception_handlers(),
        lifespan=[lifespan],
        state=State({"db": db, "settings": settings, "ready": False, "analysis": analysis, "access": access}),
        cors_config=cors,
        guards=[token_guard, nul_guard],
        before_request=token_link,
        openapi_config=OpenAPIConfig(
            title="pystrument", version="0.1.0", path="/schema", components=OPENAPI_COMPONENTS
        ),
    )
