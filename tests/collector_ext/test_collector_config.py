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
