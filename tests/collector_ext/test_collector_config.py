"""``otel-collector.yaml``: the gateway config's shape, and that its exporter settings work against the receiver."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

CONFIG = Path(__file__).resolve().parents[2] / "otel-collector.yaml"
_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text())


def expand(value: str, env: dict[str, str]) -> str:
    """The Collector's ``${env:NAME:-default}`` substitution."""
    return _ENV_REF.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)


def test_config_shape() -> None:
    cfg = load()
    protocols = cfg["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")
    pipeline = cfg["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    assert pipeline["processors"][0] == "memory_limiter" and "batch" in pipeline["processors"]
    [exporter_name] = pipeline["exporters"]
    assert exporter_name.split("/")[0] == "otlphttp"
    exporter = cfg["exporters"][exporter_name]
    assert exporter["endpoint"] == "${env:PYSTRUMENT_ENDPOINT:-http://127.0.0.1:8000}"
    assert exporter["headers"] == {"x-project-key": "${env:PYSTRUMENT_PROJECT_KEY}"}
    assert exporter["compression"] == "gzip"
    assert exporter["retry_on_failure"]["enabled"] is True
    for name in pipeline["processors"]:
        assert name in cfg["processors"]
    for ext in cfg["service"].get("extensions", []):
        assert ext in cfg["extensions"]
    assert expand(exporter["endpoint"], {}) == "http://127.0.0.1:8000"


async def test_exporter_settings_reach_the_receiver(live_server, project, rows) -> None:
    """Export as the Collector's otlphttp exporter would with this config: <endpoint>/v1/traces, header, gzip."""
    exporter = load()["exporters"]["otlphttp/pystrument"]
    env = {"PYSTRUMENT_ENDPOINT": live_server.url, "PYSTRUMENT_PROJECT_KEY": project[1]}
    endpoint = expand(exporter["endpoint"], env).rstrip("/") + "/v1/traces"
    headers = {k: expand(v, env) for k, v in exporter["headers"].items()}
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("gw").start_as_current_span("GET /via-collector", kind=SpanKind.SERVER):
        pass
    otlp = OTLPSpanExporter(endpoint=endpoint, headers=headers, compression=Compression(exporter["compression"]))
    assert otlp.export(memory.get_finished_spans()) == SpanExportResult.SUCCESS
    [span] = await rows("spans")
    assert span["name"] == "GET /via-collector" and span["project_id"] == project[0]


def grpc_alternative() -> dict[str, Any]:
    """The commented ``otlp/pystrument`` exporter block, uncommented and parsed."""
    lines = CONFIG.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "# otlp/pystrument:")
    block = []
    for line in lines[start:]:
        if not line.strip().startswith("#"):
            break
        block.append(re.sub(r"^(\s*)# ?", r"\1", line, count=1))
    parsed: dict[str, Any] = yaml.safe_load("\n".join(block))
    return parsed["otlp/pystrument"]


async def test_the_grpc_alternative_reaches_the_grpc_receiver(settings, project, rows) -> None:
    """Export as the Collector's stock otlp (gRPC) exporter would with the documented block: host:port, header, gzip."""
    import dataclasses

    import grpc
    from conftest import LiveServer, free_port
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

    exporter = grpc_alternative()
    assert exporter["tls"] == {"insecure": True} and exporter["compression"] == "gzip"
    assert exporter["retry_on_failure"]["enabled"] is True
    assert expand(exporter["endpoint"], {}) == "127.0.0.1:4317"
    port = free_port()
    with LiveServer(dataclasses.replace(settings, grpc_port=port)):
        env = {"PYSTRUMENT_GRPC_ENDPOINT": f"127.0.0.1:{port}", "PYSTRUMENT_PROJECT_KEY": project[1]}
        memory = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        with provider.get_tracer("gw").start_as_current_span("GET /via-grpc", kind=SpanKind.SERVER):
            pass
        grpc_exporter = GrpcSpanExporter(
            endpoint=expand(exporter["endpoint"], env),
            insecure=True,
            headers={k: expand(v, env) for k, v in exporter["headers"].items()},
            compression=grpc.Compression.Gzip,
        )
        assert grpc_exporter.export(memory.get_finished_spans()) == SpanExportResult.SUCCESS
        grpc_exporter.shutdown()
    [span] = await rows("spans")
    assert span["name"] == "GET /via-grpc" and span["project_id"] == project[0]
