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
    serve = sub.add_parser("serve", help="serve the OTLP receiver, REST API and web UI on one port")
    serve.add_argument("--host", default=None, help="bind address (default 127.0.0.1, env PYSTRUMENT_HOST)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000, env PYSTRUMENT_PORT)")
    serve.add_argument("--data-dir", default=None, help="embedded Postgres location (env PYSTRUMENT_DATA_DIR)")
    migrate = sub.add_parser("migrate", help="bring the database schema up to date and exit")
    migrate.add_argument("--data-dir", default=None, help="embedded Postgres location (env PYSTRUMENT_DATA_DIR)")
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
            data_dir=Path(args.data_dir) if args.data_dir else None,
        )
    except ValueError as exc:
        print(f"pystrument: {exc}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        return _migrate(settings)
    return _serve(settings)


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


def _serve(settings: object) -> int:
    import uvicorn

    from pystrument_analysis.app import create_app
    from pystrument_collector.settings import Settings

    assert isinstance(settings, Settings)
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", timeout_graceful_shutdown=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
