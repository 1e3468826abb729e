"""Secrets recorded as span attributes (auth headers, cookies, token-like query values) never reach the
database or an AI provider; one project's key can't write into another project.

Reading across projects is covered by tests/analysis_api/test_access.py; scrubbing rules by tests/collector_ext.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import stored_spans
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import text

SECRETS = {
    "http.request.header.authorization": ("Bearer eyJhbGciOiJIUzI1NiJ9.SECRET-JWT-PAYLOAD.sig",),
    "http.request.header.cookie": ("sessionid=SECRET-SESSION-COOKIE; theme=dark",),
    "http.response.header.set-cookie": ("sessionid=SECRET-SET-COOKIE; HttpOnly",),
    "http.request.header.x-api-key": ("SECRET-API-KEY-HEADER",),
    "url.query": "page=2&access_token=SECRET-ACCESS-TOKEN&api_key=SECRET-QUERY-KEY&password=SECRET-PASSWORD",
    "url.full": "https://shop.example/items/1?token=SECRET-URL-TOKEN&page=2",
}
NEEDLES = [
    "SECRET-JWT-PAYLOAD",
    "SECRET-SESSION-COOKIE",
    "SECRET-SET-COOKIE",
    "SECRET-API-KEY-HEADER",
    "SECRET-ACCESS-TOKEN",
    "SECRET-QUERY-KEY",
    "SECRET-PASSWORD",
    "SECRET-URL-TOKEN",
]


def traced_request(project_key: str | None = None) -> tuple[bytes, str]:
    """A request span carrying the secrets, with slow function children (so the analysis has something to say)."""
    memory = InMemorySpanExporter()
    attrs: dict[str, Any] = {"service.name": "shop-api"}
    if project_key:
        attrs["pystrument.project_key"] = project_key
    provider = TracerProvider(resource=Resource.create(attrs))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("secrets")
    with tracer.start_as_current_span("GET /items/{id}", kind=SpanKind.SERVER) as req:
        req.set_attributes(
            {"http.request.method": "GET", "http.route": "/items/{id}", "url.path": "/items/1", **SECRETS}
        )
        for i in range(3):
            with tracer.start_as_current_span(f"app.db.fetch_{i}") as fn:
                fn.set_attributes({"pystrument.synthetic": True, "db.query.text": "SELECT 1"})
                time.sleep(0.005)
    provider.shutdown()
    spans = memory.get_finished_spans()
    trace_id = format(spans[0].context.trace_id, "032x")
    return bytes(encode_spans(spans).SerializeToString()), trace_id


class CapturingAI:
    """A stdlib OpenAI-compatible chat completions server that records every raw request body."""

    def __init__(self) -> None:
        captured = self.bodies = []  # type: list[bytes]

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                captured.append(self.rfile.read(int(self.headers.get("content-length", 0))))
                content = json.dumps({"performance_score": 50, "bottleneck_analysis": [], "recommendations": []})
                data = json.dumps(
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "created": 1,
                        "model": "fake-model",
                        "choices": [
                            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
                        ],
                    }
                ).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def capturing_ai() -> Iterator[CapturingAI]:
    ai = CapturingAI()
    ai.thread.start()
    yield ai
    ai.server.shutdown()
    ai.server.server_close()


async def _raw_rows(db: Any) -> str:
    """Every stored row of spans and performance_records as text: what a database dump would show."""
    async with db.session() as s:
        spans = await stored_spans.stored_text(s)  # rows and packed function spans, decoded
        records = (await s.execute(text("SELECT r::text FROM performance_records r"))).scalars().all()
    return "\n".join([spans, *records])


async def test_secrets_never_reach_database_or_ai(
    settings: Any, db: Any, project: tuple[int, str], capturing_ai: CapturingAI, tmp_path: Path, monkeypatch
) -> None:
    from litestar.testing import AsyncTestClient
    from pystrument_analysis.analysis.config import ENV_CONFIG
    from pystrument_analysis.app import create_app

    service = {
        "provider": "openai",
        "api_key": "sk-test-123",
        "model": "fake-model",
        "endpoint": f"{capturing_ai.url}/v1/chat/completions",
        "timeout": 5,
        "retries": 0,
    }
    config = tmp_path / "pystrument.json"
    config.write_text(json.dumps({"ai_services": {"openai": service}}))
    monkeypatch.setenv(ENV_CONFIG, str(config))
    monkeypatch.setenv("PYSTRUMENT_ANALYSIS_POLL_S", "0.05")
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PYSTRUMENT_AI_DEFAULT_SERVICE"):
        monkeypatch.delenv(var, raising=False)
    body, trace_id = traced_request()
    async with AsyncTestClient(app=create_app(settings), base_url="http://localhost") as client:
        r = await client.post(
            "/v1/traces", content=body, headers={"content-type": "application/x-protobuf", "x-project-key": project[1]}
        )
        assert r.status_code == 200
        # The seed collect endpoint too: headers and query values in its request_info.
        report = {
            "trace_id": "seed_secret_trace",
            "request_info": {
                "method": "GET",
                "path": "/items/2?token=SECRET-URL-TOKEN",
                "query_params": {"api_key": "SECRET-QUERY-KEY"},
                "headers": {"Authorization": "Bearer SECRET-JWT-PAYLOAD", "Cookie": "sid=SECRET-SESSION-COOKIE"},
                "status_code": 200,
            },
            "performance_metrics": {"total_duration": 0.2},
            "function_calls": [{"function": "f", "duration": 0.1}],
        }
        r = await client.post("/api/v1/performance/collect", json=report, headers={"x-project-key": project[1]})
        assert r.status_code == 200, r.text
        dump = await _raw_rows(db)
        assert "GET /items/{id}" in dump and "seed_secret_trace" in dump
        leaked = [n for n in NEEDLES if n in dump]
        assert not leaked, f"secrets stored in the database: {leaked}"

        r = await client.post(
            "/api/v1/analysis/trigger", json={"trace_id": trace_id, "analysis_type": "manual", "ai_service": "openai"}
        )
        assert r.status_code == 200, r.text
        analysis_id = r.json()["data"]["analysis_id"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            data = (await client.get(f"/api/v1/analysis/results/{analysis_id}")).json()["data"]
            if data["status"] in ("completed", "failed"):
                break
            await asyncio.sleep(0.05)
        assert data["status"] == "completed", data
    assert capturing_ai.bodies, "the AI provider was never called"
    sent = b"\n".join(capturing_ai.bodies).decode()
    assert "fetch_" in sent, "the prompt must carry the trace"
    leaked = [n for n in NEEDLES if n in sent]
    assert not leaked, f"secrets sent to the AI provider: {leaked}"


async def test_a_key_cannot_write_into_another_project(client: Any, db: Any, make_project: Any) -> None:
    a_id, a_key = await make_project("a")
    _, b_key = await make_project("b")
    # Header key A, resource claiming project B: the header wins, nothing lands in B.
    body, _ = traced_request(project_key=b_key)
    r = await client.post(
        "/v1/traces", content=body, headers={"content-type": "application/x-protobuf", "x-project-key": a_key}
    )
    assert r.status_code == 200
    # A guessed or foreign key is refused outright.
    r = await client.post(
        "/v1/traces",
        content=body,
        headers={"content-type": "application/x-protobuf", "x-project-key": "pk_" + "0" * 24},
    )
    assert r.status_code == 401
    async with db.session() as s:
        counts = Counter(span["project_id"] for span in await stored_spans.stored_spans(s))
    assert counts == {a_id: 4}
    # Project B's API views stay empty when read with B's key.
    r = await client.get(f"/api/v1/projects/{b_key}")
    assert r.status_code == 200 and r.json()["data"].get("record_count", 0) == 0, r.text
