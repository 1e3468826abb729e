"""OTLP/gRPC end to end: the OTel SDK's gRPC exporters and a raw gRPC client → the live server's gRPC port →
Postgres, through the same pipeline as ``POST /v1/*`` (limits, keys, idempotence, scrubbing, partial success)."""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from conftest import LiveServer, free_port
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pg_proxy import PgProxy, proxied_settings, running_proxy

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS_EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
METRICS_EXPORT = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"


@pytest.fixture
def grpc_server(settings: Any) -> Iterator[LiveServer]:
    """The app with OTLP/gRPC on a free loopback port (``server.grpc``)."""
    port = free_port()
    with LiveServer(dataclasses.replace(settings, grpc_port=port)) as server:
        server.grpc = f"127.0.0.1:{port}"  # type: ignore[attr-defined]
        yield server


def spans(resource: dict[str, Any] | None = None) -> list[Any]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "grpc-shop", **(resource or {})}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("GET /orders/{id}", kind=SpanKind.SERVER) as req:
        req.set_attributes(
            {
                "http.request.method": "GET",
                "http.route": "/orders/{id}",
                "url.path": "/orders/3",
                "url.query": "access_token=s3cr3t&page=1",
                "http.response.status_code": 200,
                "http.request.header.authorization": ("Bearer abc",),
            }
        )
        with tracer.start_as_current_span("app.orders.load") as fn:
            fn.set_attributes({"pystrument.synthetic": True, "code.function.name": "app.orders.load"})
    provider.shutdown()
    return list(memory.get_finished_spans())


def call(target: str, method: str, body: bytes, key: str | None, **kw: Any) -> tuple[bytes, Any]:
    """One unary call with raw bytes; returns (response, call) or raises ``grpc.RpcError``."""
    metadata = (("x-project-key", key),) if key else ()
    with grpc.insecure_channel(target) as channel:
        stub = channel.unary_unary(method)
        response, rpc = stub.with_call(body, metadata=metadata, timeout=20, **kw)
        return response, rpc


