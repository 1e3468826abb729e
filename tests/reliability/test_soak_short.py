"""A short soak (``benchmarks/soak.py``, ~20 s): half the measured maximum held, every acknowledged span stored."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

SOAK = Path(__file__).parents[2] / "benchmarks" / "soak.py"


def _soak_module() -> Any:
    spec = importlib.util.spec_from_file_location("pystrument_soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_short_soak_loses_nothing(database_url: str) -> None:
    out = _soak_module().soak(database_url, seconds=10, probe_seconds=4, threads=4)
    print(f"\nshort soak: {out}")
    assert out["max_spans_per_s"] > 500
    assert out["held_spans_per_s"] > 0.6 * out["target_spans_per_s"]
    assert out["acknowledged"] > 0 and out["lost"] == 0 and out["unacknowledged"] == 0
    assert out["server_peak_rss_mib"] < 1024
