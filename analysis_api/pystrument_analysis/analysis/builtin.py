"""The builtin analyzer: deterministic rules, offline; the default service and the fallback of the AI ones.

Score (documented in docs/ai.md)::

    penalty = 100 * min(1, sum(weight[type] * impact))      # impact = share of the request's duration
    penalty += 10 if the request failed (5xx / error status)
    performance_score = clamp(100 - penalty, 0, 100), one decimal

with ``weight`` 1.5 for a blocking call in an async handler (it stalls every concurrent request), 0.8 for
CPU work (some of it is needed), 1.0 for everything else.
"""

from __future__ import annotations

from typing import Any

from pystrument_analysis.analysis.detectors import Finding, detect_all
from pystrument_analysis.analysis.texts import IMPROVEMENT, LOOP_NOTE, NO_FINDINGS, render
from pystrument_analysis.analysis.trace import Trace

TYPE_WEIGHT = {"blocking": 1.5, "cpu": 0.8}
ERROR_PENALTY = 10.0
MAX_FINDINGS = 20


def score(findings: list[Finding], failed: bool) -> float:
    """The documented 0..100 score."""
    weighted = sum(TYPE_WEIGHT.get(f.type, 1.0) * f.impact for f in findings)
    penalty = 100.0 * min(1.0, weighted) + (ERROR_PENALTY if failed else 0.0)
    return round(max(0.0, min(100.0, 100.0 - penalty)), 1)


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
    }
    description, title, advice = render(finding.detector, language, fields)
    if "calls_ms" in finding.detail:
        description += LOOP_NOTE.get(language, LOOP_NOTE["en"]).format(calls_ms=finding.detail["calls_ms"])
    owner = finding.function_span
    bottleneck: dict[str, Any] = {
        "type": finding.type,
        "severity": finding.severity,
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
    improvement = IMPROVEMENT.get(language, IMPROVEMENT["en"]).format(
        save_ms=_fmt(save_ms), save_pct=f"{min(100.0, save_ms / trace.duration_ms * 100):.0f}"
    )
    suggestion: dict[str, Any] = {
        "category": finding.type,
        "priority": "high" if finding.severity == "critical" else finding.severity,
        "title": title,
        "description": advice,
        "expected_improvement": improvement,
        "function": finding.function,
    }
    return bottleneck, suggestion


def analyze(trace: Trace, language: str = "en", findings: list[Finding] | None = None) -> dict[str, Any]:
    """Score, bottlenecks (biggest impact first) and one suggestion per bottleneck."""
    findings = (detect_all(trace) if findings is None else findings)[:MAX_FINDINGS]
    bottlenecks, suggestions = [], []
    for finding in findings:
        b, s = describe(finding, trace, language)
        bottlenecks.append(b)
        suggestions.append(s)
    return {
        "performance_score": score(findings, _failed(trace)),
        "bottleneck_analysis": bottlenecks,
        "optimization_suggestions": suggestions,
        "summary": NO_FINDINGS.get(language, NO_FINDINGS["en"]) if not findings else "",
    }