def rpc_error(target: str, method: str, body: bytes, key: str | None, **kw: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(target, method, body, key, **kw)
    return info.value


async def test_sdk_grpc_exporter_stores_spans_scrubbed_and_once(grpc_server, project, rows) -> None:
    _, key = project
    exporter = OTLPSpanExporter(
        endpoint=grpc_server.grpc, insecure=True, headers={"x-project-key": key}, compression=grpc.Compression.Gzip
    )
    batch = spans()
    assert exporter.export(batch) == SpanExportResult.SUCCESS
    assert exporter.export(batch) == SpanExportResult.SUCCESS  # a retry: stored once
    exporter.shutdown()
    stored = await rows("spans")
    assert sorted(s["name"] for s in stored) == ["GET /orders/{id}", "app.orders.load"]
    request = next(s for s in stored if s["kind"] == "SERVER")
    assert request["service_name"] == "grpc-shop"
    assert request["attributes"]["http.request.header.authorization"] == "[REDACTED]"
    assert request["attributes"]["url.query"] == "access_token=[REDACTED]&page=1"
    [record] = await rows("performance_records")
    assert record["route"] == "/orders/{id}"
    stats = httpx.get(grpc_server.url + "/v1/stats").json()
    assert stats["spans"]["accepted"] == 2 and stats["spans"]["duplicate"] == 2
    assert stats["transports"]["grpc"] == 2


async def test_project_from_resource_attribute_and_refusals(grpc_server, project, rows) -> None:
    _, key = project
    body = encode_spans(spans({"pystrument.project_key": key})).SerializeToString()
    response, _ = call(grpc_server.grpc, TRACE_EXPORT, body, None)
    assert ExportTraceServiceResponse.FromString(response) == ExportTraceServiceResponse()
    assert len(await rows("spans")) == 2

    plain = encode_spans(spans()).SerializeToString()
    missing = rpc_error(grpc_server.grpc, TRACE_EXPORT, plain, None)
    assert missing.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "X-Project-Key" in missing.details()
    unknown = rpc_error(grpc_server.grpc, TRACE_EXPORT, plain, "proj_nope")
    assert unknown.code() == grpc.StatusCode.UNAUTHENTICATED and "unknown project key" in unknown.details()
    garbage = rpc_error(grpc_server.grpc, TRACE_EXPORT, b"\xff\x00 not protobuf", key)
    assert garbage.code() == grpc.StatusCode.INVALID_ARGUMENT and "protobuf" in garbage.details()
    assert len(await rows("spans")) == 2  # nothing more stored


async def test_partial_success_names_the_refused_spans(grpc_server, project, rows) -> None:
    _, key = project
    request = encode_spans(spans())
    request.resource_spans[0].scope_spans[0].spans[0].trace_id = b"short"
    response, _ = call(grpc_server.grpc, TRACE_EXPORT, request.SerializeToString(), key)
    partial = ExportTraceServiceResponse.FromString(response).partial_success
    assert partial.rejected_spans == 1 and "trace_id" in partial.error_message
    assert len(await rows("spans")) == 1


async def test_gzip_and_size_limit(monkeypatch, settings, project, rows) -> None:
    _, key = project
    monkeypatch.setenv("PYSTRUMENT_MAX_BODY_BYTES", "20000")
    port = free_port()
    with LiveServer(dataclasses.replace(settings, grpc_port=port)):
        target = f"127.0.0.1:{port}"
        small = encode_spans(spans()).SerializeToString()
        call(target, TRACE_EXPORT, small, key, compression=grpc.Compression.Gzip)
        big = ExportTraceServiceRequest()
        big.CopyFrom(encode_spans(spans()))
        big.resource_spans[0].scope_spans[0].spans[0].name = "x" * 50_000  # compresses to a few hundred bytes
        error = rpc_error(target, TRACE_EXPORT, big.SerializeToString(), key, compression=grpc.Compression.Gzip)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert not any(k == "google.rpc.retryinfo-bin" for k, _ in error.trailing_metadata() or ())
    assert len(await rows("spans")) == 2


@pytest.fixture
def pg_proxy(database_url: str) -> Iterator[PgProxy]:
    yield from running_proxy(database_url)


async def test_database_down_is_unavailable_with_retry_info(database_url, pg_proxy, tmp_path, make_project) -> None:
    _, key = await make_project("down")
    port = free_port()
    settings = dataclasses.replace(proxied_settings(database_url, pg_proxy, tmp_path), grpc_port=port)
    with LiveServer(settings):
        body = encode_spans(spans()).SerializeToString()
        pg_proxy.close()
        error = rpc_error(f"127.0.0.1:{port}", TRACE_EXPORT, body, key)
        pg_proxy.open()
        assert error.code() == grpc.StatusCode.UNAVAILABLE and "retry later" in error.details()
        trailers = dict(error.trailing_metadata() or ())
        assert RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"]).retry_delay.seconds > 0
        status = Status.FromString(trailers["grpc-status-details-bin"])
        assert status.code == grpc.StatusCode.UNAVAILABLE.value[0] and status.details[0].Is(RetryInfo.DESCRIPTOR)
        call(f"127.0.0.1:{port}", TRACE_EXPORT, body, key)  # back: stored


async def test_sdk_log_and_metric_exporters(grpc_server, project, rows, db) -> None:
    _, key = project
    batch = spans()
    span = next(s for s in batch if s.name == "app.orders.load")
    OTLPSpanExporter(endpoint=grpc_server.grpc, insecure=True, headers={"x-project-key": key}).export(batch)

    provider = LoggerProvider(resource=Resource.create({"service.name": "grpc-shop"}))
    exporter = OTLPLogExporter(endpoint=grpc_server.grpc, insecure=True, headers={"x-project-key": key})
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger("shop.orders")
    logger.propagate = False
    handler = LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    try:
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan

        with trace.use_span(NonRecordingSpan(span.get_span_context())):
            logger.warning("order %s is late; see https://x.test/?token=abc123", 3, extra={"password": "hunter2"})
        logger.error("outside any span")
    finally:
        logger.removeHandler(handler)
        provider.shutdown()

    stored = await rows_of(db, "logs")
    assert [r["body"] for r in stored] == [
        "order 3 is late; see https://x.test/?token=[REDACTED]",
        "outside any span",
    ]
    first, second = stored
    assert first["trace_id"] == format(span.context.trace_id, "032x")
    assert first["span_id"] == format(span.context.span_id, "016x")
    assert (first["severity_text"], first["severity_number"]) == ("WARN", SeverityNumber.WARN.value)
    assert first["attributes"]["password"] == "[REDACTED]"
    assert first["scope_name"] == "shop.orders" and first["service_name"] == "grpc-shop"
    assert second["trace_id"] is None and second["span_id"] is None

    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=grpc_server.grpc, insecure=True, headers={"x-project-key": key}),
        export_interval_millis=60_000,
    )
    meters = MeterProvider(metric_readers=[reader])
    meters.get_meter("shop").create_counter("orders").add(3)
    assert reader.force_flush(10_000)
    meters.shutdown()
    stats = httpx.get(grpc_server.url + "/v1/stats").json()
    assert stats["metrics"]["requests"] >= 1 and stats["metrics"]["stored"] is False  # flush, then shutdown
    assert stats["logs"]["accepted"] == 2


