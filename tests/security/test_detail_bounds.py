"""Finding 6: one trace's detail was unbounded (a 300k-span trace: a 99 MB answer in 5.8 s, +440 MB on the
server; its speedscope export peaked at 757 MB). Now both are capped, say so, and the detail pages."""

from __future__ import annotations

import time
from typing import Any

from pystrument_analysis.api.services.records import MAX_DETAIL_SPANS
from pystrument_analysis.api.services.speedscope import MAX_SPEEDSCOPE_SPANS

from .test_wide_trace import TRACE, write_wide_trace


async def test_a_300k_span_trace_is_answered_in_pages(client: Any, database_url: str) -> None:
    key = (await client.post("/api/v1/projects", json={"name": "wide"})).json()["data"]["project_key"]
    await write_wide_trace(database_url, key, 300_000)
    started = time.monotonic()
    r = await client.get(f"/api/v1/performance/records/{TRACE}", params={"project_key": key}, timeout=60)
    elapsed = time.monotonic() - started
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert len(data["spans"]) == MAX_DETAIL_SPANS
    assert data["spans_truncated"] is True and data["span_total"] == 300_001
    assert data["next_span_offset"] == MAX_DETAIL_SPANS
    assert len(r.content) < 15 * 1024 * 1024 and elapsed < 10, (len(r.content), elapsed)

    last = await client.get(
        f"/api/v1/performance/records/{TRACE}",
        params={"project_key": key, "span_offset": 300_000, "span_limit": 100},
    )
    tail = last.json()["data"]
    assert len(tail["spans"]) == 1 and tail["next_span_offset"] is None and tail["spans_truncated"] is True
    too_many = await client.get(
        f"/api/v1/performance/records/{TRACE}", params={"project_key": key, "span_limit": MAX_DETAIL_SPANS + 1}
    )
    assert too_many.status_code == 400

    r = await client.get(f"/api/v1/performance/records/{TRACE}/speedscope", params={"project_key": key}, timeout=60)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["pystrument"] == {"truncated": True, "spans_included": MAX_SPEEDSCOPE_SPANS, "spans_total": 300_001}
    assert "truncated" in doc["name"]
    assert len(r.content) < 15 * 1024 * 1024


async def test_a_small_trace_is_whole(client: Any, database_url: str) -> None:
    key = (await client.post("/api/v1/projects", json={"name": "small"})).json()["data"]["project_key"]
    await write_wide_trace(database_url, key, 20)
    data = (await client.get(f"/api/v1/performance/records/{TRACE}", params={"project_key": key})).json()["data"]
    assert len(data["spans"]) == 21 and data["span_total"] == 21
    assert data["spans_truncated"] is False and data["next_span_offset"] is None
    doc = (await client.get(f"/api/v1/performance/records/{TRACE}/speedscope", params={"project_key": key})).json()
    assert doc["pystrument"]["truncated"] is False
