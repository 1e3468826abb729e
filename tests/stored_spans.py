"""Spans as stored, for tests that look at the database itself: rows of ``spans`` and the SDK's function spans
packed in ``function_spans`` (migration 0009), decoded with the collector's one codec."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import msgspec
from pystrument_collector.packs import decode_pack

PACKS_SQL = "SELECT project_id, trace_id, service_name, start_time, data FROM function_spans"


async def _fetch(conn: Any, sql: str) -> list[Any]:
    """Rows of ``sql`` from an asyncpg connection or a SQLAlchemy async session/connection."""
    if hasattr(conn, "fetch"):
        return list(await conn.fetch(sql))
    from sqlalchemy import text

    return list((await conn.execute(text(sql))).all())


async def stored_spans(conn: Any) -> list[dict[str, Any]]:
    """Every stored span as a dict of a ``spans`` row's columns: the rows, then the packed function spans."""
    found = [dict(r._mapping) if hasattr(r, "_mapping") else dict(r) for r in await _fetch(conn, "SELECT * FROM spans")]
    for pack in await _fetch(conn, PACKS_SQL):
        for span in decode_pack(*pack):
            found.append({k: v for k, v in asdict(span).items() if k != "start_us"})
    return found


async def stored_text(conn: Any) -> str:
    """Every stored span as text (a row's text form; a packed span's fields as JSON): what a dump would show once
    decoded, so a secret left in an attribute is found whether or not it sits in a compressed pack."""
    rows = [r[0] for r in await _fetch(conn, "SELECT s::text FROM spans s")]
    for pack in await _fetch(conn, PACKS_SQL):
        rows += [msgspec.json.encode(asdict(span)).decode() for span in decode_pack(*pack)]
    return "\n".join(rows)
