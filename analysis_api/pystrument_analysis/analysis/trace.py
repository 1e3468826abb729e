"""A trace loaded from Postgres as a tree the analyzers can walk.

Function-call spans are pystrument's synthetic spans; real spans (DB, HTTP client) arrive parented to the
request span, so each is nested here under the function span that claims it or encloses it in time, by the same
placement the trace view uses (``api.services.span_tree``): that is how an N+1 loop is blamed on the function
that runs it. For a request that ran on an event loop, the loader also reads the requests that ran beside it on
the same loop (``neighbours``), so a request held up by another one can name the culprit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pystrument_collector.db.models import PerformanceRecord
from pystrument_collector.packs import StoredSpan
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pystrument_analysis.api.services.span_store import as_number, trace_spans
from pystrument_analysis.api.services.span_tree import GC_FILE, INTERVAL_ATTRIBUTE, claims_of, place, tree_span

COMPREHENSIONS = frozenset({"<genexpr>", "<listcomp>", "<dictcomp>", "<setcomp>", "<lambda>"})
TEMPLATE_SUFFIXES = (".html", ".htm", ".jinja", ".jinja2", ".j2", ".txt", ".xml", ".tmpl")


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
        return self.is_function and self.file == GC_FILE

    @property
    def gc_pause_ms(self) -> float:
        """The pause a GC span stands for (its ``pystrument.gc.pause_ms``; else its length)."""
        value = as_number(self.attributes.get("pystrument.gc.pause_ms"))
        return value if value is not None else self.ms

    @property
    def loop_wait_ms(self) -> float:
        """Time this code was ready to run but another task held the event loop (``pystrument.loop_wait_ms``)."""
        return as_number(self.attributes.get("pystrument.loop_wait_ms")) or 0.0

    @property
    def is_comprehension(self) -> bool:
        """A generator expression, comprehension or lambda: never named itself, its nearest named caller is."""
        return self.is_function and self.function.rsplit(".", 1)[-1] in COMPREHENSIONS

    @property
    def template(self) -> str | None:
        """The template a template-rendering span renders (``pystrument.template``; Jinja's ``root`` frame of a
        template file; a span named ``template <name>``)."""
        if not self.is_function:
            return None
        value = self.attributes.get("pystrument.template")
        if isinstance(value, str) and value:
            return value
        if self.name.startswith("template ") and len(self.name) > 9:
            return self.name[9:]
        file = (self.file or "").replace("\\", "/")
        if self.function.split(" ", 1)[0] == "root" and file.endswith(TEMPLATE_SUFFIXES):
            return file.rsplit("/templates/", 1)[-1] if "/templates/" in file else file.rsplit("/", 1)[-1]
        return None

    @property
    def label(self) -> str:
        """How findings name this span: ``template <name>`` for a template, else its function name."""
        template = self.template
        return f"template {template}" if template else self.function

    @property
    def wait_ms(self) -> float:
        """Self time in which this function's thread did not run (the SDK's ``pystrument.wait_time_ms``): a C call
        with no Python frame below it (sleep, I/O, a lock), or the GIL held by other threads."""
        return as_number(self.attributes.get("pystrument.wait_time_ms")) or 0.0

    @property
    def await_ms(self) -> float:
        """Time this coroutine spent suspended in ``await`` (the SDK's ``pystrument.await_time_ms``)."""
        return as_number(self.attributes.get("pystrument.await_time_ms")) or 0.0

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
        value = as_number(self.attributes.get("pystrument.self_time_ms"))
        if value is not None:
            return value
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


@dataclass(frozen=True)
class Neighbour:
    """Code of another request that held the same event loop while this request was waiting for it."""

    trace_id: str
    span_id: str
    function: str
    held_ms: float  # time that function held the loop, within this request's window
    route: str = ""


@dataclass
class Trace:
    """The spans of one request, its request span (root of the analysis) and its record, if any."""

    trace_id: str
    project_id: int
    root: TSpan
    spans: list[TSpan]
    record: PerformanceRecord | None = None
    neighbours: list[Neighbour] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return max(self.root.ms, 1e-6)

    @property
    def route(self) -> str:
        if self.record is not None and self.record.route:
            return self.record.route
        return str(self.root.attributes.get("http.route") or "")

    @property
    def service(self) -> str:
        return self.record.service_name if self.record is not None else ""

    @cached_property
    def is_async(self) -> bool:
        """The request ran on an event loop: marked ``pystrument.async`` or some function awaited."""
        if self.root.attributes.get("pystrument.async") is True or self.loop_id:
            return True
        return any(s.await_ms > 0 or s.attributes.get("pystrument.coroutine") is True for s in self.spans)

    @property
    def loop_id(self) -> str:
        """The event loop that ran the request (``pystrument.loop``: host:pid:loop), when the SDK says."""
        return str(self.root.attributes.get("pystrument.loop") or "")

    @property
    def starved(self) -> str:
        """Why the request could not be sampled (``pystrument.profile.starved``), or ``""``."""
        value = self.root.attributes.get("pystrument.profile.starved")
        return str(value) if value else ""

    @property
    def interval_ms(self) -> float:
        value = as_number(self.root.attributes.get(INTERVAL_ATTRIBUTE))
        return value if value is not None and 0 < value <= 1000 else 1.0

    @property
    def loop_wait_ms(self) -> float:
        """Time the request was ready to run but another task held its event loop."""
        value = as_number(self.root.attributes.get("pystrument.loop_wait_ms"))
        return value if value is not None else sum(s.loop_wait_ms for s in self.spans if s.is_function)

    @property
    def cpu_ms(self) -> float | None:
        """The request's CPU time, when the SDK measured it (an estimate from samples does not count)."""
        if self.root.attributes.get("pystrument.cpu_time_source") == "samples":
            return None
        if self.record is not None and self.record.cpu_time is not None:
            return self.record.cpu_time * 1000.0
        return as_number(self.root.attributes.get("pystrument.cpu_time_ms"))

    @property
    def gc_pause_ms(self) -> float:
        """Time garbage collections stopped the process during the request (the SDK's ``pystrument.gc.pause_ms``)."""
        value = as_number(self.root.attributes.get("pystrument.gc.pause_ms"))
        if value is not None:
            return value
        return sum(s.gc_pause_ms for s in self.spans if s.is_gc_pause)

    def functions(self) -> list[TSpan]:
        return [s for s in self.spans if s.is_function]


def _kind(value: str) -> str:
    kind = (value or "").upper()
    return kind.removeprefix("SPAN_KIND_")


def build_trace(trace_id: str, project_id: int, rows: list[TSpan], record: PerformanceRecord | None) -> Trace | None:
    """Link spans into a tree rooted at the request span (the shared placement); None when there are no spans."""
    if not rows:
        return None
    by_id = {s.span_id: s for s in rows}
    roots = [s for s in rows if s.parent_id is None or s.parent_id not in by_id]
    root: TSpan | None = by_id.get(record.span_id) if record is not None else None
    if root is None:
        servers = [s for s in roots if s.kind == "SERVER"] or [s for s in rows if s.kind == "SERVER"] or roots or rows
        root = max(servers, key=lambda s: s.duration)
    placed = place(
        tree_span(
            s.span_id,
            s.parent_id,
            round(s.start * 1_000_000),
            s.duration,
            s.is_function,
            s.attributes.get(INTERVAL_ATTRIBUTE),
            claims_of(s.attributes) if s.is_function else (),
            s.is_gc_pause,
        )
        for s in by_id.values()
    )
    for span in by_id.values():
        parent = by_id.get(placed[span.span_id].display_parent_span_id or "")
        if parent is None or span is root:
            continue
        span.parent = parent
        parent.children.append(span)
    members: list[TSpan] = []
    stack, seen = [root], {root.span_id}
    while stack:  # the root's subtree, each span once (a cycle in bad data cannot loop)
        node = stack.pop()
        members.append(node)
        if node is root:
            root.parent, root.depth = None, 0
        node.children.sort(key=lambda c: c.start)
        node.children = [c for c in node.children if c.span_id not in seen]
        for child in node.children:
            seen.add(child.span_id)
            child.depth = node.depth + 1
        stack.extend(reversed(node.children))
    return Trace(trace_id=trace_id, project_id=project_id, root=root, spans=members, record=record)


def to_tspan(row: StoredSpan) -> TSpan:
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
    rows = await trace_spans(session, project_id, trace_id)
    record = (
        await session.scalars(
            select(PerformanceRecord)
            .where(PerformanceRecord.project_id == project_id, PerformanceRecord.trace_id == trace_id)
            .order_by(PerformanceRecord.duration.desc())
            .limit(1)
        )
    ).first()
    trace = build_trace(trace_id, project_id, [to_tspan(r) for r in rows], record)
    if trace is not None and trace.is_async:
        from pystrument_analysis.analysis.neighbours import load_neighbours

        trace.neighbours = await load_neighbours(session, trace)
    return trace