async def rows_of(db: Any, table: str) -> list[dict[str, Any]]:
    from sqlalchemy import text

    async with db.session() as s:
        result = await s.execute(text(f"SELECT * FROM {table} ORDER BY timestamp"))
        return [dict(r._mapping) for r in result]


async def test_logs_resent_are_stored_once_and_metrics_answered(grpc_server, project, db) -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

    _, key = project
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    records.add(time_unix_nano=1_700_000_000_000_000_000, severity_text="INFO").body.string_value = "hello"
    records.add(observed_time_unix_nano=1_700_000_000_000_000_001).body.string_value = "observed only"
    records.add(span_id=b"bad").body.string_value = "no time, bad id"
    body = request.SerializeToString()
    for _ in range(2):
        response, _ = call(grpc_server.grpc, LOGS_EXPORT, body, key)
        partial = ExportLogsServiceResponse.FromString(response).partial_success
        assert partial.rejected_log_records == 1 and "missing" in partial.error_message
    assert [r["body"] for r in await rows_of(db, "logs")] == ["hello", "observed only"]

    response, _ = call(grpc_server.grpc, METRICS_EXPORT, b"", key)
    assert ExportMetricsServiceResponse.FromString(response) == ExportMetricsServiceResponse()
    assert rpc_error(grpc_server.grpc, METRICS_EXPORT, b"\xff", key).code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_taken_port_fails_when_asked_for_and_warns_by_default(settings) -> None:
    from litestar.testing import AsyncTestClient
    from pystrument_analysis.app import create_app

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BaseException) as failed:  # the lifespan's error, perhaps in an exception group
            async with AsyncTestClient(app=create_app(dataclasses.replace(settings, grpc_port=port))):
                pass
        assert isinstance(failed.value, OSError) or failed.group_contains(OSError, match="--grpc-port")
        assert "--grpc-port" in str(failed.value) or isinstance(failed.value, BaseExceptionGroup)
        relaxed = create_app(dataclasses.replace(settings, grpc_port=port, grpc_required=False))
        warnings: list[str] = []
        handler = logging.Handler(logging.WARNING)
        handler.emit = lambda record: warnings.append(record.getMessage())  # type: ignore[method-assign]
        logging.getLogger("pystrument_analysis.app").addHandler(handler)
        try:
            async with AsyncTestClient(app=relaxed, base_url="http://localhost") as client:
                assert (await client.get("/health")).status_code == 200
                assert relaxed.state.grpc_port is None
        finally:
            logging.getLogger("pystrument_analysis.app").removeHandler(handler)
        assert any("OTLP/gRPC is not served" in w and "--grpc-port" in w for w in warnings), warnings


def test_grpc_port_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from pystrument_collector.settings import Settings

    monkeypatch.delenv("PYSTRUMENT_GRPC_PORT", raising=False)
    default = Settings.from_env()
    assert (default.grpc_port, default.grpc_required) == (4317, False)
    assert Settings.from_env(grpc_port=0).grpc_port == 0
    monkeypatch.setenv("PYSTRUMENT_GRPC_PORT", "4400")
    assert (Settings.from_env().grpc_port, Settings.from_env().grpc_required) == (4400, True)
    assert Settings.from_env(grpc_port=4500).grpc_port == 4500
    monkeypatch.setenv("PYSTRUMENT_GRPC_PORT", "grpc")
    with pytest.raises(ValueError, match="PYSTRUMENT_GRPC_PORT"):
        Settings.from_env()
    with pytest.raises(ValueError, match="--grpc-port"):
        Settings(port=8000, grpc_port=8000).validate()
