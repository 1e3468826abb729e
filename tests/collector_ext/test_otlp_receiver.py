"""``POST /v1/traces`` end to end: real OTel SDK and exporter → live server over loopback → Postgres rows."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import httpx
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace import Status as OtelStatus

PROTOBUF = {"content-type": "application/x-protobuf"}


def record_spans(resource: dict[str, Any] | None = None, *, error: bool = False) -> list[ReadableSpan]:
    """A request span with a function child and a DB child, made by a real TracerProvider."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop-api", **(resource or {})}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("GET /users/{id}", kind=SpanKind.SERVER) as req:
        req.set_attributes(
            {
                "http.request.method": "GET",
                "http.route": "/users/{id}",
                "url.path": "/users/7",
                "url.query": "page=2&access_token=s3cr3t",
                "http.response.status_code": 500 if error else 200,
                "http.request.header.authorization": ("Bearer abc",),
                "pystrument.cpu_time_ms": 12.5,
                "pystrument.memory.peak_mb": 45,
            }
        )
        with tracer.start_as_current_span("app.views.get_user") as fn:
            fn.set_attributes({"pystrument.synthetic": True, "code.function.name": "app.views.get_user"})
            fn.add_event("cache miss", {"key": "user:7"})
            with tracer.start_as_current_span("SELECT users", kind=SpanKind.CLIENT) as q:
                q.set_status(OtelStatus(StatusCode.ERROR, "timeout"))
    provider.shutdown()
    return list(memory.get_finished_spans())


def exporter(server: Any, key: str | None, **kw: Any) -> OTLPSpanExporter:
    headers = {"x-project-key": key} if key else {}
    return OTLPSpanExporter(endpoint=server.url + "/v1/traces", headers=headers, timeout=10, **kw)


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    ctx = span.get_span_context()
    assert ctx is not None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


async def test_real_exporter_protobuf_maps_spans_and_request_record(live_server, project, rows) -> None:
    project_id, key = project
    spans = record_spans()
    assert exporter(live_server, key).export(spans) == SpanExportResult.SUCCESS

    stored = {r["name"]: r for r in await rows("spans")}
    assert set(stored) == {"GET /users/{id}", "app.views.get_user", "SELECT users"}
    req, fn, db_call = stored["GET /users/{id}"], stored["app.views.get_user"], stored["SELECT users"]
    by_name = {s.name: s for s in spans}
    trace_id, req_id = hex_ids(by_name["GET /users/{id}"])
    assert (req["trace_id"], req["span_id"]) == (trace_id, req_id)
    assert req["parent_span_id"] is None and fn["parent_span_id"] == req_id
    assert db_call["parent_span_id"] == fn["span_id"]
    assert (req["kind"], fn["kind"], db_call["kind"]) == ("SERVER", "INTERNAL", "CLIENT")
    assert fn["synthetic"] is True and req["synthetic"] is False
    assert (db_call["status_code"], db_call["status_message"]) == (2, "timeout")
    assert {r["project_id"] for r in stored.values()} == {project_id}
    assert req["service_name"] == "shop-api"
    assert req["start_time"].tzinfo is not None
    expected = (by_name["GET /users/{id}"].end_time - by_name["GET /users/{id}"].start_time) / 1e9
    assert abs(req["duration"] - expected) < 1e-6
    # Secrets never reach the database.
    assert req["attributes"]["http.request.header.authorization"] == "[REDACTED]"
    assert req["attributes"]["url.query"] == "page=2&access_token=[REDACTED]"
    assert fn["events"][0]["name"] == "cache miss" and fn["events"][0]["attributes"] == {"key": "user:7"}

    [record] = await rows("performance_records")
    assert (record["trace_id"], record["span_id"]) == (trace_id, req_id)
    assert (record["method"], record["route"], record["path"], record["status_code"]) == (
        "GET",
        "/users/{id}",
        "/users/7",
        200,
    )
    assert record["cpu_time"] == 0.0125 and record["memory"] == {"peak_mb": 45}
    assert record["is_error"] is False and record["service_name"] == "shop-api"
    assert record["timestamp"] == req["start_time"]
    [proj] = await rows("projects")
    assert proj["last_activity"] is not None


async def test_http_5xx_marks_record_as_error(live_server, project, rows) -> None:
    assert exporter(live_server, project[1]).export(record_spans(error=True)) == SpanExportResult.SUCCESS
    [record] = await rows("performance_records")
    assert record["is_error"] is True and record["status_code"] == 500


