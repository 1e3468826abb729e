"""The function-span pack codec: every field of every span comes back exactly as written."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pystrument_collector.ingest._batch import Batch
from pystrument_collector.packs import (
    PACK_COLUMNS,
    as_microseconds,
    decode_pack,
    encode_pack,
    pack_rows,
    pack_span_starts,
)

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
T0 = as_microseconds(datetime(2026, 12, 7, 4, 30, 1, 123456, tzinfo=UTC))


def _row(
    span_id: str,
    parent: str | None,
    start: int,
    duration: float,
    *,
    name: str = "app.views.index",
    attributes: dict[str, Any] | None = None,
    events: list[Any] | None = None,
    status: int = 0,
    message: str = "",
    kind: str = "INTERNAL",
    trace: str = "ab" * 16,
    service: str = "shop",
    project: int = 7,
) -> tuple[Any, ...]:
    attrs = {"code.function.name": name, "pystrument.synthetic": True, "pystrument.self_time_ms": 1.5}
    attrs.update(attributes or {})
    return (
        trace, span_id, project, parent, name, kind, start, duration, status, message, service, True,
        json.dumps(attrs), json.dumps(events or []),
    )  # fmt: skip


def _expected(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "project_id": row[2],
        "trace_id": row[0],
        "span_id": row[1],
        "parent_span_id": row[3],
        "name": row[4],
        "kind": row[5],
        "start_time": PG_EPOCH + timedelta(microseconds=row[6]),
        "duration": row[7],
        "status_code": row[8],
        "status_message": row[9],
        "service_name": row[10],
        "synthetic": True,
        "attributes": json.loads(row[12]),
        "events": json.loads(row[13]),
        "start_us": row[6],
    }


def _decoded(pack: tuple[Any, ...]) -> list[dict[str, Any]]:
    values = dict(zip(PACK_COLUMNS, pack, strict=True))
    spans = decode_pack(
        values["project_id"], values["trace_id"], values["service_name"], values["start_time"], values["data"]
    )
    return [{k: getattr(s, k) for k in _expected(_row("0" * 16, None, 0, 0.0))} for s in spans]


def test_round_trip_keeps_every_field_exactly() -> None:
    rows = [
        _row("00000000000000a1", "ffffffffffffffff", T0, 0.123456789, attributes={"code.line.number": 10}),
        _row("00000000000000a2", "00000000000000a1", T0 + 7, 0.000001, name="app.db.query",
             attributes={"code.line.number": 42, "pystrument.library": True, "pystrument.child_span_ids": ["x", "y"]},
             events=[{"name": "exception", "attributes": {"exception.type": "ValueError"}, "time_unix_nano": 5}],
             status=2, message="boom"),
        _row("00000000000000a3", "00000000000000a2", T0 + 1_000_000, 1 / 3, kind="CLIENT",
             attributes={"big": 2**70, "nested": {"a": [1, 2.5, None, "s"]}, "unicode": "héllo ✓"}),
        _row("00000000000000a4", None, T0 - 5, 12.0),
    ]  # fmt: skip
    pack = encode_pack(rows)
    values = dict(zip(PACK_COLUMNS, pack, strict=True))
    assert values["n"] == 4
    assert values["start_time"] == T0 - 5
    assert values["end_time"] == T0 - 5 + 12_000_000
    assert isinstance(values["data"], bytes)
    expected = sorted((_expected(r) for r in rows), key=lambda e: (e["start_us"], e["span_id"]))
    assert _decoded(pack) == expected


def test_irregular_ids_and_repeated_ids() -> None:
    rows = [
        _row("legacy-1", None, T0, 0.5),
        _row("legacy-2", "legacy-1", T0 + 1, 0.25),
        _row("legacy-2", "legacy-1", T0 + 1, 0.25),  # the same span twice in a batch: stored once
    ]
    pack = encode_pack(rows)
    assert pack[5] == 2
    assert [s["span_id"] for s in _decoded(pack)] == ["legacy-1", "legacy-2"]
    assert [s["parent_span_id"] for s in _decoded(pack)] == [None, "legacy-1"]


def test_pack_rows_groups_by_project_trace_and_service() -> None:
    rows = [
        _row("0000000000000001", None, T0, 0.1),
        _row("0000000000000002", None, T0, 0.1, service="billing"),
        _row("0000000000000003", None, T0, 0.1, trace="cd" * 16),
        _row("0000000000000004", None, T0 + 3, 0.1),
    ]
    packs = pack_rows(rows)
    assert sorted((p[1], p[2], p[5]) for p in packs) == [
        ("ab" * 16, "billing", 1),
        ("ab" * 16, "shop", 2),
        ("cd" * 16, "shop", 1),
    ]


def test_a_resent_batch_makes_the_same_pack() -> None:
    rows = [_row(f"{i:016x}", None, T0 + i, 0.01 * i) for i in range(1, 20)]
    assert encode_pack(rows) == encode_pack(list(reversed(rows)))
    assert encode_pack(rows)[6] != encode_pack(rows[:-1])[6]


def test_span_starts_for_the_writer() -> None:
    rows = [_row("0000000000000002", None, T0 + 9, 0.1), _row("0000000000000001", None, T0, 0.1)]
    pack = encode_pack(rows)
    assert pack_span_starts(PG_EPOCH + timedelta(microseconds=pack[3]), pack[7]) == [
        ("0000000000000001", T0),
        ("0000000000000002", T0 + 9),
    ]


def test_rows_of_the_batch_layout() -> None:
    batch = Batch()
    batch.add_span(
        project_id=1, service_name="svc", trace_id="ab" * 16, span_id="12" * 8, parent_span_id="34" * 8,
        name="f", kind="INTERNAL", start_ns=1_765_000_000_123_456_789, end_ns=1_765_000_000_223_456_000,
        status_code=0, status_message="", attributes={"pystrument.synthetic": True}, events=[],
    )  # fmt: skip
    (span,) = decode_pack(1, "ab" * 16, "svc", *encode_pack(batch.rows)[3:4], encode_pack(batch.rows)[7])
    assert span.duration == batch.rows[0][7]
    assert span.start_us == batch.rows[0][6]


def test_an_empty_pack_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one span"):
        encode_pack([])
