"""Pure pipeline stages: frame records -> timeline call tree -> collapse library frames -> prune.

A ``Call`` is one contiguous run of samples in which a function was on the stack, so the tree is a
timeline (repeated calls stay separate) and nested calls nest in time. Times are seconds on the
sampler's clock; the span emitter maps them to epoch nanoseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from pyinstrument.frame_info import ATTRIBUTES_SEP
from pyinstrument.frame_ops import FrameRecordType

from pystrument._frames import (
    ATTRIBUTE_MARKER_OWNER,
    ATTRIBUTE_MARKER_TEMPLATE,
    AWAIT,
    END_CLAIM,
    GC_FILE,
    MARK,
    OUT_OF_CONTEXT,
    QUEUED,
    READY,
    WAIT,
    RunLength,
    call_key,
    is_library_path,
    library_package,
    qualified_name,
    split_identifier,
)
from pystrument._gc import pause_length

#: Framework functions that call the view: what they call stays a visible call even inside the framework's own
#: package (Django's admin views are Django's code), so the request's time is never the dispatcher's own.
DISPATCHERS = frozenset(
    {
        ("BaseHandler._get_response", "django/core/handlers/base.py"),
        ("BaseHandler._get_response_async", "django/core/handlers/base.py"),
        ("Flask.dispatch_request", "flask/app.py"),
        ("Flask.full_dispatch_request", "flask/app.py"),
        ("run_endpoint_function", "fastapi/routing.py"),
        ("request_response.<locals>.app.<locals>.app", "starlette/routing.py"),
    }
)


@dataclass(eq=False)
class Call:
    """One function call reconstructed from samples."""

    identifier: str  # the function plus its call site, when recorded
    name: str
    file: str
    line: int
    library: bool
    start: float
    end: float
    time: float = 0.0
    self_time: float = 0.0
    await_time: float = 0.0
    wait_time: float = 0.0  # self time in which its thread did not run (``[wait]``)
    queue_time: float = 0.0  # self time in which its thread was ready to run without a core (``[queued]``)
    loop_wait_time: float = 0.0  # self time in which its task was ready to run but another held the loop
    samples: int = 0
    lane: str = ""
    children: list[Call] = field(default_factory=list)
    #: What marks taken while this call was the innermost one claim: child span ids, lanes handed work.
    claims: list[str] = field(default_factory=list)
    #: The template this call renders (a visible call whatever its owner), or "".
    template: str = ""
    #: The garbage-collection pause this call stands for, in seconds (0: not a pause).
    pause: float = 0.0
    #: Where most of a library chain's time went (``_mark_hot``): stays a call of its own when the chain collapses.
    hot: bool = False

    @property
    def keep(self) -> bool:
        """Never folded into the library call around it: a template render, a garbage-collection pause."""
        return bool(self.template) or self.file == GC_FILE

    @property
    def package(self) -> str:
        return library_package(self.file) if self.library else ""

    @property
    def dispatcher(self) -> bool:
        return self.library and any(self.name == n and self.file.endswith(f) for n, f in DISPATCHERS)

    @property
    def duration(self) -> float:
        return self.end - self.start

    def walk(self) -> Iterable[Call]:
        yield self
        for child in self.children:
            yield from child.walk()


# Frame info -> (call key, name, file, line, library, template) for the default library test: the same frames (the
# framework's, the app's) come back in every request, so the span worker parses each once.
Parsed = tuple[str, str, str, int, bool, str]
_parsed: dict[str, Parsed] = {}
_PARSED_LIMIT = 50_000


def _parse(frame_info: str, is_library: Callable[[str], bool]) -> Parsed:
    parsed = _parsed.get(frame_info) if is_library is is_library_path else None
    if parsed is None:
        function, file, line, class_name = split_identifier(frame_info)
        library = file != GC_FILE and is_library(file)
        template = ""
        _, _, attributes = frame_info.partition(ATTRIBUTES_SEP)
        for attribute in attributes.split(ATTRIBUTES_SEP) if attributes else ():
            if attribute.startswith(ATTRIBUTE_MARKER_OWNER):
                library = attribute[1:] == "1"
            elif attribute.startswith(ATTRIBUTE_MARKER_TEMPLATE):
                template = attribute[1:]
        parsed = (call_key(frame_info), qualified_name(function, class_name), file, line, library, template)
        if is_library is is_library_path:
            if len(_parsed) >= _PARSED_LIMIT:
                _parsed.clear()
            _parsed[frame_info] = parsed
    return parsed


def new_call(frame_info: str, start: float, lane: str, is_library: Callable[[str], bool] = is_library_path) -> Call:
    identifier, name, file, line, library, template = _parse(frame_info, is_library)
    if file == GC_FILE:  # each pause its own call: its start is its call site
        return Call(
            identifier=identifier,
            name=name,
            file=file,
            line=line,
            library=False,
            start=start,
            end=start,
            lane=lane,
            pause=pause_length(frame_info),
        )
    return Call(
        identifier=identifier,
        name=name,
        file=file,
        line=line,
        library=library,
        start=start,
        end=start,
        lane=lane,
        template=template,
    )


def build_calls(
    records: Sequence[FrameRecordType],
    start: float,
    lane: str = "",
    is_library: Callable[[str], bool] = is_library_path,
) -> list[Call]:
    """Timeline tree of the calls in ``records``; each record's time ends at the record (pyinstrument's convention).

    ``[await]`` leaves count as self and await time of the awaiting call. ``[out-of-context]`` records
    (pyinstrument strict mode: the task was ready but another task held the loop) continue the open calls
    as await time. An empty stack is time outside any function and ends the open calls.
    """
    roots: list[Call] = []
    open_calls: list[Call] = []
    keys: dict[str, str] = {}

    def key(info: str) -> str:
        found = keys.get(info)
        if found is None:
            found = keys[info] = call_key(info)
        return found

    t = start
    for stack, dt in records:
        t0, t = t, t + dt
        weight = stack.n if stack.__class__ is RunLength else 1
        claim: str | None = None
        if stack and stack[-1].startswith(MARK):  # seen by the request's code, not sampled: no sample counted
            claim = stack[-1][len(MARK) :]
            stack = stack[:-1]
        marker = key(stack[-1]) if stack else None
        if marker not in (AWAIT, OUT_OF_CONTEXT, WAIT, READY, QUEUED):
            marker = None
        if marker != OUT_OF_CONTEXT:
            infos = stack[:-1] if marker else stack
            depth = 0
            while depth < len(open_calls) and depth < len(infos) and open_calls[depth].identifier == key(infos[depth]):
                depth += 1
            del open_calls[depth:]
            for info in infos[depth:]:
                call = new_call(info, t0, lane, is_library)
                (open_calls[-1].children if open_calls else roots).append(call)
                open_calls.append(call)
        counted = (
            marker != WAIT and marker != QUEUED and claim is None
        )  # a wait record is the first part of a sample whose run part follows
        for call in open_calls:
            call.end = t
            call.time += dt
            if counted:
                call.samples += weight
        if open_calls:
            innermost = open_calls[-1]
            innermost.self_time += dt
            if marker == WAIT:
                innermost.wait_time += dt
            elif marker == QUEUED:
                innermost.queue_time += dt
            elif marker == READY:
                innermost.await_time += dt
                innermost.loop_wait_time += dt
            elif marker is not None:
                innermost.await_time += dt
            if claim and not claim.startswith(END_CLAIM):
                innermost.claims.append(claim)
    return roots


def cover_claims(calls: list[Call], spans: dict[str, tuple[float, float]], path: tuple[Call, ...] = ()) -> None:
    """Stretch each call that claims a child span (and its callers) over the span's marks, from the first to the last
    (``spans``: span id -> (start, end) on the sampler's clock): the call that started a span was on the stack from
    its start until it ended, even where no sample caught it there, and where a claim moved since (to the owner of a
    library chain, to the caller of a pruned call) the call now holding it was on the stack too. Only the calls move,
    never the child span."""
    for call in calls:
        here = (*path, call)
        for claim in call.claims:
            span = spans.get(claim)
            if span is None:
                continue
            start, end = span
            if end > call.end:
                for caller in here:
                    caller.end = max(caller.end, end)
            if start < call.start:
                for caller in here:
                    caller.start = min(caller.start, start)
        cover_claims(call.children, spans, here)


#: Packages that work for their caller (the standard library, tracing and context plumbing): a call into them never
#: stays a call of its own inside a library chain, and what they call is judged against the chain's package.
TRANSPARENT = frozenset({"stdlib", "opentelemetry", "asgiref", "wrapt", "typing_extensions", "six", "pystrument"})

#: Packages that are one framework with another: FastAPI is Starlette's routing and middleware, extended, and a
#: request passes back and forth between the two about ten times before it reaches the view. Calls between them are one
#: library chain, not calls into another package (which would each stay visible: ten middleware calls for one view).
FRAMEWORKS = {"fastapi": "starlette"}


#: Packages whose calls under a template render are the render's own work (the engines and their helpers).
TEMPLATE_ENGINES = frozenset({"django", "jinja2", "markupsafe"})


def collapse_library(calls: list[Call]) -> list[Call]:
    """A chain of library calls becomes one call named after the first library function entered.

    Library calls below it are merged into it (their time becomes its self time, their claims its claims), except
    calls that say something of their own, which stay its children: application code (callbacks, views called by a
    framework), a call into another package than the chain's (the standard library and tracing plumbing excepted:
    they work for their caller), what a framework's dispatcher calls (the view), template renders and
    garbage-collection pauses. A template render owns the engine's calls below it the same way. Mutates and returns.
    """
    for call in calls:
        if (call.library or call.template) and call.file != GC_FILE:
            _mark_hot(call)
            call.children = _absorb_library_children(call, call)
        else:
            call.children = collapse_library(call.children)
    return calls


#: A library chain's hot call stays visible once it holds at least this much of the chain's time, and this long.
HOT_SHARE = 0.5
HOT_MIN_S = 0.02


def _mark_hot(owner: Call) -> None:
    """Follow a library chain down while one call holds most of the time: the deepest such call (the password
    hasher under a login view, the query compiler under a list view) stays visible when the chain collapses, so
    the time is named where it went rather than at the chain's entry."""
    node, hot = owner, None
    floor = max(HOT_SHARE * owner.time, HOT_MIN_S)
    while True:
        heavy = [c for c in node.children if c.time >= floor]
        if len(heavy) != 1 or not heavy[0].library or heavy[0].keep:
            break
        node = heavy[0]
        if node.package not in TRANSPARENT:  # the standard library's or plumbing's frames are never the news
            hot = node
    if hot is not None and hot is node:
        # Time the library code itself worked (or waited in C), not awaiting or in the application's callbacks.
        callbacks = sum(c.time for c in hot.children if c.keep or not c.library)
        awaited = sum(c.await_time for c in hot.walk() if c.library and not c.keep)
        hot.hot = hot.time - callbacks - awaited >= floor


