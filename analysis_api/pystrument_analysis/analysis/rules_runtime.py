"""Rules on the runtime around the code: garbage-collection pauses and an event loop held by another request."""

from __future__ import annotations

from pystrument_analysis.analysis.findings import Finding
from pystrument_analysis.analysis.model import TraceModel, real_calls_ms

GC_MIN_MS = 10.0
GC_MIN_SHARE = 0.1
CONTENTION_MIN_MS = 10.0
CONTENTION_MIN_SHARE = 0.1


def detect_gc(model: TraceModel) -> list[Finding]:
    """Garbage collections that stopped the process for a large share of the request (every thread waits for one,
    so the requests running alongside were stopped too). Each GC span stands for ``pystrument.gc.pause_ms``."""
    trace = model.trace
    pause_ms = model.gc_ms
    total = model.total_ms
    if pause_ms < GC_MIN_MS or pause_ms / total < GC_MIN_SHARE:
        return []
    pauses = [s for s in trace.spans if s.is_gc_pause]
    longest = max(pauses, key=lambda s: s.gc_pause_ms, default=None)
    owner = model.owner_of(longest.parent) if longest is not None and longest.parent is not None else None
    collections = trace.root.attributes.get("pystrument.gc.collections")
    generation = longest.function.rsplit(" ", 1)[-1].strip("()") if longest is not None else "2"
    return [
        Finding(
            detector="gc_pause",
            type="gc",
            function=model.name(owner, longest.parent if longest is not None else None),
            impact=min(1.0, pause_ms / total),
            time_ms=pause_ms,
            spans=pauses,
            function_span=owner,
            count=collections if isinstance(collections, int) and collections > 0 else max(1, len(pauses)),
            saving=0.8,
            detail={"library": f"generation {generation}"},
            min_severity="medium" if pause_ms >= 50 else "low",
        )
    ]


def waiting_for_loop_ms(model: TraceModel) -> float:
    """How long an async request stood ready while its loop was busy: the SDK's ``pystrument.loop_wait_ms`` when
    it says; else awaits that no call of its own explains, and time in which it was not sampled at all."""
    trace = model.trace
    if not trace.is_async:
        return 0.0
    if trace.loop_wait_ms > 0:
        return trace.loop_wait_ms
    unexplained = 0.0
    for span in trace.spans:
        if span.is_function and span.await_ms > 0 and model.on_loop.get(span):
            inner = sum(c.await_ms for c in span.children if c.is_function)
            unexplained += max(0.0, span.await_ms - inner - real_calls_ms(span))
    return unexplained + model.unsampled_ms


def detect_loop_contention(model: TraceModel) -> list[Finding]:
    """An async request that waited while code of another request held its event loop: named by the culprit's
    function and trace (``Trace.neighbours``, read by the loader), not by this request's own code."""
    trace = model.trace
    if not trace.neighbours:
        return []
    waited = waiting_for_loop_ms(model)
    culprit = trace.neighbours[0]
    held = sum(n.held_ms for n in trace.neighbours)
    time_ms = min(waited, held)
    if time_ms < CONTENTION_MIN_MS or time_ms / model.total_ms < CONTENTION_MIN_SHARE:
        return []
    return [
        Finding(
            detector="loop_blocked_by_other_request",
            type="blocking",
            function=culprit.function,
            impact=min(1.0, time_ms / model.total_ms),
            time_ms=time_ms,
            spans=[],
            count=len({n.trace_id for n in trace.neighbours}),
            saving=1.0,
            detail={
                "culprit_trace_id": culprit.trace_id,
                "culprit_span_id": culprit.span_id,
                "culprit_route": culprit.route,
                "library": f"trace {culprit.trace_id}" + (f", {culprit.route}" if culprit.route else ""),
            },
            min_severity="medium",
        )
    ]
