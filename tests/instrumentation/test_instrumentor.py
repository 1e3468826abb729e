"""The zero-code path: the ``pystrument`` entry point, the instrumentor's contract, and a tiny Flask app run
under ``opentelemetry-instrument`` with the console exporter (no server: Flask's test client)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pystrument
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pystrument._instrumentor import PystrumentInstrumentor


def test_entry_point_resolves() -> None:
    (ep,) = entry_points(group="opentelemetry_instrumentor", name="pystrument")
    assert ep.load() is PystrumentInstrumentor
    assert PystrumentInstrumentor().instrumentation_dependencies() == ()


def napping() -> None:
    time.sleep(0.04)


def test_instrumentor_is_idempotent_and_uninstruments(caplog: pytest.LogCaptureFixture) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = PystrumentInstrumentor()
    instrumentor.instrument(tracer_provider=provider, min_span_ms=0)
    try:
        with caplog.at_level(logging.WARNING):
            instrumentor.instrument(tracer_provider=provider)
        assert "already instrumented" in caplog.text
        processors = provider._active_span_processor._span_processors  # type: ignore[attr-defined]
        assert sum(isinstance(p, pystrument.PystrumentSpanProcessor) for p in processors) == 1
        with provider.get_tracer("t").start_as_current_span("GET /a", kind=SpanKind.SERVER):
            napping()
        provider.force_flush()
        assert [s.name for s in exporter.get_finished_spans() if s.name == "napping"] == ["napping"]
    finally:
        instrumentor.uninstrument()
    exporter.clear()
    with provider.get_tracer("t").start_as_current_span("GET /b", kind=SpanKind.SERVER):
        napping()
    provider.force_flush()
    assert [s.name for s in exporter.get_finished_spans()] == ["GET /b"]
    provider.shutdown()


APP = textwrap.dedent(
    """
    import time
    from flask import Flask

    app = Flask(__name__)

    def load_items(n):
        time.sleep(0.03)
        return list(range(n))

    def compute_totals(n):
        items = load_items(n)
        deadline = time.perf_counter() + 0.03
        while time.perf_counter() < deadline:
            sum(i * 1.07 for i in items[:50])
        return 1

    @app.get("/checkout")
    def checkout():
        return {"total": compute_totals(200)}

    with app.test_client() as client:
        assert client.get("/checkout").status_code == 200
    """
)


def run_instrumented(tmp_path: Path, **env: str) -> list[dict[str, Any]]:
    script = tmp_path / "tiny_app.py"
    script.write_text(APP)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYSTRUMENT_", "OTEL_"))}
    clean.update(
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_SERVICE_NAME="tiny",
        **env,
    )
    bindir = Path(sys.executable).parent
    done = subprocess.run(
        [str(bindir / "opentelemetry-instrument"), sys.executable, str(script)],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    decoder, text, spans, i = json.JSONDecoder(), done.stdout, [], 0
    while (start := text.find("{", i)) >= 0:
        span, i = decoder.raw_decode(text, start)
        spans.append(span)
    return spans


def test_flask_under_opentelemetry_instrument_gets_function_spans(tmp_path: Path) -> None:
    spans = run_instrumented(tmp_path, PYSTRUMENT_MIN_SPAN_MS="5")
    (request,) = [s for s in spans if s["kind"] == "SpanKind.SERVER"]
    assert request["attributes"]["pystrument.profile.interval_ms"] == 5
    assert request["attributes"]["pystrument.cpu_time_ms"] > 0
    functions = {s["name"]: s for s in spans if s["attributes"].get("pystrument.synthetic")}
    assert {"checkout", "compute_totals", "load_items"} <= functions.keys(), sorted(functions)
    assert all(s["context"]["trace_id"] == request["context"]["trace_id"] for s in functions.values())
    assert functions["load_items"]["parent_id"] == functions["compute_totals"]["context"]["span_id"]
    assert functions["compute_totals"]["parent_id"] == functions["checkout"]["context"]["span_id"]
    # Flask's dispatch chain is one collapsed library span between the request and the view.
    dispatch = functions["Flask.dispatch_request"]
    assert dispatch["attributes"]["pystrument.library"] is True
    assert functions["checkout"]["parent_id"] == dispatch["context"]["span_id"]
    assert dispatch["parent_id"] == request["context"]["span_id"]


def test_disabling_the_instrumentation_by_name(tmp_path: Path) -> None:
    spans = run_instrumented(tmp_path, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="pystrument")
    assert [s["kind"] for s in spans] == ["SpanKind.SERVER"]
    assert not any(k.startswith("pystrument.") for k in spans[0]["attributes"])
