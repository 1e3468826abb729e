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


if __name__ == "__main__":
    sys.exit(main())
