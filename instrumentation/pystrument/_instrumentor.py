"""Zero-code entry point: ``opentelemetry-instrument`` loads this instrumentor (entry point ``pystrument``).

``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=pystrument`` skips it; ``PYSTRUMENT_ENABLED=false`` makes it a no-op.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from pystrument._configure import configure, forget
from pystrument._processor import PystrumentSpanProcessor

_OTEL_COMMON_KWARGS = ("meter_provider", "logger_provider", "event_logger_provider")


class PystrumentInstrumentor(BaseInstrumentor):
    """Adds :class:`PystrumentSpanProcessor` to the tracer provider (idempotent; warns on a second call)."""

    _processor: PystrumentSpanProcessor | None = None
    _provider: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        provider = kwargs.pop("tracer_provider", None) or trace.get_tracer_provider()
        for common in _OTEL_COMMON_KWARGS:  # accepted by every instrumentor, unused here
            kwargs.pop(common, None)
        self._provider = provider
        self._processor = configure(provider, **kwargs)

    def _uninstrument(self, **kwargs: Any) -> None:
        if self._processor is not None:
            self._processor.shutdown()  # the SDK cannot remove a processor: stop profiling instead
        if self._provider is not None:
            forget(self._provider)
        self._processor = None
        self._provider = None
