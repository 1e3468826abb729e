"""A trace loaded from Postgres as a tree the analyzers can walk.

Function-call spans are pystrument's synthetic spans; real spans (DB, HTTP client) arrive parented to the
request span, so each is nested here under the deepest function span that encloses its midpoint in time:
that is how an N+1 loop is blamed on the function that runs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pystrument_collector.db.models import PerformanceRecord, Span
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(eq=False)
class TSpan:
    """One span with its children in the analysis tree."""

    span_id: str
    parent_id: str | None
    name: str
    kind: str
    start: float  # epoch seconds
    duration: float  # seconds
    attributes: dict[str, Any]
    synthetic: bool
    status_code: int = 0
    children: list[TSpan] = field(default_factory=list)
    parent: TSpan | None = None
    depth: int = 0

    @property
    def end(self) -> float:
        return self.start + self.duration

    @property
    def ms(self) -> float:
        return self.duration * 1000.0

    @property
    def is_function(self) -> bool:
        return self.synthetic or self.attributes.get("pystrument.synthetic") is True

    @property
    def is_library(self) -> bool:
        """Library or built-in code (``<built-in>`` frames from the precise profiler count as library)."""
        if not self.is_function:
            return False
        return self.attributes.get("pystrument.library") is True or (self.file or "").startswith("<")

    @property
    def is_gc_pause(self) -> bool:
        """A garbage-collection pause the SDK placed in the timeline (``garbage collection (generation N)``)."""
        return self.is_function and self.file == "<gc>"

    @property
    def wait_ms(self) -> float:
        """Self time in which this function's thread did not run (the SDK's ``pystrument.wait_time_ms``): a C call
        with no Python frame below it (sleep, I/O, a lock), or the GIL held by other threads."""
        value = self.attributes.get("pystrument.wait_time_ms")
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0

    @property
    def await_ms(self) -> float:
        """Time this coroutine spent suspended in ``await`` (the SDK's ``pystrument.await_time_ms``)."""
        value = self.attributes.get("pystrument.await_time_ms")
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0

    @property
    def in_worker_thread(self) -> bool:
        """Ran in a worker thread of the request (FastAPI ``def`` routes, run_in_executor), not on the loop."""
        lane = str(self.attributes.get("pystrument.thread") or "")
        return any(hint in lane for hint in ("Thread", "thread", "worker", "Executor"))

    @property
    def function(self) -> str:
        return str(self.attributes.get("code.function.name") or self.name)

    @property
    def file(self) -> str | None:
        value = self.attributes.get("code.file.path") or self.attributes.get("code.filepath")
        return str(value) if value else None

    @property
    def line(self) -> int | None:
        value = self.attributes.get("code.line.number", self.attributes.get("code.lineno"))
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    @property
    def self_ms(self) -> float:
        """Self time: the SDK's sampled figure, else duration less the children's."""
        value = self.attributes.get("pystrument.self_time_ms")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return max(0.0, self.ms - sum(c.ms for c in self.children if c.is_function))

    @property
    def db_system(self) -> str | None:
        value = self.attributes.get("db.system") or self.attributes.get("db.system.name")
        return str(value) if value else None

    @property
    def db_statement(self) -> str | None:
        value = self.attributes.get("db.query.text") or self.attributes.get("db.statement")
        return str(value) if value else None

    @property
    def http_method(self) -> str | None:
        value = self.attributes.get("http.request.method") or self.attributes.get("http.method")
        return str(value) if value else None

    @property
    def is_db(self) -> bool:
        return not self.is_function and self.db_system is not None

    @property
    def is_http_client(self) -> bool:
        return not self.is_function and self.kind == "CLIENT" and self.http_method is not None and not self.is_db

    def walk(self) -> Iterator[TSpan]:
        """This span and its descendants, depth first (iterative: deep call trees do not recurse)."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def ancestors(self) -> Iterator[TSpan]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent


@dataclass
class Trace:
    """The spans of one request, its request span (root of the analysis) and its record, if any."""

    trace_id: str
    project_id: int
    root: TSpan
    spans: list[TSpan]
    record: PerformanceRecord | None = None

    @property
    def duration_ms(self) -> float:
        return max(self.root.ms, 1e-6)

    @property
    def route(self) -> str:
        if self.record is not None and self.record.route:
            return self.record.route
        return str(self.root.attributes.get("http.route") or "")

    @cached_property
    def is_async(self) -> bool:
        """The request ran on an event loop: marked ``pystrument.async`` or some function awaited."""
        if self.root.attributes.get("pystrument.async") is True:
            return True
        return any(s.await_ms > 0 or s.attributes.get("pystrument.coroutine") is True for s in self.spans)

    @property
    def cpu_ms(self) -> float | None:
        """The request's CPU time, when the SDK measured it."""
        if self.record is not None and self.record.cpu_time is not None:
            return self.record.cpu_time * 1000.0
        value = self.root.attributes.get("pystrument.cpu_time_ms")
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    @property
    def gc_pause_ms(self) -> float:
        """Time garbage collections stopped the process during the request (the SDK's ``pystrument.gc.pause_ms``)."""
        value = self.root.attributes.get("pystrument.gc.pause_ms")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return sum(s.ms for s in self.spans if s.is_gc_pause)

    def functions(self) -> list[TSpan]:
        return [s for s in self.root.walk() if s.is_function]

    def user_function(self, span: TSpan) -> TSpan | None:
        """The application's own function responsible for ``span``: the nearest non-library function span."""
        node: TSpan | None = span if span.is_function else span.parent
        while node is not None:
            if node.is_function and not node.is_library:
                return node
            node = node.parent
        return None


def _kind(value: str) -> str:
    kind = (value or "").upper()
    return kind.removeprefix("SPAN_KIND_")


def _enclosing_function(top: TSpan, mid: float) -> TSpan:
    """Descend function-span children of ``top`` that contain ``mid``; the deepest one wins."""
    node = top
    while True:
        inner = [c for c in node.children if c.is_function and c.start <= mid <= c.end]
        if not inner:
            return node
        node = min(inner, key=lambda c: c.duration)


def build_trace(trace_id: str, project_id: int, rows: list[TSpan], record: PerformanceRecord | None) -> Trace | None:
    """Link spans into a tree rooted at the request span; None when the trace has no spans."""
    if not rows:
        return None
    by_id = {s.span_id: s for s in rows}
    roots = [s for s in rows if s.parent_id is None or s.parent_id not in by_id]
    root: TSpan | None = by_id.get(record.span_id) if record is not None else None
    if root is None:
        servers = [s for s in roots if s.kind == "SERVER"] or [s for s in rows if s.kind == "SERVER"] or roots or rows
        root = max(servers, key=lambda s: s.duration)
    # function spans first, so real spans can be nested into the finished function tree
    for span in sorted(rows, key=lambda s: (not s.is_function, s.start)):
        parent = by_id.get(span.parent_id or "")
        if parent is None or span is root:
            continue
        if not span.is_function and not parent.is_function and (parent.kind == "SERVER" or parent is root):
            parent = _enclosing_function(parent, span.start + span.duration / 2)
        span.parent = parent
        parent.children.append(span)
    for span in root.walk():
        span.depth = 0 if span.parent is None or span is root else span.parent.depth + 1
        span.children.sort(key=lambda c: c.start)
    members = list(root.walk())
    return Trace(trace_id=trace_id, project_id=project_id, root=root, spans=members, record=record)


def to_tspan(row: Span) -> TSpan:
    return TSpan(
        span_id=row.span_id,
        parent_id=row.parent_span_id,
        name=row.name,
        kind=_kind(row.kind),
        start=row.start_time.timestamp(),
        duration=max(0.0, float(row.duration)),
        attributes=dict(row.attributes or {}),
        synthetic=bool(row.synthetic),
        status_code=int(row.status_code or 0),
    )


async def load_trace(session: AsyncSession, project_id: int, trace_id: str) -> Trace | None:
    """Read the trace's spans and request record from Postgres."""
    rows = (await session.scalars(select(Span).where(Span.project_id == project_id, Span.trace_id == trace_id))).all()
    record = (
        await session.scalars(
            select(PerformanceRecord)
            .where(PerformanceRecord.project_id == project_id, PerformanceRecord.trace_id == trace_id)
            .order_by(PerformanceRecord.duration.desc())
            .limit(1)
        )
    ).first()
    return build_trace(trace_id, project_id, [to_tspan(r) for r in rows], record)
