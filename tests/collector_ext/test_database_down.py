"""Database unreachable → 503 with Retry-After (never 401 or 500); ingest resumes when it is back.

The live server reaches Postgres through a loopback TCP proxy that the test closes and reopens.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pg_proxy import PgProxy, proxied_settings, running_proxy


@pytest.fixture
def pg_proxy(database_url: str) -> Iterator[PgProxy]:
    yield from running_proxy(database_url)


@pytest.fixture
def settings(database_url: str, pg_proxy: PgProxy, tmp_path: Path) -> Any:
    """The app's database URL goes through the proxy."""
    return proxied_settings(database_url, pg_proxy, tmp_path)


def _body() -> bytes:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("GET /", kind=SpanKind.SERVER):
        pass
    return encode_spans(memory.get_finished_spans()).SerializeToString()


async def test_database_down_is_503_then_recovers(pg_proxy, live_server, make_project, rows) -> None:
    import httpx
    from google.rpc.status_pb2 import Status

    _, cached_key = await make_project("cached")
    _, fresh_key = await make_project("fresh")
    url = live_server.url + "/v1/traces"

    def send(key: str) -> httpx.Response:
        headers = {"content-type": "application/x-protobuf", "x-project-key": key}
        return httpx.post(url, content=_body(), headers=headers, timeout=30)

    assert send(cached_key).status_code == 200
    pg_proxy.close()
    for key in (cached_key, fresh_key):  # a cached key fails at the write, an uncached one at the lookup
        r = send(key)
        assert r.status_code == 503, r.content
        assert int(r.headers["retry-after"]) > 0
        assert Status.FromString(r.content).code == 14
    pg_proxy.open()
    assert send(fresh_key).status_code == 200
    assert len(await rows("spans")) == 2
    stats = httpx.get(live_server.url + "/v1/stats").json()
    assert stats["spans"]["dropped"]["database_unavailable"] == {"requests": 2, "spans": 2}
