"""``pystrument`` console script: ``serve`` and ``migrate``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pystrument", description="pystrument server")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve", help="serve the OTLP/HTTP receiver, REST API and web UI on one port, and OTLP/gRPC on another"
    )
    serve.add_argument("--host", default=None, help="bind address (default 127.0.0.1, env PYSTRUMENT_HOST)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000, env PYSTRUMENT_PORT)")
    serve.add_argument("--data-dir", default=None, help="embedded Postgres location (env PYSTRUMENT_DATA_DIR)")
    serve.add_argument(
        "--grpc-port",
        type=int,
        default=None,
        help="OTLP/gRPC port on the same host (default 4317, env PYSTRUMENT_GRPC_PORT; 0 turns it off)",
    )
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="allow a --host beyond loopback without PYSTRUMENT_API_TOKEN (env PYSTRUMENT_INSECURE=1)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server processes sharing the port (default 1, env PYSTRUMENT_WORKERS); each has its own database "
        "connections; the schema is migrated once, before they start",
    )
    serve.add_argument(
        "--access-log",
        action="store_true",
        help="log every HTTP request (off by default: at ingest rates it is one log line per export)",
    )
    migrate = sub.add_parser("migrate", help="bring the database schema up to date and exit")
    migrate.add_argument("--data-dir", default=None, help="embedded Postgres location (env PYSTRUMENT_DATA_DIR)")
    demo = sub.add_parser(
        "demo", help="serve, start a Flask and a FastAPI sample app under opentelemetry-instrument, send traffic"
    )
    demo.add_argument("--port", type=int, default=None, help="server port (default 8000, env PYSTRUMENT_PORT)")
    demo.add_argument("--data-dir", default=None, help="embedded Postgres and demo files (env PYSTRUMENT_DATA_DIR)")
    demo.add_argument("--requests", type=int, default=300, help="requests to send to the sample apps (default 300)")
    demo.add_argument("--duration", type=float, default=60.0, help="upper bound on the traffic, seconds (default 60)")
    demo.add_argument("--no-traffic", action="store_true", help="start everything but send no requests")
    demo.add_argument("--server", default=None, help="use the pystrument already running at this URL")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from pystrument_collector.settings import Settings
    except ImportError:
        print("pystrument's server needs its extra: pip install 'pystrument[server]'", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env(
            host=getattr(args, "host", None),
            port=getattr(args, "port", None),
            grpc_port=getattr(args, "grpc_port", None),
            data_dir=Path(args.data_dir) if args.data_dir else None,
        )
    except ValueError as exc:
        print(f"pystrument: {exc}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        return _migrate(settings)
    if args.command == "serve":
        from pystrument_analysis.api.access import check_exposure, insecure_from_env, token_from_env

        try:
            check_exposure(settings.host, token_from_env(), args.insecure or insecure_from_env())
        except ValueError as exc:
            print(f"pystrument: {exc}", file=sys.stderr)
            return 2
    if args.command == "demo":
        from pystrument_analysis.demo import DemoOptions, run_demo

        try:
            options = DemoOptions(
                requests=0 if args.no_traffic else args.requests, duration=args.duration, server_url=args.server
            )
        except ValueError as exc:
            print(f"pystrument: {exc}", file=sys.stderr)
            return 2
        return run_demo(settings, options)
    from pystrument_collector.settings import workers_from_env

    try:
        workers = args.workers if args.workers is not None else workers_from_env()
        if workers < 1:
            raise ValueError(f"--workers {workers}: give a positive number of processes")
    except ValueError as exc:
        print(f"pystrument: {exc}", file=sys.stderr)
        return 2
    if workers > 1:
        return _serve_workers(settings, workers, access_log=args.access_log, grpc_port=args.grpc_port)
    return _serve(settings, access_log=args.access_log)


def _migrate(settings: object) -> int:
    from pystrument_collector.db import Database
    from pystrument_collector.settings import Settings

    assert isinstance(settings, Settings)

    async def run() -> None:
        db = Database(settings.database_url, settings.data_dir)
        await db.start()
        try:
            await db.migrate()
        finally:
            await db.stop()

    asyncio.run(run())
    print("schema is up to date")
    return 0


def _serve(settings: object, *, access_log: bool = False) -> int:
    import uvicorn
    from pystrument_collector.settings import Settings

    from pystrument_analysis.app import create_app

    assert isinstance(settings, Settings)
    try:
        app = create_app(settings, freeze_gc=True)
    except ValueError as exc:
        print(f"pystrument: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=access_log,
        timeout_graceful_shutdown=10,
    )
    return 0


def _serve_workers(settings: object, workers: int, *, access_log: bool, grpc_port: int | None) -> int:
    """N processes on one port: uvicorn binds the socket here and hands it to each (every one accepts on it);
    OTLP/gRPC binds the port in each with SO_REUSEPORT. The schema is migrated and today's partitions are made here,
    once, before any process starts (their own start-up migration then finds nothing to do). With no database URL
    the embedded Postgres is started here too, and the processes share it. Analysis jobs are claimed by one process
    each (an update that re-checks the job is still runnable), and maintenance runs under an advisory lock."""
    import os

    import uvicorn
    from pystrument_collector.db import Database
    from pystrument_collector.retention import ensure_partitions
    from pystrument_collector.settings import (
        ENV_DATABASE_URL,
        ENV_GRPC_PORT,
        ENV_HOST,
        ENV_PORT,
        ENV_WORKERS,
        Settings,
    )

    assert isinstance(settings, Settings)
    db = Database(settings.database_url, settings.data_dir)

    async def prepare() -> str:
        await db.start()
        await db.migrate()
        await ensure_partitions(db)
        await db.engine.dispose()  # the processes open their own connections
        assert db.url is not None
        return db.url

    try:
        url = asyncio.run(prepare())
        os.environ[ENV_DATABASE_URL] = url
        os.environ[ENV_HOST] = settings.host
        os.environ[ENV_PORT] = str(settings.port)
        os.environ[ENV_WORKERS] = str(workers)
        if grpc_port is not None:
            os.environ[ENV_GRPC_PORT] = str(grpc_port)
        logging.getLogger(__name__).info("pystrument: %d worker processes on port %s", workers, settings.port)
        uvicorn.run(
            "pystrument_analysis.cli:worker_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
            log_level="info",
            access_log=access_log,
            timeout_graceful_shutdown=10,
        )
    finally:
        asyncio.run(db.stop())  # the embedded Postgres, when this process started it
    return 0


def worker_app() -> object:
    """One ``serve --workers N`` process's app, from the environment the parent set."""
    from pystrument_collector.settings import Settings

    from pystrument_analysis.app import create_app

    return create_app(Settings.from_env(), freeze_gc=True)


if __name__ == "__main__":
    sys.exit(main())
