"""``pystrument.configure()``: add the processor to an SDK tracer provider, once."""

from __future__ import annotations

import logging
import weakref
from typing import Any

from opentelemetry import trace

from pystrument._processor import PystrumentSpanProcessor
from pystrument._safety import log_once
from pystrument._settings import Settings

_logger = logging.getLogger("pystrument")
_configured: weakref.WeakKeyDictionary[Any, PystrumentSpanProcessor] = weakref.WeakKeyDictionary()


def configure(tracer_provider: trace.TracerProvider | None = None, **settings: Any) -> PystrumentSpanProcessor | None:
    """Add pystrument's processor to ``tracer_provider`` (the global one when omitted); returns it.

    Keyword settings override ``PYSTRUMENT_*`` (``enabled``, ``sampler``, ``interval_ms``, ``profile_rate``,
    ``slow_ms``, ``min_span_ms``, ``max_spans``, ``keep_rate``); bad values raise ``ValueError``. Returns None
    when disabled. A second call for the same provider warns and returns the processor already added.
    """
    resolved = Settings.load(**settings)
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    existing = _configured.get(provider)
    if existing is not None:
        _logger.warning("pystrument is already configured on this tracer provider; ignoring the second call")
        return existing
    if not resolved.enabled:
        return None
    if not hasattr(provider, "add_span_processor"):
        raise ValueError(
            "pystrument needs an OpenTelemetry SDK TracerProvider: pass tracer_provider=TracerProvider(...) or "
            "call opentelemetry.trace.set_tracer_provider() first (or run under opentelemetry-instrument)"
        )
    processor = PystrumentSpanProcessor(provider, settings=resolved)
    provider.add_span_processor(processor)
    _run_first(provider, processor)
    _configured[provider] = processor
    return processor


def _run_first(provider: Any, processor: PystrumentSpanProcessor) -> None:
    """Move the processor to the front, so that at shutdown it builds its last spans before the exporting
    processors shut down (the SDK has no public way to order processors; skipped if its shape differs)."""
    try:
        multi = provider._active_span_processor
        with multi._lock:
            others = tuple(p for p in multi._span_processors if p is not processor)
            multi._span_processors = (processor, *others)
    except Exception:
        log_once(
            "configure.order",
            "pystrument: could not run first among span processors; the spans of requests "
            "ending during shutdown may be lost",
            exc_info=False,
        )


def configured_processor(provider: Any) -> PystrumentSpanProcessor | None:
    return _configured.get(provider)


def forget(provider: Any) -> None:
    _configured.pop(provider, None)