def _stays(child: Call, caller: Call, owner: Call) -> bool:
    if owner.template and child.name == owner.name:
        return False  # the template's compiled code (Jinja), under the render that stands for it
    if not child.library or child.keep or caller.dispatcher or child.hot:
        return True
    package = child.package
    if owner.template and package in TEMPLATE_ENGINES:
        return False  # the template engine's own calls are the render's time
    if package in TRANSPARENT:
        return False
    theirs = owner.package
    return package != theirs and FRAMEWORKS.get(package, package) != FRAMEWORKS.get(theirs, theirs)


def _absorb_library_children(owner: Call, caller: Call) -> list[Call]:
    kept: list[Call] = []
    for child in caller.children:
        if _stays(child, caller, owner):
            if (child.library or child.template) and child.file != GC_FILE:
                _mark_hot(child)
                child.children = _absorb_library_children(child, child)
            else:
                child.children = collapse_library(child.children)
            kept.append(child)
        else:
            # Absorb the child's own library descendants first, so their time reaches the owner through it.
            kept.extend(_absorb_library_children(owner, child))
            owner.self_time += child.self_time
            owner.await_time += child.await_time
            owner.wait_time += child.wait_time
            owner.queue_time += child.queue_time
            owner.loop_wait_time += child.loop_wait_time
            owner.claims.extend(child.claims)
    return kept


