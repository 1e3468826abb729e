"""Migration 0009 packs a 0008 database's function spans in place: every span still there, field for field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

DAY = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)

SEED = [
    "INSERT INTO projects (id, project_key, name, description, framework, status) VALUES "
    "(1, 'proj_a', 'a', '', 'flask', 'active'), (2, 'proj_b', 'b', '', 'flask', 'active')",
    "CREATE TABLE spans_p20260310 (LIKE spans)",
    "ALTER TABLE spans ATTACH PARTITION spans_p20260310 "
    "FOR VALUES FROM ('2026-03-10 00:00:00+00') TO ('2026-03-11 00:00:00+00')",
]

SPAN = (
    "INSERT INTO spans (trace_id, span_id, project_id, parent_span_id, name, kind, start_time, duration, status_code, "
    "status_message, service_name, synthetic, attributes, events) VALUES "
    "(:t, :s, :p, :ps, :n, :k, :st, :d, :sc, :sm, :sv, :sy, CAST(:a AS jsonb), CAST(:e AS jsonb))"
)
COLUMNS = (
    "project_id, trace_id, span_id, parent_span_id, name, kind, start_time, duration, status_code, status_message, "
    "service_name, synthetic, attributes, events"
)


def _spans() -> list[dict[str, Any]]:
    out = []
    for i in range(12):
        project = 1 + i % 2
        trace = f"{i:032x}"
        start = DAY + timedelta(minutes=i) if i < 6 else DAY + timedelta(days=5, minutes=i, microseconds=7)
        root = f"{i:016x}"
        out.append(
            {"t": trace, "s": root, "p": project, "ps": None, "n": "GET /", "k": "SERVER", "st": start, "d": 0.25,
             "sc": 0, "sm": "", "sv": "svc", "sy": False, "a": json.dumps({"http.route": "/"}), "e": "[]"}
        )  # fmt: skip
        for k in range(1, 4):
            attrs = {"code.function.name": f"app.f{k}", "pystrument.synthetic": True, "pystrument.self_time_ms": 1.25}
            if k == 2:
                attrs["pystrument.child_span_ids"] = ["aa", "bb"]
            out.append(
                {"t": trace, "s": f"{i:014x}{k:02x}", "p": project, "ps": root if k == 1 else f"{i:014x}{k - 1:02x}",
                 "n": f"app.f{k}", "k": "INTERNAL", "st": start + timedelta(microseconds=k * 1001),
                 "d": 0.1 / k, "sc": 2 if k == 3 else 0, "sm": "boom" if k == 3 else "", "sv": "svc" if k < 3 else "w",
                 "sy": True, "a": json.dumps(attrs),
                 "e": json.dumps([{"name": "e", "time_unix_nano": 1}] if k == 3 else [])}
            )  # fmt: skip
    return out


async def _all_spans(conn: Any) -> list[tuple[Any, ...]]:
    from pystrument_collector.packs import decode_pack

    rows = [tuple(r) for r in await conn.execute(text(f"SELECT {COLUMNS} FROM spans"))]
    if await conn.scalar(text("SELECT to_regclass('function_spans')")) is None:
        return sorted(rows, key=lambda r: (r[0], r[1], r[2]))
    packs = await conn.execute(text("SELECT project_id, trace_id, service_name, start_time, data FROM function_spans"))
    for pack in packs:
        for s in decode_pack(*pack):
            rows.append(
                (s.project_id, s.trace_id, s.span_id, s.parent_span_id, s.name, s.kind, s.start_time, s.duration,
                 s.status_code, s.status_message, s.service_name, s.synthetic, s.attributes, s.events)
            )  # fmt: skip
    return sorted(rows, key=lambda r: (r[0], r[1], r[2]))


async def test_0009_packs_the_function_spans_of_a_0008_database_in_place(database_url: str) -> None:
    from alembic import command
    from pystrument_collector.db import Database
    from pystrument_collector.db.migrate import alembic_config, upgrade

    db = Database(database_url)
    await db.start()
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(upgrade, "0008")
        async with db.engine.begin() as conn:
            for sql in SEED:
                await conn.execute(text(sql))
            for span in _spans():
                await conn.execute(text(SPAN), span)
            before = await _all_spans(conn)
            assert len(before) == 48

        async with db.engine.begin() as conn:
            await conn.run_sync(upgrade, "0009")

        async with db.engine.begin() as conn:
            assert await conn.scalar(text("SELECT version_num FROM alembic_version")) == "0009"
            assert await _all_spans(conn) == before
            assert await conn.scalar(text("SELECT count(*) FROM spans WHERE synthetic")) == 0
            assert await conn.scalar(text("SELECT count(*) FROM spans")) == 12
            # one pack per trace and service; the day partition made for the day partition of spans
            packs = dict(
                (await conn.execute(text("SELECT tableoid::regclass::text, count(*) FROM function_spans GROUP BY 1")))
                .tuples()
                .all()
            )
            assert packs == {"function_spans_p20260310": 12, "function_spans_default": 12}
            key = await conn.scalar(
                text(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = 'function_spans'::regclass AND contype = 'p'"
                )
            )
            assert key == "PRIMARY KEY (project_id, trace_id, start_time, digest)"
            # deleting a project deletes its packs
            await conn.execute(text("DELETE FROM projects WHERE id = 2"))
            assert await conn.scalar(text("SELECT count(DISTINCT project_id) FROM function_spans")) == 1

        async with db.engine.begin() as conn:
            await conn.run_sync(
                lambda c: command.downgrade(alembic_config(c), "0008")
            )  # and back: the packs' spans are rows again
            assert await conn.scalar(text("SELECT count(*) FROM spans WHERE synthetic")) == 18
            assert await conn.scalar(text("SELECT to_regclass('function_spans')")) is None
    finally:
        await db.stop()
