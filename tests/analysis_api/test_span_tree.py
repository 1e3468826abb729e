"""Placement of spans (pure): claimed real spans under their function, the others under the deepest enclosing one."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pystrument_analysis.api.services.span_tree import duration_us, micros, place_spans

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


def test_input_order_does_not_matter() -> None:
    """Depths are remembered along the way; children listed before their parents must not change them."""
    chain = [S("req", None, 0, 1)] + [
        S(f"f{i}", "req" if i == 0 else f"f{i - 1}", 0, 1 - i / 100, True) for i in range(30)
    ]
    chain.append(S("db", "req", 0.1, 0.1))
    forward, backward = place_spans(chain), place_spans(list(reversed(chain)))
    assert forward == backward
    assert forward["f29"].depth == 30 and forward["db"] == ("f29", 31)


def test_cycles_count_each_span_once() -> None:
    spans = [
        S("under", "a", 0.1, 0.1),  # walks a -> b -> c -> a: three spans, then a repeat
        S("a", "c", 0.1, 0.1),
        S("b", "a", 0.1, 0.1),
        S("c", "b", 0.1, 0.1),
        S("self", "self", 0.1, 0.1),
    ]
    placed = place_spans(spans)
    assert [placed[k].depth for k in ("under", "a", "b", "c", "self")] == [3, 2, 2, 2, 0]


def test_odd_durations_are_instants_not_errors() -> None:
    spans = [S("req", None, 0, 1), S("f", "req", 0.1, float("nan"), True), S("x", "req", 0.1, float("inf"))]
    placed = place_spans(spans)
    assert placed["x"].display_parent_span_id in {"req", "f"} and placed["f"].depth == 1


@pytest.mark.parametrize("seconds", [0.0, 1e-6, 2.5e-6, 3.5e-6, -2.5e-6, 0.1234565, 1.0000005, 86400.0000015, 12.3])
def test_duration_us_rounds_as_timedelta_does(seconds: float) -> None:
    assert duration_us(seconds) == timedelta(seconds=seconds) // timedelta(microseconds=1)


def test_micros_is_exact() -> None:
    moment = datetime(2026, 11, 27, 0, 0, 1, 999_999, tzinfo=UTC)
    assert micros(moment) == 1_795_737_601_999_999
    assert micros(moment.replace(tzinfo=None)) == micros(moment)


def reference_placement(spans: list[S]) -> dict[str, tuple[str | None, int]]:
    """The placement rule written plainly with ``datetime`` arithmetic and no shortcuts, to check against."""

    def end(s: S) -> datetime:
        return s.start_time + timedelta(seconds=s.duration)

    def overlap(a: S, b: S) -> float:
        lo, hi = max(a.start_time, b.start_time), min(end(a), end(b))
        return max((hi - lo).total_seconds(), 0.0)

    by_id = {s.span_id: s for s in spans}
    under: dict[str, list[S]] = {}
    for s in by_id.values():
        if s.synthetic and s.parent_span_id:
            under.setdefault(s.parent_span_id, []).append(s)
    display: dict[str, str | None] = {}
    for s in by_id.values():
        target = s.parent_span_id
        parent = by_id.get(target) if target else None
        if not s.synthetic and parent is not None and parent.span_id in under:
            value = parent.attributes.get("pystrument.profile.interval_ms")
            ok = isinstance(value, int | float) and 0 < value <= 1000
            slack = timedelta(seconds=value / 1000.0 if ok else 0.001)
            node, found, entered = parent.span_id, None, {parent.span_id}
            while True:
                fits = sorted(
                    (
                        f
                        for f in under.get(node, ())
                        if f.span_id != s.span_id and f.start_time - slack <= s.start_time and end(f) + slack >= end(s)
                    ),
                    key=lambda f: (f.start_time, f.span_id),
                )
                if not fits:
                    break
                found = max(fits, key=lambda f: (overlap(f, s), -f.duration))
                if found.span_id in entered:  # a cycle of function spans: entered once
                    break
                entered.add(found.span_id)
                node = found.span_id
            if found is not None:
                target = found.span_id
        display[s.span_id] = target
    out = {}
    for span_id, target in display.items():
        depth, seen, node = 0, {span_id}, target
        while node is not None and node in by_id and node not in seen:
            seen.add(node)
            depth += 1
            node = display[node]
        out[span_id] = (target, depth)
    return out


def test_matches_the_plain_rule_on_random_traces() -> None:
    """Integer microseconds and remembered depths give exactly what the plain rule gives, odd data included."""
    rnd = random.Random(3)
    for _ in range(300):
        ids = [f"s{i}" for i in range(rnd.randint(1, 40))]
        spans = []
        for i in ids:
            interval = rnd.choice([1, 10, "x", 0, 2000, 0.5, True, 0.0005])
            spans.append(
                S(
                    rnd.choice(ids) if rnd.random() < 0.05 else i,  # now and then a duplicate id
                    rnd.choice([*ids, None, "missing", ""]),  # cycles, self-parents, missing parents
                    round(rnd.uniform(0, 1), rnd.choice([3, 6, 7])),
                    round(rnd.uniform(0, 0.5), rnd.choice([3, 6, 7])),
                    rnd.random() < 0.6,
                    {"pystrument.profile.interval_ms": interval} if rnd.random() < 0.3 else {},
                )
            )
        assert {k: tuple(v) for k, v in place_spans(spans).items()} == reference_placement(spans)


def test_a_claimed_span_goes_under_its_function_whatever_the_times_say() -> None:
    """The SDK saw ``paginate`` on the stack when the query started: time overlap (it lies in ``render``) loses."""
    spans = [
        S("req", None, 0, 1),
        S("view", "req", 0, 1, True),
        S("paginate", "view", 0.1, 0.2, True, {"pystrument.child_span_ids": ["00000000000000aa"]}),
        S("render", "view", 0.3, 0.6, True),
        S("00000000000000aa", "req", 0.31, 0.1),  # claimed: under paginate
        S("00000000000000bb", "req", 0.5, 0.1),  # unclaimed: time overlap puts it under render
    ]
    p = parents(spans)
    assert p["00000000000000aa"] == "paginate" and p["00000000000000bb"] == "render"
    assert place_spans(spans)["00000000000000aa"].depth == 3


def test_claims_keep_real_nesting_and_ignore_odd_ids() -> None:
    spans = [
        S("req", None, 0, 1),
        S("f", "req", 0, 1, True, {"pystrument.child_span_ids": ["00000000000000c1", "00000000000000c2", 7, "xyz"]}),
        S("00000000000000c1", "req", 0.1, 0.5),  # an HTTP call
        S("00000000000000c2", "00000000000000c1", 0.2, 0.1),  # a connect inside the HTTP call: stays there
        S("g", "req", 0.0, 0.05, True, {"pystrument.child_span_ids": ["00000000000000c1"]}),  # claimed twice: first
    ]
    p = parents(spans)
    assert p["00000000000000c1"] == "f" and p["00000000000000c2"] == "00000000000000c1"


def test_garbage_collection_spans_parent_nothing() -> None:
    spans = [
        S("req", None, 0, 1),
        S("view", "req", 0, 1, True),
        S("gc", "view", 0.1, 0.8, True, {"code.file.path": "<gc>"}),  # a span far longer than its pause
        S("db", "req", 0.2, 0.1),
    ]
    assert parents(spans)["db"] == "view"


def test_placement_work_is_linear() -> None:
    """20,000 queries under 2,000 sequential function spans: the comparisons grow with the spans, not their square."""

    def trace(n: int) -> list[S]:
        spans = [S("req", None, 0, 100), S("view", "req", 0, 100, True)]
        for i in range(n // 10):
            spans.append(S(f"f{i}", "view", i * 0.01, 0.01, True))
            spans.append(S(f"g{i}", f"f{i}", i * 0.01, 0.005, True))
        spans += [S(f"q{i}", "req", i * 0.001 + 0.0001, 0.0005) for i in range(n)]
        return spans

    def steps(n: int) -> int:
        from pystrument_analysis.api.services.span_tree import micros, place, tree_span

        count = [0]
        place(
            (tree_span(s.span_id, s.parent_span_id, micros(s.start_time), s.duration, s.synthetic) for s in trace(n)),
            count,
        )
        return count[0]

    small, big = steps(2_000), steps(20_000)
    assert big <= 11 * small, (small, big)  # ten times the spans, about ten times the work
    assert big < 20 * 20_000
