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
from pystrument_collector.receiver import Receiver
from pystrument_collector.retention import start_maintenance
from pystrument_collector.settings import Settings

from pystrument_analysis.analysis import AnalysisRuntime
from pystrument_analysis.api import api_handlers, exception_handlers
from pystrument_analysis.api.access import COOKIE, ApiAccess, token_from_env, token_guard, token_link
from pystrument_analysis.api.hygiene import nul_guard, repeat_guard
from pystrument_analysis.api.openapi_errors import truthful_errors
from pystrument_analysis.api.shield import Shield, default_allowed_hosts, shield_middleware
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


async def _start_grpc(receiver: Receiver, db: Database, settings: Settings) -> int | None:
    """OTLP/gRPC on the serve host, when ``settings.grpc_port`` is set; the port bound, or None.

    A port given explicitly that cannot be bound fails start-up; the default one (4317, perhaps taken by another
    OpenTelemetry backend) only warns, and HTTP is served all the same.
    """
    if not settings.grpc_port:
        return None
    try:
        port = await receiver.start_grpc(db, settings.host, settings.grpc_port)
    except OSError as exc:
        if settings.grpc_required:
            raise
        logger.warning("OTLP/gRPC is not served: %s", exc)
        return None
    logger.info("OTLP/gRPC (traces, logs, metrics) on %s:%s", settings.host, port)
    return port


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
    receiver = Receiver()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await db.start()
        maintenance = None
        try:
            await db.migrate()
            app.state.ready = True
            maintenance = await start_maintenance(db, settings)  # span/log partitions ahead + retention, hourly
            await analysis.start(db)
            app.state.grpc_port = await _start_grpc(receiver, db, settings)
            if freeze_gc:
                # Everything alive after start-up (modules, the app, the schema) lives as long as the process: keep
                # it out of the cyclic collector, whose full passes over ~100k objects cost ~100 ms of a request.
                gc.collect()
                gc.freeze()
            logger.info("pystrument ready on http://%s:%s", settings.host, settings.port)
            yield
        finally:
            app.state.ready = False
            await analysis.stop()
            if maintenance is not None:
                await maintenance.stop()
            await receiver.close()  # gRPC first (calls in progress finish), then the writer's connections
            if database is None:
                await db.stop()

    cors = CORSConfig(allow_origins=list(settings.cors_origins)) if settings.cors_origins else None
    shield = Shield(settings.allowed_hosts or default_allowed_hosts(settings.host), settings.cors_origins)
    app = Litestar(
        route_handlers=[health, *receiver.handlers(), *api_handlers(), *web_handlers()],
        dependencies={"db": Provide(provide_db, sync_to_thread=False)},
        exception_handlers=exception_handlers(),
        lifespan=[lifespan],
        state=State(
            {
                "db": db,
                "settings": settings,
                "ready": False,
                "analysis": analysis,
                "access": access,
                "receiver": receiver,
                "grpc_port": None,
            }
        ),
        cors_config=cors,
        guards=[token_guard, nul_guard, repeat_guard],
        middleware=[shield_middleware(shield)],
        before_request=token_link,
        openapi_config=OpenAPIConfig(
            title="pystrument", version="0.1.0", path="/schema", components=OPENAPI_COMPONENTS
        ),
    )
    truthful_errors(app)  # errors documented as answered: {code, msg, data} and google.rpc.Status
    return app
