"""The builtin analyzer: deterministic rules, offline; the default service and the fallback of the AI ones.

Score (documented in docs/ai.md)::

    penalty = 100 * min(1, sum(weight[type] * impact))      # impact = share of the request's duration
    penalty += 10 if the request failed (5xx / error status)
    performance_score = clamp(100 - penalty, 0, 100), one decimal

with ``weight`` 1.5 for a blocking call in an async handler (it stalls every concurrent request), 0.8 for
CPU work (some of it is needed), 0.5 for a deliberate cost (password hashing: tuned, not removed), 0 for the
coverage note (``unexplained``), 1.0 for everything else. When one unit holds 40% or more of the request, the
score is at most ``85 - 50 * (share - 0.4)``: such a request never scores 90 or more.
"""

from __future__ import annotations

from typing import Any

from pystrument_analysis.analysis.detectors import Analysis, Finding, run_rules
from pystrument_analysis.analysis.texts import IMPROVEMENT, LOOP_NOTE, NO_FINDINGS, WAITED_NOTE, render
from pystrument_analysis.analysis.trace import Trace

TYPE_WEIGHT = {"blocking": 1.5, "cpu": 0.8, "deliberate": 0.5, "unexplained": 0.0}
DOMINANT_CAP = 85.0
ERROR_PENALTY = 10.0
MAX_FINDINGS = 20


def score(findings: list[Finding], failed: bool, dominant_share: float | None = None) -> float:
    """The documented 0..100 score."""
    weighted = sum(TYPE_WEIGHT.get(f.type, 1.0) * f.impact for f in findings)
    penalty = 100.0 * min(1.0, weighted) + (ERROR_PENALTY if failed else 0.0)
    value = max(0.0, min(100.0, 100.0 - penalty))
    if dominant_share is not None:
        value = min(value, DOMINANT_CAP - 50.0 * (min(1.0, dominant_share) - 0.4))
    return round(value, 1)


def _failed(trace: Trace) -> bool:
    if trace.record is not None and (trace.record.is_error or (trace.record.status_code or 0) >= 500):
        return True
    return trace.root.status_code == 2


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fmt(ms: float) -> str:
    return f"{ms:.0f}" if ms >= 10 else f"{ms:.1f}"


def describe(finding: Finding, trace: Trace, language: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The finding as a seed 5.3.2 bottleneck and its suggestion, in ``language``."""
    save_ms = finding.time_ms * finding.saving
    fields = {
        "fn": finding.function,
        "count": finding.count,
        "ms": _fmt(finding.time_ms),
        "pct": f"{finding.impact * 100:.0f}",
        "stmt": _short(finding.detail.get("statement", "")),
        "lib": finding.detail.get("library", ""),
        "where": finding.detail.get("where", ""),
        "starved": finding.detail.get("starved", ""),
    }
    description, title, advice = render(finding.detector, language, fields)
    if "calls_ms" in finding.detail:
        description += LOOP_NOTE.get(language, LOOP_NOTE["en"]).format(calls_ms=finding.detail["calls_ms"])
    if "waited_ms" in finding.detail:
        description += WAITED_NOTE.get(language, WAITED_NOTE["en"]).format(waited_ms=finding.detail["waited_ms"])
    owner = finding.function_span
    severity = "low" if finding.type == "unexplained" else finding.severity
    bottleneck: dict[str, Any] = {
        "type": finding.type,
        "severity": severity,
        "function": finding.function,
        "description": description,
        "impact": round(finding.impact, 4),
        "detector": finding.detector,
        "span_ids": finding.span_ids,
        "file": owner.file if owner is not None else None,
        "line": owner.line if owner is not None else None,
        "self_time_ms": round(owner.self_ms, 3) if owner is not None else None,
        "time_ms": round(finding.time_ms, 3),
        "count": finding.count,
    }
    for key in ("culprit_trace_id", "culprit_span_id", "culprit_route", "starved"):
        if finding.detail.get(key):
            bottleneck[key] = finding.detail[key]
    improvement = IMPROVEMENT.get(language, IMPROVEMENT["en"]).format(
        save_ms=_fmt(save_ms), save_pct=f"{min(100.0, save_ms / trace.duration_ms * 100):.0f}"
    )
    suggestion: dict[str, Any] = {
        "category": finding.type,
        "priority": "high" if severity == "critical" else severity,
        "title": title,
        "description": advice,
        "expected_improvement": improvement,
        "function": finding.function,
    }
    return bottleneck, suggestion


def analyze(trace: Trace, language: str = "en", analysis: Analysis | None = None) -> dict[str, Any]:
    """Score, bottlenecks (the dominant unit's first, then biggest impact; the coverage note last), one suggestion
    per bottleneck, and the coverage of the request's time."""
    analysis = run_rules(trace) if analysis is None else analysis
    findings = analysis.findings[:MAX_FINDINGS]
    bottlenecks, suggestions = [], []
    for finding in [*findings, *([analysis.unexplained] if analysis.unexplained is not None else [])]:
        b, s = describe(finding, trace, language)
        bottlenecks.append(b)
        suggestions.append(s)
    share = analysis.dominant.held_ms / trace.duration_ms if analysis.dominant is not None else None
    return {
        "performance_score": score(findings, _failed(trace), share),
        "bottleneck_analysis": bottlenecks,
        "optimization_suggestions": suggestions,
        "summary": NO_FINDINGS.get(language, NO_FINDINGS["en"]) if not findings else "",
        "coverage": analysis.coverage,
    }
