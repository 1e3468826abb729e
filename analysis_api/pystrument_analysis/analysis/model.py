"""The trace model the builtin rules read, computed once per analysis.

For every span: its *owner*, the unit that findings name (an application function, or a template being
rendered; generator expressions, comprehensions and lambdas fold into their nearest named caller), whether it ran
on the event loop, and what a library frame does. For the request: where each millisecond went, as a partition
of its duration into the time each unit held (its own time, the library work it called and the calls made from
it), garbage-collection pauses, waits for an event loop another request held, and time nothing was sampled in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from pystrument_analysis.analysis.classify import frame_category
from pystrument_analysis.analysis.trace import Trace, TSpan

UNSAMPLED = "(not sampled)"


def union_ms(spans: Iterable[TSpan]) -> float:
    """Wall time covered by the spans (overlapping spans count once)."""
    total, cur_start, cur_end = 0.0, 0.0, None
    for s in sorted(spans, key=lambda x: x.start):
        if cur_end is None or s.start > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = s.start, s.end
        else:
            cur_end = max(cur_end, s.end)
    if cur_end is not None:
        total += cur_end - cur_start
    return total * 1000.0


def real_calls_ms(span: TSpan) -> float:
    """Wall time of the real spans (DB, HTTP, ...) placed directly under ``span``."""
    return union_ms(c for c in span.children if not c.is_function)


@dataclass
class Unit:
    """What one owner (all its spans, by name) held of the request."""

    label: str
    spans: list[TSpan] = field(default_factory=list)
    held_ms: float = 0.0


class TraceModel:
    """Owners, lanes, frame categories and the time partition of one trace; built once, read by every rule."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.total_ms = trace.duration_ms
        self.owner: dict[TSpan, TSpan | None] = {}
        self.on_loop: dict[TSpan, bool] = {}
        self.category: dict[TSpan, str | None] = {}
        self.owned_frames: dict[TSpan, list[TSpan]] = defaultdict(list)  # owner -> library frames and comprehensions
        self.units: dict[str, Unit] = {}
        self._walk()

    # -- one pass, parents before children ---------------------------------------------------------------------

    def _walk(self) -> None:
        trace = self.trace
        for span in trace.root.walk():
            parent = span.parent
            inherited = self.owner.get(parent) if parent is not None else None
            loop = self.on_loop.get(parent, trace.is_async) if parent is not None else trace.is_async
            if span.is_function and span.in_worker_thread:
                loop = False
            self.on_loop[span] = loop
            if not span.is_function or span.is_gc_pause:
                self.owner[span] = inherited
                continue
            self.category[span] = frame_category(span)
            if span.template is not None or (not span.is_library and not span.is_comprehension):
                self.owner[span] = span
            else:
                self.owner[span] = inherited
                if inherited is not None:
                    self.owned_frames[inherited].append(span)
            held = max(span.self_ms, real_calls_ms(span)) - span.loop_wait_ms
            unit_span = self.owner[span] or span
            unit = self.units.setdefault(unit_span.label, Unit(unit_span.label))
            if unit_span not in unit.spans:
                unit.spans.append(unit_span)
            unit.held_ms += max(0.0, held)

    # -- the partition of the request's time -------------------------------------------------------------------

    @cached_property
    def unsampled_ms(self) -> float:
        """Request time outside every function span and call: framework code before and after, or no samples."""
        return max(0.0, self.total_ms - union_ms(c for c in self.trace.root.children if not c.is_gc_pause))

    @cached_property
    def root_calls_ms(self) -> float:
        """Real calls directly under the request span (no function span over them: an unsampled request)."""
        return real_calls_ms(self.trace.root)

    @cached_property
    def gc_ms(self) -> float:
        return self.trace.gc_pause_ms

    @cached_property
    def loop_wait_ms(self) -> float:
        return self.trace.loop_wait_ms

    def owner_of(self, span: TSpan) -> TSpan | None:
        """The unit responsible for ``span`` (None: only framework code and the request span are above it)."""
        return self.owner.get(span)

    def name(self, owner: TSpan | None, fallback: TSpan | None = None) -> str:
        """How a finding names its owner; without one, the nearest named function above ``fallback``, then the
        request's own function or its path (never a route regex)."""
        if owner is not None:
            return owner.label
        node = fallback
        while node is not None and node is not self.trace.root:
            if node.is_function and not node.is_gc_pause and not node.is_comprehension:
                return node.label
            node = node.parent
        return request_name(self.trace)

    def frames(self, owner: TSpan, category: str | None) -> list[TSpan]:
        """The owner's library frames of ``category``, outermost only (a frame inside another is not counted)."""
        picked = [f for f in self.owned_frames.get(owner, []) if self.category.get(f) == category]
        chosen = set(picked)
        return [f for f in picked if not any(a in chosen for a in _ancestors_until(f, owner))]

    @cached_property
    def templates(self) -> list[TSpan]:
        """Outermost template-rendering spans."""
        spans = [s for s in self.trace.spans if s.is_function and s.template is not None]
        chosen = set(spans)
        return [s for s in spans if not any(a in chosen for a in s.ancestors())]

    def gc_inside_ms(self, span: TSpan) -> float:
        return sum(d.gc_pause_ms for d in span.walk() if d.is_gc_pause and d is not span)


def _ancestors_until(span: TSpan, stop: TSpan) -> Iterable[TSpan]:
    for a in span.ancestors():
        if a is stop:
            return
        yield a


def looks_like_regex(route: str) -> bool:
    return any(mark in route for mark in ("^", "$", "(?", "\\", "[", "*", "+", "|"))


def request_name(trace: Trace) -> str:
    """The request's own function (``code.function.name`` on the request span), its route when that is a template
    rather than a regex, else ``METHOD path``."""
    root = trace.root
    function = root.attributes.get("code.function.name")
    if function:
        return str(function)
    route = trace.route
    if route and not looks_like_regex(route):
        return route
    path = trace.record.path if trace.record is not None else str(root.attributes.get("url.path") or "")
    method = trace.record.method if trace.record is not None else (root.http_method or "")
    return f"{method} {path.split('?')[0]}".strip() or root.name
