"""Finding 1: one wide trace froze the server (the analysis ran on the event loop, quadratic in the children).

Now a job runs in the analysis thread, after a span count against ``PYSTRUMENT_ANALYSIS_MAX_SPANS`` (a trace
over it fails at once with a clear message and is not retried), under ``job_timeout``.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from pystrument_collector.ingest._writer import _init_connection
from pystrument_collector.packs import PACK_COLUMNS, as_microseconds, encode_pack
from sqlalchemy.engine import make_url

from .conftest import ProcessServer, new_project

TRACE = "ab" * 16
ROOT = "1" * 16


async def write_wide_trace(database_url: str, project_key: str, children: int, trace_id: str = TRACE) -> None:
    """A request span with ``children`` INTERNAL function children, written with one INSERT ... SELECT."""
    u = make_url(database_url)
    conn = await asyncpg.connect(user=u.username, password=u.password, host=u.query.get("host") or u.host,
                                 port=u.port, database=u.database)  # fmt: skip
    try:
        pid = await conn.fetchval("SELECT id FROM projects WHERE project_key = $1", project_key)
        await conn.execute(
            """INSERT INTO spans (trace_id, span_id, project_id, parent_span_id, name, kind, start_time, duration,
                                  status_code, status_message, service_name, synthetic, attributes, events)
               VALUES ($1, $2, $3, NULL, 'GET /wide', 'SERVER', now() - interval '10 seconds', 5.0, 0, '', 'svc',
                       false, '{"http.route": "/wide", "http.request.method": "GET"}', '[]')""",
            trace_id, ROOT, pid,
        )  # fmt: skip
        await conn.execute(
            """INSERT INTO performance_records (trace_id, span_id, project_id, service_name, method, route, path,
                                               status_code, duration, cpu_time, memory, is_error, timestamp)
               VALUES ($1, $2, $3, 'svc', 'GET', '/wide', '/wide', 200, 5.0, NULL, '{}', false,
                       now() - interval '10 seconds')""",
            trace_id, ROOT, pid,
        )  # fmt: skip
        # The function spans packed as the collector's writer packs them: 2,048 spans a chunk, one pack each.
        start = as_microseconds(datetime.now(UTC)) - 10_000_000
        rows = []
        for i in range(1, children + 1):
            name = f"app.work_{i % 50}"
            attrs = {"pystrument.synthetic": True, "code.function.name": name, "pystrument.self_time_ms": 0.01}
            rows.append(
                (trace_id, f"{1_000_000 + i:016x}", pid, ROOT, name, "INTERNAL", start + 10 * i, 0.00001, 0, "", "svc",
                 True, json.dumps(attrs), "[]")
            )  # fmt: skip
        packs = [encode_pack(rows[i : i + 2048]) for i in range(0, len(rows), 2048)]
        await _init_connection(conn)  # times as integer microseconds, as the writer's connections have them
        await conn.copy_records_to_table("function_spans", records=packs, columns=PACK_COLUMNS)
    finally:
        await conn.close()


def health_ms(http: httpx.Client) -> float:
    started = time.perf_counter()
    r = http.get("/health")
    assert r.status_code == 200
    return (time.perf_counter() - started) * 1000


def watch(url: str, analysis_id: str, key: str, seconds: float) -> tuple[dict[str, Any], list[float]]:
    """Poll the analysis until it is final, timing ``/health`` (on a kept-alive connection, as a load balancer
    probes) between polls; fails after ``seconds``."""
    deadline = time.monotonic() + seconds
    timings: list[float] = []
    with httpx.Client(base_url=url, timeout=2) as probe, httpx.Client(base_url=url, timeout=2) as api:
        probe.get("/health")  # connected before the clock starts
        while time.monotonic() < deadline:
            timings.append(health_ms(probe))
            r = api.get(f"/api/v1/analysis/results/{analysis_id}", params={"project_key": key})
            data = r.json()["data"]
            if data["status"] in ("completed", "failed"):
                return data, timings
            time.sleep(0.02)
    raise AssertionError(f"analysis not final after {seconds} s")


async def test_300k_children_refused_within_5_s_health_stays_fast(
    database_url: str, tmp_path: Path, get_free_port: Any
) -> None:
    with ProcessServer(database_url, tmp_path, get_free_port()) as server:
        key = new_project(server.url)
        await write_wide_trace(database_url, key, 300_000)
        started = time.monotonic()
        r = httpx.post(server.url + "/api/v1/analysis/trigger", json={"trace_id": TRACE, "project_key": key}, timeout=5)
        assert r.status_code == 200, r.text
        result, timings = watch(server.url, r.json()["data"]["analysis_id"], key, 5.0)
        elapsed = time.monotonic() - started
        print(f"\n300k children: {result['status']} in {elapsed:.2f} s; /health at most {max(timings):.1f} ms")
        assert result["status"] == "failed" and "more than 50000 spans" in result["error"], result
        assert "PYSTRUMENT_ANALYSIS_MAX_SPANS" in result["error"]
        assert elapsed < 5.0 and max(timings) < 100, (elapsed, max(timings))
        assert result["attempts"] == 1  # failed for good, not handed back to the queue
        time.sleep(1.5)
        again = httpx.get(f"{server.url}/api/v1/analysis/results/{result['analysis_id']}", params={"project_key": key})
        assert again.json()["data"]["status"] == "failed" and again.json()["data"]["attempts"] == 1


async def test_an_analysis_runs_off_the_event_loop(database_url: str, tmp_path: Path, get_free_port: Any) -> None:
    """A trace within the budget is analysed while ``/health`` keeps answering within 100 ms."""
    with ProcessServer(database_url, tmp_path, get_free_port()) as server:
        key = new_project(server.url)
        await write_wide_trace(database_url, key, 3_000)
        r = httpx.post(server.url + "/api/v1/analysis/trigger", json={"trace_id": TRACE, "project_key": key}, timeout=5)
        assert r.status_code == 200, r.text
        result, timings = watch(server.url, r.json()["data"]["analysis_id"], key, 60.0)
        print(f"\n3k children: {result['status']}; /health at most {max(timings):.1f} ms over {len(timings)} probes")
        assert result["status"] == "completed", result
        assert max(timings) < 100, max(timings)