async def test_gzip_and_deflate_bodies(live_server, project, rows) -> None:
    key = project[1]
    assert exporter(live_server, key, compression=Compression.Gzip).export(record_spans()) == SpanExportResult.SUCCESS
    body = encode_spans(record_spans()).SerializeToString()
    r = httpx.post(
        live_server.url + "/v1/traces",
        content=zlib.compress(body),
        headers={**PROTOBUF, "content-encoding": "deflate", "x-project-key": key},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-protobuf")
    assert not ExportTraceServiceResponse.FromString(r.content).HasField("partial_success")
    assert len(await rows("spans")) == 6
    assert len(await rows("performance_records")) == 2

    bad = httpx.post(
        live_server.url + "/v1/traces",
        content=gzip.compress(body)[:-12],
        headers={**PROTOBUF, "content-encoding": "gzip", "x-project-key": key},
    )
    assert bad.status_code == 400
    assert "gzip" in Status.FromString(bad.content).message


async def test_project_key_from_resource_attribute(live_server, make_project, rows) -> None:
    project_id, key = await make_project()
    spans = record_spans({"pystrument.project_key": key})
    assert exporter(live_server, None).export(spans) == SpanExportResult.SUCCESS
    stored = await rows("spans")
    assert len(stored) == 3 and {r["project_id"] for r in stored} == {project_id}


async def test_header_key_wins_over_resource_attribute(live_server, make_project, rows) -> None:
    _, a_key = await make_project("a")
    b_id, b_key = await make_project("b")
    assert exporter(live_server, b_key).export(record_spans({"pystrument.project_key": a_key})) == (
        SpanExportResult.SUCCESS
    )
    assert {r["project_id"] for r in await rows("spans")} == {b_id}


async def test_unknown_or_missing_key_is_401_and_stores_nothing(live_server, project, rows) -> None:
    spans = record_spans()
    assert exporter(live_server, "proj_doesnotexist").export(spans) == SpanExportResult.FAILURE
    assert exporter(live_server, None).export(spans) == SpanExportResult.FAILURE
    body = encode_spans(spans).SerializeToString()
    r = httpx.post(live_server.url + "/v1/traces", content=body, headers={**PROTOBUF, "x-project-key": "proj_nope"})
    assert r.status_code == 401
    assert Status.FromString(r.content).code == 16
    # An unknown header key is refused even when the resource carries a valid one.
    r = httpx.post(
        live_server.url + "/v1/traces",
        content=encode_spans(record_spans({"pystrument.project_key": project[1]})).SerializeToString(),
        headers={**PROTOBUF, "x-project-key": "proj_nope"},
    )
    assert r.status_code == 401
    assert await rows("spans") == [] and await rows("performance_records") == []
    [proj] = await rows("projects")
    assert proj["last_activity"] is None


async def test_duplicate_batch_stores_each_span_once(live_server, project, rows) -> None:
    spans = record_spans()
    exp = exporter(live_server, project[1])
    for _ in range(3):
        assert exp.export(spans) == SpanExportResult.SUCCESS
    assert len(await rows("spans")) == 3
    assert len(await rows("performance_records")) == 1
    stats = httpx.get(live_server.url + "/v1/stats").json()
    assert stats["spans"]["accepted"] == 3 and stats["spans"]["duplicate"] == 6


async def test_children_before_parent_across_batches(live_server, project, rows) -> None:
    spans = record_spans()
    request_span = next(s for s in spans if s.parent is None)
    children = [s for s in spans if s.parent is not None]
    exp = exporter(live_server, project[1])
    assert exp.export(children[::-1]) == SpanExportResult.SUCCESS
    assert await rows("performance_records") == []
    assert exp.export([request_span]) == SpanExportResult.SUCCESS
    stored = {r["span_id"]: r for r in await rows("spans")}
    _, req_id = hex_ids(request_span)
    assert len(stored) == 3 and stored[req_id]["parent_span_id"] is None
    parents = {r["parent_span_id"] for r in stored.values()}
    assert req_id in parents
    [record] = await rows("performance_records")
    assert record["span_id"] == req_id


async def test_other_content_type_is_415(live_server, project, rows) -> None:
    r = httpx.post(
        live_server.url + "/v1/traces",
        content=b"hello",
        headers={"content-type": "text/plain", "x-project-key": project[1]},
    )
    assert r.status_code == 415
    assert "application/x-protobuf" in r.json()["message"]
    assert await rows("spans") == []


async def test_garbage_protobuf_is_400_with_status(live_server, project, rows) -> None:
    r = httpx.post(
        live_server.url + "/v1/traces",
        content=b"\xff\xff\xff\x00garbage",
        headers={**PROTOBUF, "x-project-key": project[1]},
    )
    assert r.status_code == 400
    status = Status.FromString(r.content)
    assert status.code == 3 and "protobuf" in status.message
    r = httpx.post(
        live_server.url + "/v1/traces",
        content=b"{not json",
        headers={"content-type": "application/json", "x-project-key": project[1]},
    )
    assert r.status_code == 400 and "JSON" in r.json()["message"]
    assert await rows("spans") == []


async def test_large_export_is_stored_whole(live_server, project, rows) -> None:
    """A body above the worker-thread threshold (≈2,000 spans in one export) is mapped off the event loop."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bulk"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bulk")
    for i in range(100):
        with tracer.start_as_current_span(f"GET /item/{i}", kind=SpanKind.SERVER):
            for j in range(19):
                with tracer.start_as_current_span(f"mod.func_{j}") as fn:
                    fn.set_attributes({"pystrument.synthetic": True, "code.file.path": "/srv/app/module.py" * 8})
    spans = memory.get_finished_spans()
    assert len(encode_spans(spans).SerializeToString()) > 512 * 1024
    assert exporter(live_server, project[1]).export(spans) == SpanExportResult.SUCCESS
    assert len(await rows("spans")) == 2000
    assert len(await rows("performance_records")) == 100


async def test_paused_project_is_403_until_resumed(live_server, project, rows, db) -> None:
    from sqlalchemy import text

    project_id, key = project
    spans = record_spans()

    async def set_status(status: str) -> None:
        async with db.session() as s:
            await s.execute(text("UPDATE projects SET status = :s WHERE id = :i"), {"s": status, "i": project_id})

    await set_status("paused")
    body = encode_spans(spans).SerializeToString()
    r = httpx.post(live_server.url + "/v1/traces", content=body, headers={**PROTOBUF, "x-project-key": key})
    assert r.status_code == 403 and "paused" in Status.FromString(r.content).message
    assert await rows("spans") == []
    await set_status("active")
    assert exporter(live_server, key).export(spans) == SpanExportResult.SUCCESS
    assert len(await rows("spans")) == 3
