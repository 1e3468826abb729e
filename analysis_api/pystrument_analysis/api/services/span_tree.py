"""Where each span of a trace sits for display: real child spans nested under the function running them.

The SDK makes function spans after the request ends, so a real child span (a DB query, an HTTP call)
arrives parented to the request span. Here each such span is moved, for display and analysis only,
under the deepest synthetic function span descending from its parent that encloses it in time.
Function span times are rebuilt from samples, so "encloses" allows one sampling interval of slack.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

DEFAULT_INTERVAL_S = 0.001
INTERVAL_ATTRIBUTE = "pystrument.profile.interval_ms"


class SpanLike(Protocol):
    """What the tree needs of a span (``pystrument_collector.db.models.Span`` fits)."""

    @property
    def span_id(self) -> str: ...
    @property
    def parent_span_id(self) -> str | None: ...
    @property
    def start_time(self) -> datetime: ...
    @property
    def duration(self) -> float: ...
    @property
    def synthetic(self) -> bool: ...
    @property
    def attributes(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Placement:
    """A span's display parent and its depth in the display tree (roots are 0)."""

    display_parent_span_id: str | None
    depth: int


def _end(span: SpanLike) -> datetime:
    return span.start_time + timedelta(seconds=span.duration)


def _slack(parent: SpanLike) -> timedelta:
    value = parent.attributes.get(INTERVAL_ATTRIBUTE)
    seconds = value / 1000.0 if isinstance(value, int | float) and 0 < value <= 1000 else DEFAULT_INTERVAL_S
    return timedelta(seconds=seconds)


def _overlap(a: SpanLike, b: SpanLike) -> float:
    lo, hi = max(a.start_time, b.start_time), min(_end(a), _end(b))
    return max((hi - lo).total_seconds(), 0.0)


def _enclosing_function(
    child: SpanLike, parent: SpanLike, functions_under: Mapping[str, Sequence[SpanLike]]
) -> SpanLike | None:
    """Walk down the function spans under ``parent`` while one encloses ``child``; the last one wins."""
    slack = _slack(parent)
    start, end = child.start_time, _end(child)
    found: SpanLike | None = None
    node_id = parent.span_id
    for _ in range(10_000):  # bounded: function trees are capped far below this by the SDK
        candidates = [
            f
            for f in functions_under.get(node_id, ())
            if f.span_id != child.span_id and f.start_time - slack <= start and _end(f) + slack >= end
        ]
        if not candidates:
            break
        found = max(candidates, key=lambda f: (_overlap(f, child), -f.duration))
        node_id = found.span_id
    return found


def place_spans(spans: Iterable[SpanLike]) -> dict[str, Placement]:
    """Display parent and depth of every span, keyed by ``span_id``; ``parent_span_id`` itself is untouched."""
    by_id = {s.span_id: s for s in spans}
    functions_under: dict[str, list[SpanLike]] = {}
    for s in by_id.values():
        if s.synthetic and s.parent_span_id:
            functions_under.setdefault(s.parent_span_id, []).append(s)

    display_parent: dict[str, str | None] = {}
    for s in by_id.values():
        parent = by_id.get(s.parent_span_id) if s.parent_span_id else None
        target = s.parent_span_id
        if not s.synthetic and parent is not None and parent.span_id in functions_under:
            enclosing = _enclosing_function(s, parent, functions_under)
            if enclosing is not None:
                target = enclosing.span_id
        display_parent[s.span_id] = target

    placements: dict[str, Placement] = {}
    for span_id, target in display_parent.items():
        depth, seen, node = 0, {span_id}, target
        while node is not None and node in by_id and node not in seen:  # a missing parent makes a root
            seen.add(node)
            depth += 1
            node = display_parent.get(node)
        placements[span_id] = Placement(target, depth)
    return placements
