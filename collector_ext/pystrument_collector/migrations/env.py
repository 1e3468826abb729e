"""Alembic environment: always handed a live connection by pystrument_collector.db.migrate."""

from alembic import context
from pystrument_collector.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `pystrument migrate`, which provides the connection")

context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
