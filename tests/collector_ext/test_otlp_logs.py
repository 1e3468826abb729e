"""OTLP logs and metrics over HTTP: ``POST /v1/logs`` (protobuf from the SDK's exporter, JSON by hand) stored
with trace and span ids, scrubbed, idempotent, day-partitioned with retention, shown in the record detail;
``POST /v1/metrics`` answered and not stored."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pystrument_collector import retention
from sqlalchemy import text

PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}


async def logs_of(db: Any) -> list[dict[str, Any]]:
    async with db.session() as s:
        result = await s.execute(text("SELECT * FROM logs ORDER BY timestamp, log_id"))
        return [dict(r._mapping) for r in result]


def traced_request_with_logs(endpoint: str, key: str) -> tuple[list[Any], str]:
    """A request span and a function span; log lines inside each (sent by the SDK's HTTP log exporter)."""
    memory = InMemorySpanExporter()
    resource = Resource.create({"service.name": "log-shop"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=endpoint + "/v1/logs", headers={"x-project-key": key}))
    )
    logger = logging.getLogger("shop.checkout")
    logger.propagate = False
    handler = LoggingHandler(logger_provider=logs)
    logger.addHandler(handler)
    tracer = provider.get_tracer("t")
    try:
        with tracer.start_as_current_span("POST /checkout", kind=SpanKind.SERVER) as req:
            req.set_attributes({"http.request.method": "POST", "http.route": "/checkout"})
            logger.info("checkout started", extra={"cart.items": 3})
            with tracer.start_as_current_span("app.checkout.charge"):
                logger.error("card declined", extra={"api_key": "sk_live_123"})
    finally:
        logger.removeHandler(handler)
        logs.shutdown()
        provider.shutdown()
    finished = list(memory.get_finished_spans())
    return finished, format(finished[0].context.trace_id, "032x")


async def test_sdk_logs_are_stored_and_shown_in_the_record_detail(live_server, project, db) -> None:
    _, key = project
    spans, trace_id = traced_request_with_logs(live_server.url, key)
    body = encode_spans(spans).SerializeToString()
    assert httpx.post(live_server.url + "/v1/traces", content=body, headers={**PROTOBUF, "x-project-key": key})
    stored = await logs_of(db)
    assert [(r["body"], r["severity_text"], r["severity_number"]) for r in stored] == [
        ("checkout started", "INFO", 9),
        ("card declined", "ERROR", 17),
    ]
    charge = next(s for s in spans if s.name == "app.checkout.charge")
    assert stored[1]["span_id"] == format(charge.context.span_id, "016x")
    assert stored[1]["attributes"]["api_key"] == "[REDACTED]"
    assert {r["trace_id"] for r in stored} == {trace_id}

    r = httpx.get(live_server.url + f"/api/v1/performance/records/{trace_id}", params={"project_key": key})
    assert r.status_code == 200, r.text
    logs = r.json()["data"]["logs"]
    assert [(x["body"], x["span_id"], x["severity_text"]) for x in logs] == [
        ("checkout started", format(spans[-1].context.span_id, "016x"), "INFO"),
        ("card declined", format(charge.context.span_id, "016x"), "ERROR"),
    ]
    assert logs[0]["attributes"]["cart.items"] == 3 and logs[0]["scope_name"] == "shop.checkout"
    assert logs[0]["timestamp"].endswith("Z") and logs[0]["severity_number"] == 9


