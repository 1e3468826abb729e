"""Receiver test fixtures: projects made directly in the database, and row readers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest


@pytest.fixture
def make_project(db: Any) -> Callable[..., Awaitable[tuple[int, str]]]:
    """Create a project row; returns ``(id, key)``."""
    from pystrument_collector.db.models import Project
    from pystrument_collector.keys import new_project_key

    async def make(name: str = "shop") -> tuple[int, str]:
        key = new_project_key()
        async with db.session() as s:
            project = Project(project_key=key, name=name)
            s.add(project)
            await s.flush()
            return project.id, key

    return make


@pytest.fixture
async def project(make_project: Callable[..., Awaitable[tuple[int, str]]]) -> tuple[int, str]:
    return await make_project()


@pytest.fixture
def rows(db: Any) -> Callable[[str], Awaitable[list[dict[str, Any]]]]:
    """Read a whole table (``spans``, ``performance_records``, ``projects``) as dicts, ordered by key.

    ``spans`` are every span stored: its rows and the function spans decoded from ``function_spans`` packs."""
    from dataclasses import asdict

    from pystrument_collector.packs import decode_pack
    from sqlalchemy import text

    order = {"spans": "trace_id, span_id", "performance_records": "trace_id, span_id", "projects": "id"}

    async def read(table: str) -> list[dict[str, Any]]:
        async with db.session() as s:
            result = await s.execute(text(f"SELECT * FROM {table} ORDER BY {order[table]}"))
            found = [dict(r._mapping) for r in result]
            if table == "spans":
                packs = await s.execute(
                    text("SELECT project_id, trace_id, service_name, start_time, data FROM function_spans")
                )
                for pack in packs:
                    for span in decode_pack(*pack):
                        found.append({k: v for k, v in asdict(span).items() if k != "start_us"})
                found.sort(key=lambda r: (r["trace_id"], r["span_id"]))
            return found

    return read
