"""Display placement of spans (pure): real spans under the deepest enclosing function span."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pystrument_analysis.api.services.span_tree import place_spans

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class S:
    span_id: str
    parent_span_id: str | None
    start: float
    duration: float
    synthetic: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def start_time(self) -> datetime:
        return T0 + timedelta(seconds=self.start)


def parents(spans: list[S]) -> dict[str, str | None]:
    return {k: v.display_parent_span_id for k, v in place_spans(spans).items()}


def test_deepest_enclosing_function_wins() -> None:
    spans = [
        S("req", None, 0, 1),
        S("a", "req", 0, 1, True),
        S("b", "a", 0.1, 0.5, True),
        S("c", "b", 0.2, 0.2, True),
        S("sibling", "a", 0.7, 0.2, True),
        S("db", "req", 0.25, 0.1),
    ]
    assert parents(spans)["db"] == "c"
    placed = place_spans(spans)
    assert placed["db"].depth == 4 and placed["req"].depth == 0 and placed["c"].depth == 3


def test_slack_is_one_sampling_interval() -> None:
    base = [S("req", None, 0, 1, attributes={"pystrument.profile.interval_ms": 10}), S("f", "req", 0.1, 0.2, True)]
    assert parents([*base, S("x", "req", 0.095, 0.21)])["x"] == "f"  # 5 ms early, 5 ms late: within 10 ms
    assert parents([*base, S("x", "req", 0.085, 0.1)])["x"] == "req"  # 15 ms early: not enclosed
    default = [S("req", None, 0, 1), S("f", "req", 0.1, 0.2, True)]
    assert parents([*default, S("x", "req", 0.0995, 0.1)])["x"] == "f"  # default slack 1 ms
    assert parents([*default, S("x", "req", 0.098, 0.1)])["x"] == "req"


def test_best_overlap_among_adjacent_candidates() -> None:
    spans = [
        S("req", None, 0, 1, attributes={"pystrument.profile.interval_ms": 10}),
        S("f", "req", 0.0, 0.3, True),
        S("g", "req", 0.3, 0.3, True),
        S("x", "req", 0.295, 0.2),  # touches f within slack, but lies in g
    ]
    assert parents(spans)["x"] == "g"


def test_function_spans_keep_their_parent_and_odd_data_is_safe() -> None:
    spans = [
        S("req", None, 0, 1),
        S("f", "req", 0, 1, True),
        S("orphan", "missing", 0.1, 0.1),  # parent never arrived: a root
        S("loop1", "loop2", 0.1, 0.1),
        S("loop2", "loop1", 0.1, 0.1),
        S("zero", "req", 0.5, 0.0),
    ]
    placed = place_spans(spans)
    assert placed["f"].display_parent_span_id == "req"
    assert placed["orphan"].display_parent_span_id == "missing" and placed["orphan"].depth == 0
    assert placed["loop1"].depth >= 1  # terminates
    assert placed["zero"].display_parent_span_id == "f"
    assert place_spans([]) == {}
