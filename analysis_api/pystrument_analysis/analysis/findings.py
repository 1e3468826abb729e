"""A bottleneck found by a rule, before it is worded."""

from __future__ import annotations

from dataclasses import dataclass, field

from pystrument_analysis.analysis.trace import TSpan

SEVERITY_ORDER = ("low", "medium", "high", "critical")
MAX_SPAN_IDS = 100


@dataclass
class Finding:
    """One bottleneck: the rule (``detector``), its category (``type``), the unit it names and its time."""

    detector: str
    type: str
    function: str
    impact: float  # share of the request's duration
    time_ms: float
    spans: list[TSpan]
    function_span: TSpan | None = None
    count: int = 1
    saving: float = 0.5  # share of time_ms the suggested fix can be expected to save
    detail: dict[str, str] = field(default_factory=dict)
    min_severity: str = "low"

    @property
    def severity(self) -> str:
        by_impact = (
            "critical"
            if self.impact >= 0.6
            else "high"
            if self.impact >= 0.3
            else "medium"
            if self.impact >= 0.1
            else "low"
        )
        return max(by_impact, self.min_severity, key=SEVERITY_ORDER.index)

    @property
    def span_ids(self) -> list[str]:
        ids = [self.function_span.span_id] if self.function_span is not None else []
        ids += [s.span_id for s in self.spans if s is not self.function_span]
        return ids[:MAX_SPAN_IDS]
