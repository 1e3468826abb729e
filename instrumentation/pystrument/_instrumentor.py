"""Zero-code entry point: ``opentelemetry-instrument`` loads this instrumentor (entry point ``pystrument``).

``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=pystrument`` skips it; ``PYSTRUMENT_ENABLED=false`` makes it a no-op.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from pystrument._configure import configure, forget
from pystrument._processor import PystrumentSpanProcessor

_OTEL_COMMON_KWARGS = ("meter_provider", "logger_provider", "event_logger_provider")
_logger = logging.getLogger("pystrument")


def _exporter_problem(provider: Any) -> str | None:
    """Why the spans of ``provider`` would go nowhere (with the fix), or None when a span processor is there.

    Under ``opentelemetry-instrument`` the configurator has built the provider and its exporting processors
    before instrumentors load; the SDK has no public way to list processors, so an unexpected shape is no problem.
    """
    if not hasattr(provider, "add_span_processor"):
        return (
            "no OpenTelemetry SDK tracer provider was set up, so no spans are exported: the OpenTelemetry "
            "configurator did not run or failed (see the log above); install opentelemetry-distro and "
            "opentelemetry-exporter-otlp (pip install pystrument brings both) and check OTEL_PYTHON_CONFIGURATOR"
        )
    try:
        processors = provider._active_span_processor._span_processors
    except AttributeError:
        return None
    if processors:
        return None
    chosen = os.environ.get("OTEL_TRACES_EXPORTER", "")
    return (
        f"no trace exporter started (OTEL_TRACES_EXPORTER={chosen!r}), so profiles and spans stay in this process; "
        "unset it or set OTEL_TRACES_EXPORTER=otlp, with OTEL_EXPORTER_OTLP_ENDPOINT pointing at pystrument serve"
    )


class PystrumentInstrumentor(BaseInstrumentor):
    """Adds :class:`PystrumentSpanProcessor` to the tracer provider (idempotent; warns on a second call)."""

    _processor: PystrumentSpanProcessor | None = None
    _provider: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        given = kwargs.pop("tracer_provider", None)
        provider = given or trace.get_tracer_provider()
        for common in _OTEL_COMMON_KWARGS:  # accepted by every instrumentor, unused here
            kwargs.pop(common, None)
        # The global provider, as opentelemetry-instrument leaves it; a provider passed in may get exporters later.
        problem = _exporter_problem(provider) if given is None else None
        if problem:  # profiling would make spans nobody receives: say so once, with the fix, and carry on
            _logger.warning("pystrument: %s", problem)
            if not hasattr(provider, "add_span_processor"):
                return
        self._provider = provider
        self._processor = configure(provider, **kwargs)

    def _uninstrument(self, **kwargs: Any) -> None:
        if self._processor is not None:
            self._processor.shutdown()  # the SDK cannot remove a processor: stop profiling instead
        if self._provider is not None:
            forget(self._provider)
        self._processor = None
        self._provider = None