async def test_json_logs_partial_success_idempotence_and_refusals(live_server, project, db) -> None:
    _, key = project
    ns = int(datetime(2026, 3, 10, 12, tzinfo=UTC).timestamp() * 1e9)
    doc = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "js-shop"}}]},
                "scopeLogs": [
                    {
                        "scope": {"name": "orders"},
                        "logRecords": [
                            {
                                "timeUnixNano": str(ns),
                                "severityNumber": "SEVERITY_NUMBER_WARN",
                                "severityText": "WARN",
                                "body": {
                                    "kvlistValue": {"values": [{"key": "password", "value": {"stringValue": "x"}}]}
                                },
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "attributes": [{"key": "cookie", "value": {"stringValue": "sid=1"}}],
                            },
                            {"observedTimeUnixNano": ns + 1_000_000, "body": {"stringValue": "GET /?session_id=abc"}},
                            {"body": {"stringValue": "no time"}},
                            {"timeUnixNano": ns, "traceId": "xyz"},
                        ],
                    }
                ],
            }
        ]
    }
    url = live_server.url + "/v1/logs"
    for _ in range(2):  # sent twice: stored once
        r = httpx.post(url, json=doc, headers={"x-project-key": key})
        assert r.status_code == 200, r.text
        assert r.json()["partialSuccess"]["rejectedLogRecords"] == "2"
    stored = await logs_of(db)
    assert [r["body"] for r in stored] == [{"password": "[REDACTED]"}, "GET /?session_id=[REDACTED]"]
    first = stored[0]
    assert (first["severity_number"], first["span_id"], first["attributes"]) == (
        13,
        "eee19b7ec3c1b174",
        {"cookie": "[REDACTED]"},
    )
    assert (first["service_name"], first["scope_name"]) == ("js-shop", "orders")

    assert httpx.post(url, json=doc).status_code == 401  # no key
    bad = httpx.post(url, content=b"\x00garbage", headers={**PROTOBUF, "x-project-key": key})
    assert bad.status_code == 400 and "ExportLogsServiceRequest" in Status.FromString(bad.content).message
    assert httpx.post(url, content=b"x", headers={"content-type": "text/plain"}).status_code == 415
    empty = httpx.post(url, content=b"", headers={**PROTOBUF, "x-project-key": key})
    assert (
        empty.status_code == 200
        and ExportLogsServiceResponse.FromString(empty.content).partial_success.rejected_log_records == 0
    )
    stats = httpx.get(live_server.url + "/v1/stats").json()
    assert stats["logs"]["accepted"] == 2 and stats["logs"]["duplicate"] == 2
    assert stats["logs"]["rejected"] == {"missing_time": 2, "invalid_trace_id": 2}


def test_metrics_are_answered_and_not_stored(live_server, project) -> None:
    _, key = project
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=live_server.url + "/v1/metrics", headers={"x-project-key": key}),
        export_interval_millis=60_000,
    )
    meters = MeterProvider(metric_readers=[reader])
    meters.get_meter("shop").create_histogram("latency").record(0.2)
    assert reader.force_flush(10_000)
    meters.shutdown()
    ok = httpx.post(live_server.url + "/v1/metrics", json={"resourceMetrics": []})
    assert ok.status_code == 200 and ok.json() == {}
    assert httpx.post(live_server.url + "/v1/metrics", content=b"[1]", headers=JSON).status_code == 400
    assert httpx.get(live_server.url + "/v1/stats").json()["metrics"]["requests"] >= 2


async def test_log_partitions_retention_and_project_delete(db, project, make_project) -> None:
    from pystrument_collector.ingest import Ingestor, JsonLogs

    project_id, key = project
    _, other_key = await make_project("other")
    today = date(2026, 3, 10)

    def body(day: date, text_: str) -> bytes:
        ns = int(datetime(day.year, day.month, day.day, 12, tzinfo=UTC).timestamp() * 1e9)
        record = {"timeUnixNano": str(ns), "body": {"stringValue": text_}}
        return httpx.Request("POST", "/", json={"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}).content

    ingestor = Ingestor()
    try:
        old = today - timedelta(days=10)
        await retention.ensure_partitions(db, old, behind=0, ahead=0)
        report = await retention.ensure_partitions(db, today)
        assert "logs_p20260310" in report.created and "spans_p20260310" in report.created
        for k, day, text_ in ((key, old, "old"), (key, today, "today"), (other_key, today, "other")):
            data = body(day, text_)
            await ingestor.store(db, JsonLogs(data), k, len(data))
    finally:
        await ingestor.close()
    async with db.session() as s:
        where = await s.execute(text("SELECT tableoid::regclass::text, count(*) FROM logs GROUP BY 1 ORDER BY 1"))
        assert dict(where.all()) == {"logs_p20260228": 1, "logs_p20260310": 2}
    report = await retention.drop_expired(db, 7, datetime(2026, 3, 10, 13, tzinfo=UTC))
    assert "logs_p20260228" in report.dropped
    assert sorted(r["body"] for r in await logs_of(db)) == ["other", "today"]
    async with db.session() as s:
        await s.execute(text("DELETE FROM projects WHERE id = :p"), {"p": project_id})
    assert [r["body"] for r in await logs_of(db)] == ["other"]
    async with db.session() as s:
        key_def = await s.execute(
            text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'logs'::regclass AND contype = 'p'"
            )
        )
        assert key_def.scalar_one() == 'PRIMARY KEY (project_id, "timestamp", log_id)'


def test_trace_logs_is_importable_for_the_analysis() -> None:
    from pystrument_collector.logs import MAX_TRACE_LOGS, TraceLog, trace_logs

    assert callable(trace_logs) and MAX_TRACE_LOGS > 0 and "span_id" in TraceLog.__dataclass_fields__
