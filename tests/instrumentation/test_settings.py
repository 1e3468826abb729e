"""Settings: environment, keyword arguments beating it, and ValueError naming the fix at construction."""

from __future__ import annotations

import pystrument
import pytest
from opentelemetry.trace import NoOpTracerProvider
from pystrument import PystrumentSpanProcessor, Settings


def test_defaults() -> None:
    s = Settings.load(env={})
    assert (s.enabled, s.sampler, s.interval_ms, s.profile_rate, s.keep_rate) == (True, "default", 5.0, 1.0, 1.0)
    assert s.slow_ms == 500 and s.max_spans == 100 and s.span_budget == 0.01
    assert s.min_span_s == pytest.approx(0.010)  # twice the interval unless set


def test_environment_then_keywords() -> None:
    env = {
        pystrument.ENV_ENABLED: "off",
        pystrument.ENV_SAMPLER: "PyInstrument",
        pystrument.ENV_INTERVAL_MS: "2",
        pystrument.ENV_PROFILE_RATE: "0.25",
        pystrument.ENV_SLOW_MS: "250",
        pystrument.ENV_MIN_SPAN_MS: "3",
        pystrument.ENV_MAX_SPANS: "7",
        pystrument.ENV_KEEP_RATE: "0.5",
        pystrument.ENV_SPAN_BUDGET: "0.2",
    }
    s = Settings.load(env=env)
    assert s == Settings(False, "pyinstrument", 2.0, 0.25, 250.0, 3.0, 7, 0.5, 0.2)
    assert Settings.load(env=env, max_spans=9, enabled=True, sampler=None).max_spans == 9
    assert Settings.load(env=env, enabled=True).enabled is True
    assert Settings.load(env={pystrument.ENV_SLOW_MS: "  "}).slow_ms == 500  # blank = unset


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"PYSTRUMENT_ENABLED": "maybe"}, "PYSTRUMENT_ENABLED"),
        ({"PYSTRUMENT_SAMPLER": "yappi"}, "'default' or 'pyinstrument'"),
        ({"PYSTRUMENT_INTERVAL_MS": "0"}, "between 0.1 and 1000"),
        ({"PYSTRUMENT_INTERVAL_MS": "fast"}, "PYSTRUMENT_INTERVAL_MS"),
        ({"PYSTRUMENT_PROFILE_RATE": "1.5"}, "between 0 and 1"),
        ({"PYSTRUMENT_KEEP_RATE": "-0.1"}, "PYSTRUMENT_KEEP_RATE"),
        ({"PYSTRUMENT_SLOW_MS": "-1"}, "PYSTRUMENT_SLOW_MS"),
        ({"PYSTRUMENT_MIN_SPAN_MS": "nan"}, "PYSTRUMENT_MIN_SPAN_MS"),
        ({"PYSTRUMENT_MAX_SPANS": "2.5"}, "whole number"),
        ({"PYSTRUMENT_MAX_SPANS": "0"}, "PYSTRUMENT_MAX_SPANS"),
        ({"PYSTRUMENT_SPAN_BUDGET": "5%"}, "PYSTRUMENT_SPAN_BUDGET"),
        ({"PYSTRUMENT_SPAN_BUDGET": "2"}, "share of one CPU core"),
    ],
)
def test_bad_environment_raises_with_the_fix(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ValueError, match="invalid pystrument setting") as info:
        Settings.load(env=env)
    assert needle in str(info.value)


def test_bad_keywords_raise_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="interval_ms"):
        PystrumentSpanProcessor(interval_ms=-5)
    with pytest.raises(ValueError, match="valid keyword arguments are"):
        PystrumentSpanProcessor(intervall_ms=5)
    with pytest.raises(ValueError, match="keep_rate"):
        pystrument.configure(keep_rate=2)
    monkeypatch.setenv("PYSTRUMENT_PROFILE_RATE", "all")
    with pytest.raises(ValueError, match="PYSTRUMENT_PROFILE_RATE"):
        PystrumentSpanProcessor()
    # Keyword arguments beat a bad environment value.
    assert PystrumentSpanProcessor(profile_rate=1).settings.profile_rate == 1


def test_configure_needs_an_sdk_provider() -> None:
    with pytest.raises(ValueError, match="SDK TracerProvider"):
        pystrument.configure(NoOpTracerProvider())


def test_disabled_configure_adds_nothing() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    assert pystrument.configure(provider, enabled=False) is None
    assert not any(
        isinstance(p, PystrumentSpanProcessor)
        for p in provider._active_span_processor._span_processors  # type: ignore[attr-defined]
    )
