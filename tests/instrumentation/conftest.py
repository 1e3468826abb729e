"""Fixtures for the SDK tests: a real TracerProvider with an in-memory exporter and pystrument's processor."""

from __future__ import annotations

import os
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pystrument import PystrumentSpanProcessor, _safety, configure


@dataclass
class Tracing:
    """One provider wired to an in-memory exporter, with pystrument configured on it."""

    provider: TracerProvider
    exporter: InMemorySpanExporter
    processor: PystrumentSpanProcessor

    @property
    def tracer(self) -> Any:
        return self.provider.get_tracer("tests")

    def spans(self) -> list[ReadableSpan]:
        assert self.provider.force_flush(10_000)
        return list(self.exporter.get_finished_spans())

    def requests(self) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.kind == SpanKind.SERVER]

    def functions(self, request: ReadableSpan | None = None, *, with_gc: bool = False) -> list[ReadableSpan]:
        """Function spans (of ``request``'s trace); garbage-collection pauses, which come whenever the test process's
        heap calls for one, only with ``with_gc``."""
        spans = self.spans()
        fn = [
            s
            for s in spans
            if (s.attributes or {}).get("pystrument.synthetic")
            and (with_gc or (s.attributes or {}).get("code.file.path") != "<gc>")
        ]
        if request is None:
            return fn
        assert request.context is not None
        return [s for s in fn if s.context is not None and s.context.trace_id == request.context.trace_id]


@pytest.fixture(autouse=True)
def _no_pystrument_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("PYSTRUMENT_"):
            monkeypatch.delenv(key)


@pytest.fixture(autouse=True)
def _log_once_per_test() -> None:
    """Each test sees the SDK's first warning per failure site (the log-once memory is process-wide)."""
    _safety.reset()


@pytest.fixture(autouse=True)
def _fresh_cost_budget() -> Iterator[None]:
    """The cost budget is process-wide: each test starts with a full bucket, not the debt an earlier test ran up."""
    from pystrument._budget import cost_budget

    cost_budget.configure(1.0)
    yield
    cost_budget.configure(1.0)


@pytest.fixture
def tracing() -> Iterator[Callable[..., Tracing]]:
    """Factory: ``tracing(sampler="default", min_span_ms=0, ...)`` -> a fresh :class:`Tracing`."""
    made: list[TracerProvider] = []

    def make(**settings: Any) -> Tracing:
        # Accuracy and isolation are measured on full profiles; the cost budget's own tests set one.
        settings.setdefault("span_budget", 1)
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        processor = configure(provider, **settings)
        assert processor is not None
        made.append(provider)
        return Tracing(provider, exporter, processor)

    yield make
    for provider in made:
        provider.shutdown()


def burn(seconds: float) -> int:
    """Busy CPU loop (pure Python) for ``seconds``."""
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        n += 1
    return n


def renamed(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """A copy of ``fn`` whose code is named ``name`` (distinct functions for concurrency tests)."""
    code = fn.__code__.replace(co_name=name, co_qualname=name)
    copy = types.FunctionType(code, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    copy.__qualname__ = name
    return copy


def by_name(spans: list[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for s in spans:
        out.setdefault(s.name, []).append(s)
    return out


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def duration(span: ReadableSpan) -> float:
    assert span.start_time is not None and span.end_time is not None
    return (span.end_time - span.start_time) / 1e9


def contains(outer: ReadableSpan, inner: ReadableSpan) -> bool:
    assert outer.start_time and outer.end_time and inner.start_time and inner.end_time
    return outer.start_time <= inner.start_time and inner.end_time <= outer.end_time


def tick_times(sampler: Any) -> list[float]:
    """The times at which ``sampler`` runs its Python ticks from now on (``sample_once`` wrapped to note them)."""
    times: list[float] = []
    sample_once = sampler.sample_once

    def timed(now: float | None = None) -> None:
        times.append(sampler.clock())
        sample_once(now)

    sampler.sample_once = timed
    return times


@pytest.fixture
def helpers() -> types.SimpleNamespace:
    """The plain helper functions above, for test modules (``--import-mode=importlib`` has no conftest imports)."""
    return types.SimpleNamespace(
        burn=burn,
        renamed=renamed,
        by_name=by_name,
        parent_id=parent_id,
        span_id=span_id,
        duration=duration,
        contains=contains,
        tick_times=tick_times,
    )
