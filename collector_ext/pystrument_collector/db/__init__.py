"""Storage: schema, engine, embedded Postgres, migrations."""

from pystrument_collector.db.engine import Database
from pystrument_collector.db.models import Analysis, Base, PerformanceRecord, Project, Span

__all__ = ["Analysis", "Base", "Database", "PerformanceRecord", "Project", "Span"]
