"""``PYSTRUMENT_*`` settings: one constant per environment variable; keyword arguments beat the environment.

Bad values raise ``ValueError`` naming the variable and the fix, at construction only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

#: ``true``/``false``: turn the SDK off without removing it (default ``true``).
ENV_ENABLED = "PYSTRUMENT_ENABLED"
#: ``default`` (low-overhead stack sampler thread) or ``pyinstrument`` (pyinstrument's per-call hook, precise).
ENV_SAMPLER = "PYSTRUMENT_SAMPLER"
#: Milliseconds between two stack samples (default 5; see the sampler's note on the GIL switch interval).
ENV_INTERVAL_MS = "PYSTRUMENT_INTERVAL_MS"
#: Share of requests that are profiled at all, 0..1 (default 1 = every request).
ENV_PROFILE_RATE = "PYSTRUMENT_PROFILE_RATE"
#: Requests at least this slow (ms) always keep their function spans (default 500).
ENV_SLOW_MS = "PYSTRUMENT_SLOW_MS"
#: Function spans shorter than this (ms) are dropped (default: twice the interval).
ENV_MIN_SPAN_MS = "PYSTRUMENT_MIN_SPAN_MS"
#: Most function spans per request; the longest are kept (default 100).
ENV_MAX_SPANS = "PYSTRUMENT_MAX_SPANS"
#: Share of fast, successful profiled requests that keep their function spans, 0..1 (default 1): the tail rule.
ENV_KEEP_RATE = "PYSTRUMENT_KEEP_RATE"
#: Share of one CPU core that everything pystrument adds may take (default 0.01; 1 = no limit): the sampler's ticks,
#: building function spans and (estimated) exporting them, from one bucket (``_budget.py``); a request pays its expected
#: cost as it starts. While it is spent the sampler samples less often and requests starting then are not profiled;
#: such requests say so in ``pystrument.profile.degraded``. One percent is about where Datadog caps its profiler.
ENV_SPAN_BUDGET = "PYSTRUMENT_SPAN_BUDGET"

Sampler = Literal["default", "pyinstrument"]
SAMPLERS: tuple[Sampler, ...] = ("default", "pyinstrument")

_ENV_BY_FIELD = {
    "enabled": ENV_ENABLED,
    "sampler": ENV_SAMPLER,
    "interval_ms": ENV_INTERVAL_MS,
    "profile_rate": ENV_PROFILE_RATE,
    "slow_ms": ENV_SLOW_MS,
    "min_span_ms": ENV_MIN_SPAN_MS,
    "max_spans": ENV_MAX_SPANS,
    "keep_rate": ENV_KEEP_RATE,
    "span_budget": ENV_SPAN_BUDGET,
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Settings:
    """Validated SDK settings; build with :meth:`load` to read the environment."""

    enabled: bool = True
    sampler: Sampler = "default"
    interval_ms: float = 5.0
    profile_rate: float = 1.0
    slow_ms: float = 500.0
    min_span_ms: float | None = None
    max_spans: int = 100
    keep_rate: float = 1.0
    span_budget: float = 0.01

    def __post_init__(self) -> None:
        _check(isinstance(self.enabled, bool), "enabled", self.enabled, "true or false")
        _check(self.sampler in SAMPLERS, "sampler", self.sampler, "'default' or 'pyinstrument'")
        _check(
            _number(self.interval_ms) and 0.1 <= self.interval_ms <= 1000,
            "interval_ms",
            self.interval_ms,
            "a number of milliseconds between 0.1 and 1000",
        )
        for name in ("profile_rate", "keep_rate"):
            value = getattr(self, name)
            _check(_number(value) and 0 <= value <= 1, name, value, "a share between 0 and 1 (1 = all requests)")
        _check(
            _number(self.span_budget) and 0 <= self.span_budget <= 1,
            "span_budget",
            self.span_budget,
            "a share of one CPU core between 0 and 1 for everything pystrument adds, e.g. 0.05 (1 = no limit)",
        )
        _check(_number(self.slow_ms) and self.slow_ms >= 0, "slow_ms", self.slow_ms, "milliseconds >= 0")
        _check(
            self.min_span_ms is None or (_number(self.min_span_ms) and self.min_span_ms >= 0),
            "min_span_ms",
            self.min_span_ms,
            "milliseconds >= 0",
        )
        _check(
            isinstance(self.max_spans, int) and not isinstance(self.max_spans, bool) and self.max_spans >= 1,
            "max_spans",
            self.max_spans,
            "a whole number >= 1",
        )

    @property
    def min_span_s(self) -> float:
        """The minimum function span duration in seconds (twice the interval unless set)."""
        ms = self.min_span_ms if self.min_span_ms is not None else 2 * self.interval_ms
        return ms / 1000

    @property
    def interval_s(self) -> float:
        return self.interval_ms / 1000

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``PYSTRUMENT_*`` in ``env`` (default ``os.environ``), then ``overrides`` (None = unset)."""
        env = os.environ if env is None else env
        unknown = set(overrides) - set(_ENV_BY_FIELD)
        if unknown:
            raise ValueError(
                f"unknown pystrument setting(s) {sorted(unknown)}; valid keyword arguments are {sorted(_ENV_BY_FIELD)}"
            )
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = env.get(_ENV_BY_FIELD[field.name], "").strip()
            if raw and overrides.get(field.name) is None:
                values[field.name] = _parse(field.name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check(ok: bool, name: str, value: object, expected: str) -> None:
    if not ok:
        raise ValueError(
            f"invalid pystrument setting {name}={value!r} (env {_ENV_BY_FIELD[name]}): expected {expected}"
        )


def _parse(name: str, raw: str) -> Any:
    """One environment value converted to the field's type; unconvertible text raises the field's ValueError."""
    if name == "enabled":
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        _check(False, name, raw, "true or false")
    if name == "sampler":
        return raw.lower()
    try:
        return int(raw) if name == "max_spans" else float(raw)
    except ValueError:
        expected = "a whole number" if name == "max_spans" else "a number"
        _check(False, name, raw, expected)
    raise AssertionError("unreachable")
