"""Graceful shutdown and scale-out: every span acknowledged with 200 is in the database.

Analysis jobs running exactly once across servers is covered by tests/analysis_api/test_analysis_api.py.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import stored_spans

SPANS_PER_EXPORT = 20


def exports(otlp: Any, n: int) -> list[tuple[bytes, set[str]]]:
    """``n`` distinct export bodies, each with the span ids it carries."""
    out = []
    for _ in range(n):
        spans = otlp.make_spans(SPANS_PER_EXPORT)
        out.append((otlp.proto_body(spans), {format(s.context.span_id, "016x") for s in spans}))
    return out


def send_all(urls: list[str], key: str, bodies: list[tuple[bytes, set[str]]], threads: int) -> tuple[set[str], int]:
    """Post the bodies from ``threads`` senders round-robin over ``urls``; returns (acknowledged span ids, sent)."""
    acked: set[str] = set()
    sent = [0]
    lock = threading.Lock()
    todo = list(enumerate(bodies))

    def worker() -> None:
        with httpx.Client(timeout=10) as http:
            while True:
                with lock:
                    if not todo:
                        return
                    i, (body, ids) = todo.pop()
                    sent[0] += 1
                try:
                    r = http.post(
                        urls[i % len(urls)] + "/v1/traces",
                        content=body,
                        headers={"content-type": "application/x-protobuf", "x-project-key": key},
                    )
                except httpx.HTTPError:
                    continue  # the server went away: not acknowledged, so the exporter would retry it
                if r.status_code == 200:
                    with lock:
                        acked.update(ids)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    return acked, sent[0]


async def stored_ids(db: Any) -> set[str]:
    async with db.session() as s:
        return {span["span_id"] for span in await stored_spans.stored_spans(s)}


async def test_sigterm_mid_load_loses_no_acknowledged_span(serve: Any, project: tuple[int, str], otlp: Any, db) -> None:
    server = serve()
    bodies = exports(otlp, 400)
    result: dict[str, Any] = {}
    sender = threading.Thread(target=lambda: result.update(out=send_all([server.url], project[1], bodies, 4)))
    sender.start()
    # Wait until the server is mid-load, then SIGTERM it.
    deadline = time.monotonic() + 30
    with httpx.Client(timeout=5) as http:
        while time.monotonic() < deadline:
            if http.get(server.url + "/v1/stats").json()["spans"].get("accepted", 0) >= 40 * SPANS_PER_EXPORT:
                break
            time.sleep(0.05)
    code = server.terminate()
    sender.join(timeout=120)
    acked, sent = result["out"]
    stored = await stored_ids(db)
    print(
        f"\nSIGTERM mid-load: exit {code}; sent {sent} exports, acknowledged {len(acked)} spans, stored {len(stored)}"
    )
    # uvicorn finishes in-flight requests and the lifespan, then re-raises the captured SIGTERM (exit -15).
    assert code in (0, -15)
    assert "Application shutdown complete" in server.log.read_text()
    assert 0 < len(acked) < len(bodies) * SPANS_PER_EXPORT, "SIGTERM must land mid-load"
    assert acked <= stored, f"{len(acked - stored)} acknowledged spans were lost"


async def test_two_servers_one_database_exact_totals(serve: Any, project: tuple[int, str], otlp: Any, db) -> None:
    a, b = serve(), serve()
    bodies = exports(otlp, 80)
    acked, sent = send_all([a.url, b.url], project[1], bodies, 6)
    stored = await stored_ids(db)
    expected = set().union(*(ids for _, ids in bodies))
    print(f"\ntwo servers: sent {len(expected)} spans, acknowledged {len(acked)}, stored {len(stored)}")
    assert sent == len(bodies)
    assert acked == expected and stored == expected