def attach_lanes(main: list[Call], others: Sequence[tuple[str, list[Call]]]) -> list[Call]:
    """Nest the calls of other lanes (worker threads, child tasks; each given with the claim its hand-off mark left)
    under the call that handed the work off: the innermost call of the mark taken then, on whichever lane. Without a
    mark (work adopted rather than handed off), under the main-lane call that overlaps it most, descending while a
    child overlaps it too, else at the top; a garbage-collection pause is never a parent. The enclosing calls are
    stretched to cover them; the parent's self time no longer counts the nested time."""
    roots = list(main)
    eligible = {id(c) for root in main for c in root.walk() if not c.pause and c.file != GC_FILE}
    for token, calls in sorted(others, key=lambda item: min((c.start for c in item[1]), default=0.0)):
        claimed = _claimer_path(roots, token)
        for call in sorted(calls, key=lambda c: c.start):
            path = claimed or _most_overlapping(roots, call, eligible)
            if not path:
                roots.append(call)
                continue
            parent = path[-1]
            parent.children.append(call)
            parent.children.sort(key=lambda c: c.start)
            parent.self_time = max(0.0, parent.self_time - call.time)
            parent.await_time = max(0.0, parent.await_time - call.time)
            parent.wait_time = max(0.0, parent.wait_time - call.time)
            parent.queue_time = min(parent.queue_time, parent.self_time)
            for encloser in path:
                encloser.start = min(encloser.start, call.start)
                encloser.end = max(encloser.end, call.end)
    roots.sort(key=lambda c: c.start)
    return roots


