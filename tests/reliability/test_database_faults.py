"""Postgres going away mid-load: 503 + Retry-After while it is down, the real OTLP exporter retries, and
afterwards every exported span is stored. The server reaches Postgres through a loopback TCP proxy that the
test closes (dropping every connection) and reopens, as a restart or failover looks from the server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from pg_proxy import PgProxy, proxied_settings, running_proxy


@pytest.fixture
def pg_proxy(database_url: str) -> Iterator[PgProxy]:
    yield from running_proxy(database_url)


@pytest.fixture
def settings(database_url: str, pg_proxy: PgProxy, tmp_path: Path) -> Any:
    """The app's database URL goes through the proxy."""
    return proxied_settings(database_url, pg_proxy, tmp_path)


async def test_postgres_down_mid_load_then_back_loses_nothing(
    pg_proxy: PgProxy, live_server: Any, project: tuple[int, str], otlp: Any, count_spans
) -> None:
    key = project[1]
    batches = [otlp.make_spans(10) for _ in range(60)]
    results: list[SpanExportResult] = []

    def export_all() -> None:
        exporter = OTLPSpanExporter(endpoint=live_server.url + "/v1/traces", headers={"x-project-key": key}, timeout=60)
        for spans in batches:
            results.append(exporter.export(spans))
            time.sleep(0.02)
        exporter.shutdown()

    sender = threading.Thread(target=export_all)
    sender.start()
    while len(results) < 10:
        time.sleep(0.01)
    pg_proxy.close()
    down_at = time.monotonic()
    unavailable = 0
    with httpx.Client(timeout=10) as http:
        while time.monotonic() - down_at < 3:
            stats = http.get(live_server.url + "/v1/stats").json()
            unavailable = stats["spans"]["dropped"].get("database_unavailable", {}).get("requests", 0)
            time.sleep(0.1)
    pg_proxy.open()
    sender.join(timeout=120)
    stored = await count_spans()
    print(
        f"\nPostgres down 3 s mid-load: {unavailable} exports answered 503 and retried; "
        f"exported {len(batches) * 10} spans, stored {stored}"
    )
    assert unavailable >= 1, "the outage must have been seen by the receiver"
    assert results == [SpanExportResult.SUCCESS] * len(batches)
    assert stored == len(batches) * 10
