"""Who held the event loop: the requests that ran on the same loop while an async request was waiting for it.

One bounded, project-scoped query for the requests of the same service that overlap this one, one for their
function spans inside the window; the code that held the loop longest within the window is the culprit.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from pystrument_collector.db.models import PerformanceRecord, Span
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pystrument_analysis.analysis.trace import Neighbour, Trace, TSpan, as_number, to_tspan
from pystrument_analysis.api.services.span_store import function_spans, to_stored

MAX_REQUESTS = 30  # overlapping requests read
MAX_SPANS = 5000  # of their function spans
LOOKBACK = timedelta(minutes=2)  # the longest request a neighbour may be (keeps the index range short)
MIN_HELD_MS = 1.0


def held_loop_ms(span: TSpan) -> float:
    """Time a function on the loop held it itself: its self time less awaits and its own waits for the loop."""
    return max(0.0, span.self_ms - span.await_ms - span.loop_wait_ms)


def _ancestry(span: TSpan, by_id: dict[str, TSpan]) -> tuple[bool, TSpan]:
    """Whether the span ran in a worker thread, and the app function to name for it (itself if none above)."""
    node: TSpan | None = span
    named = span
    for _ in range(500):
        if node is None:
            break
        if node.in_worker_thread:
            return True, named
        if (named.is_library or named.is_comprehension) and node.is_function and not node.is_library:
            if node.is_comprehension:
                node = by_id.get(node.parent_id or "")
                continue
            named = node
        node = by_id.get(node.parent_id or "")
    return False, named


async def load_neighbours(session: AsyncSession, trace: Trace) -> list[Neighbour]:
    """Code of other requests on this request's loop that held it within this request's window, biggest first."""
    root = trace.root
    start = datetime.fromtimestamp(root.start, UTC)
    end = datetime.fromtimestamp(root.end, UTC)
    r = PerformanceRecord
    stmt = select(r.trace_id, r.span_id, r.route, r.duration, r.timestamp).where(
        r.project_id == trace.project_id,
        r.timestamp < end,
        r.timestamp > start - LOOKBACK,
        r.trace_id != trace.trace_id,
    )
    if trace.service:
        stmt = stmt.where(r.service_name == trace.service)
    rows = (await session.execute(stmt.order_by(r.duration.desc()).limit(MAX_REQUESTS * 4))).all()
    others = [row for row in rows if row.timestamp + timedelta(seconds=row.duration) > start][:MAX_REQUESTS]
    if not others:
        return []
    routes = {row.trace_id: row.route for row in others}
    request_ids = {row.span_id for row in others}
    stored = await session.scalars(
        select(Span)
        .where(
            Span.project_id == trace.project_id,
            Span.trace_id.in_(list(routes)),
            Span.start_time < end,
            Span.start_time > start - LOOKBACK,
        )
        .limit(MAX_SPANS)
    )
    rows_spans = [to_stored(row) for row in stored]
    packed = await function_spans(session, trace.project_id, routes, start=start - LOOKBACK, end=end)
    rows_spans += [s for s in packed if s.start_time != start - LOOKBACK and s.start_time != end]
    rows_spans = rows_spans[:MAX_SPANS]
    loaded = [(row.trace_id, to_tspan(row)) for row in rows_spans]
    by_id = {s.span_id: s for _, s in loaded}
    excluded = set()
    for trace_id, s in loaded:
        if s.span_id in request_ids:
            loop = s.attributes.get("pystrument.loop")
            if (trace.loop_id and loop and loop != trace.loop_id) or not (loop or s.attributes.get("pystrument.async")):
                excluded.add(trace_id)  # another loop, or a request that does not run on one
    held_by: dict[tuple[str, str], Neighbour] = {}
    for trace_id, s in loaded:
        if trace_id in excluded or not s.is_function or s.is_gc_pause:
            continue
        held = held_loop_ms(s)
        overlap = min(s.end, root.end) - max(s.start, root.start)
        if held < MIN_HELD_MS or overlap <= 0:
            continue
        in_thread, named = _ancestry(s, by_id)
        if in_thread:
            continue
        share = held * min(1.0, overlap / s.duration) if s.duration > 0 else 0.0
        key = (trace_id, named.span_id)
        before = held_by.get(key)
        total = share + (before.held_ms if before is not None else 0.0)
        held_by[key] = Neighbour(trace_id, named.span_id, named.label, total, routes.get(trace_id, ""))
    # one loop runs one thing at a time: a request held it at most for its duration less its own waits for it
    roots = {trace_id: s for trace_id, s in loaded if s.span_id in request_ids}
    claimed: dict[str, float] = {}
    for n in held_by.values():
        claimed[n.trace_id] = claimed.get(n.trace_id, 0.0) + n.held_ms
    capped = []
    for n in held_by.values():
        root_span = roots.get(n.trace_id)
        if root_span is not None and claimed[n.trace_id] > 0:
            wait = as_number(root_span.attributes.get("pystrument.loop_wait_ms")) or 0.0
            limit = max(0.0, root_span.ms - wait)
            n = replace(n, held_ms=n.held_ms * min(1.0, limit / claimed[n.trace_id]))
        if n.held_ms >= MIN_HELD_MS:
            capped.append(n)
    return sorted(capped, key=lambda n: -n.held_ms)