def _most_overlapping(calls: list[Call], target: Call, eligible: set[int]) -> list[Call]:
    """The chain of eligible calls overlapping ``target`` most at each depth, outermost first."""
    best, best_overlap = None, 0.0
    for call in calls:
        overlap = min(call.end, target.end) - max(call.start, target.start)
        if id(call) in eligible and overlap > best_overlap:
            best, best_overlap = call, overlap
    if best is None:
        return []
    return [best, *_most_overlapping(best.children, target, eligible)]


def _claimer_path(roots: list[Call], token: str) -> list[Call]:
    """The calls from a root down to the one whose claims hold ``token`` (empty when none does)."""
    stack: list[tuple[Call, list[Call]]] = [(root, [root]) for root in reversed(roots)]
    while stack:
        call, path = stack.pop()
        if token in call.claims:
            call.claims.remove(token)
            return path
        stack.extend((child, [*path, child]) for child in reversed(call.children))
    return []


def prune(calls: list[Call], min_duration: float, max_calls: int) -> list[Call]:
    """Drop calls shorter than ``min_duration``, then keep the ``max_calls`` longest (parents before children
    on ties, so the kept set stays a tree). A dropped call's time goes to its parent's self time."""
    # A template render stays however short (a sample or its marks saw it), and so do the calls leading to it (a
    # short call dropped takes its subtree along): which template a page renders is news.
    calls = _drop(calls, lambda c: c.duration < min_duration and not any(x.template for x in c.walk()), None)
    everything = [(c, depth) for c, depth in _with_depth(calls)]
    if len(everything) > max_calls:
        ranked = sorted(everything, key=lambda item: (-item[0].duration, item[1], item[0].start))
        keep = {id(c) for c, _ in ranked[:max_calls]}
        calls = _drop(calls, lambda c: id(c) not in keep, None)
    return calls


def _with_depth(calls: list[Call], depth: int = 0) -> Iterable[tuple[Call, int]]:
    for call in calls:
        yield call, depth
        yield from _with_depth(call.children, depth + 1)


def _drop(calls: list[Call], doomed: Callable[[Call], bool], parent: Call | None) -> list[Call]:
    kept: list[Call] = []
    orphans: list[tuple[Call, list[str]]] = []
    for call in calls:
        if doomed(call):
            dropped = list(call.walk())
            claims = [claim for c in dropped for claim in c.claims]
            if parent is not None:
                parent.self_time += call.time
                parent.await_time += sum(c.await_time for c in dropped)
                parent.wait_time += sum(c.wait_time for c in dropped)
                parent.queue_time += sum(c.queue_time for c in dropped)
                parent.loop_wait_time += sum(c.loop_wait_time for c in dropped)
                parent.claims.extend(claims)
            elif claims:
                orphans.append((call, claims))
        else:
            call.children = _drop(call.children, doomed, call)
            kept.append(call)
    # A dropped top-level call has no caller to hand its claims to (a mark's stack seen between samples of another
    # stack makes one of no time): a kept top-level call takes them (the same function seen again if there is one,
    # the nearest in time), and ``cover_claims`` stretches it over the spans, rather than no call claiming them.
    for call, claims in orphans if kept else ():
        nearest = min(
            kept, key=lambda k: (k.identifier != call.identifier, max(k.start - call.end, call.start - k.end, 0.0))
        )
        nearest.claims.extend(claims)
    return kept


def count(calls: list[Call]) -> int:
    return sum(1 for root in calls for _ in root.walk())
