"""pystrument SDK: function-call spans for every request, from stack samples, on OpenTelemetry.

Zero code: run the app under ``opentelemetry-instrument`` (entry point ``pystrument``). In code::

    import pystrument
    pystrument.configure(tracer_provider=provider)   # the global provider when omitted
"""

from __future__ import annotations

from pystrument._configure import configure
from pystrument._processor import PystrumentSpanProcessor
from pystrument._propagation import propagate
from pystrument._settings import (
    ENV_ENABLED,
    ENV_INTERVAL_MS,
    ENV_KEEP_RATE,
    ENV_MAX_SPANS,
    ENV_MIN_SPAN_MS,
    ENV_PROFILE_RATE,
    ENV_SAMPLER,
    ENV_SLOW_MS,
    ENV_SPAN_BUDGET,
    Settings,
)

__version__ = "0.1.0"

__all__ = [
    "ENV_ENABLED",
    "ENV_INTERVAL_MS",
    "ENV_KEEP_RATE",
    "ENV_MAX_SPANS",
    "ENV_MIN_SPAN_MS",
    "ENV_PROFILE_RATE",
    "ENV_SAMPLER",
    "ENV_SLOW_MS",
    "ENV_SPAN_BUDGET",
    "PystrumentSpanProcessor",
    "Settings",
    "configure",
    "propagate",
]
