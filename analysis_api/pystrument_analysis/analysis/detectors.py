"""The builtin analyzer's rules over one trace, run in order over one ``TraceModel``.

Every finding names the unit responsible (an application function or a template, never a generator expression,
a route regex or ``root``), the spans it rests on, and its impact as a share of the request's duration. After the
rules: the loop's own work joins its N+1 finding, the unit holding 40% or more of the request leads, and the
coverage step accounts for the rest of the request's time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pystrument_analysis.analysis.classify import frame_category, frame_label, http_target, normalize_sql
from pystrument_analysis.analysis.coverage import account, lead_with_dominant
from pystrument_analysis.analysis.findings import Finding
from pystrument_analysis.analysis.model import TraceModel, Unit
from pystrument_analysis.analysis.rules_calls import detect_database, detect_debug_mode, detect_http
from pystrument_analysis.analysis.rules_runtime import detect_gc, detect_loop_contention
from pystrument_analysis.analysis.rules_work import (
    detect_blocking_in_async,
    detect_deliberate,
    detect_library_work,
    detect_templates,
    detect_work,
)
from pystrument_analysis.analysis.trace import Trace

__all__ = [
    "Analysis",
    "Finding",
    "detect_all",
    "frame_category",
    "frame_label",
    "http_target",
    "normalize_sql",
    "run_rules",
]


@dataclass
class Analysis:
    """The rules' findings (biggest first, the dominant unit's first), the coverage note and its account."""

    findings: list[Finding]
    unexplained: Finding | None = None
    dominant: Unit | None = None
    coverage: dict[str, Any] = field(default_factory=dict)
    model: TraceModel | None = None

    @property
    def all(self) -> list[Finding]:
        return [*self.findings, *([self.unexplained] if self.unexplained is not None else [])]


def _merge_loop_work(model: TraceModel, repeated: list[Finding], work: list[Finding]) -> list[Finding]:
    """A function that runs an N+1 loop and is also a CPU hotspot or waits: its own time is mostly the loop's per-item
    work (fetching rows, ORM hydration, building requests; with sqlite, the scan runs in ``fetchall`` outside the
    query's span, and under load that shows partly as waiting for the GIL), which batching removes too."""
    merged: set[int] = set()
    for finding in repeated:
        if not finding.detector.startswith("n_plus_one"):
            continue
        mine = [w for w in work if w.function == finding.function and id(w) not in merged]
        if not mine:
            continue
        finding.detail["calls_ms"] = f"{finding.time_ms:.0f}"
        for w in mine:
            finding.time_ms += w.time_ms
            merged.add(id(w))
        finding.impact = min(1.0, finding.time_ms / model.total_ms)
    return [w for w in work if id(w) not in merged]


def run_rules(trace: Trace) -> Analysis:
    """Build the model once, run every rule on it, lead with the dominant unit, account for the time."""
    model = TraceModel(trace)
    repeated = [*detect_database(model), *detect_http(model)]
    work = _merge_loop_work(model, repeated, [*detect_work(model), *detect_blocking_in_async(model)])
    findings = [
        *repeated,
        *detect_debug_mode(model),
        *detect_deliberate(model),
        *detect_templates(model),
        *detect_library_work(model),
        *work,
        *detect_gc(model),
        *detect_loop_contention(model),
    ]
    findings.sort(key=lambda f: (-f.impact, f.detector, f.function))
    findings, unit = lead_with_dominant(model, findings)
    unexplained, coverage = account(model, findings)
    return Analysis(findings, unexplained, unit, coverage, model)


def detect_all(trace: Trace) -> list[Finding]:
    """Every finding, the ``unexplained`` one last."""
    return run_rules(trace).all
