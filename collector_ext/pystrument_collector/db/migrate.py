"""Run Alembic on a live connection, so the async engine and the CLI share one code path."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection

from pystrument_collector.db.engine import MIGRATIONS_DIR


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


# Held for the migration's transaction: servers (or ``serve --workers N``) starting together migrate one at a time.
MIGRATION_LOCK_KEY = 0x7079737472_6D67  # "pystrmg"


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Upgrade the schema on ``connection`` (called through ``AsyncConnection.run_sync``)."""
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
    command.upgrade(alembic_config(connection), revision)


def distribute(connection: Connection) -> None:
    """On a Citus coordinator, distribute the tables (after ``upgrade`` committed); nothing on plain Postgres."""
    from pystrument_collector.db import citus

    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
    citus.distribute(connection)
