"""Pure pipeline stages: frame records -> timeline call tree -> collapse library frames -> prune.

A ``Call`` is one contiguous run of samples in which a function was on the stack, so the tree is a
timeline (repeated calls stay separate) and nested calls nest in time. Times are seconds on the
sampler's clock; the span emitter maps them to epoch nanoseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from pyinstrument.frame_ops import FrameRecordType

from pystrument._frames import (
    AWAIT,
    GC_FILE,
    OUT_OF_CONTEXT,
    WAIT,
    call_key,
    is_library_path,
    qualified_name,
    split_identifier,
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
    samples: int = 0
    lane: str = ""
    children: list[Call] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.end - self.start

    def walk(self) -> Iterable[Call]:
        yield self
        for child in self.children:
            yield from child.walk()


# Frame info -> (call key, name, file, line, library) for the default library test: the same frames (the
# framework's, the app's) come back in every request, so the span worker parses each once.
_parsed: dict[str, tuple[str, str, str, int, bool]] = {}
_PARSED_LIMIT = 50_000


def _parse(frame_info: str, is_library: Callable[[str], bool]) -> tuple[str, str, str, int, bool]:
    parsed = _parsed.get(frame_info) if is_library is is_library_path else None
    if parsed is None:
        function, file, line, class_name = split_identifier(frame_info)
        library = file != GC_FILE and is_library(file)
        parsed = (call_key(frame_info), qualified_name(function, class_name), file, line, library)
        if is_library is is_library_path:
            if len(_parsed) >= _PARSED_LIMIT:
                _parsed.clear()
            _parsed[frame_info] = parsed
    return parsed


def new_call(frame_info: str, start: float, lane: str, is_library: Callable[[str], bool] = is_library_path) -> Call:
    identifier, name, file, line, library = _parse(frame_info, is_library)
    return Call(
        identifier=identifier, name=name, file=file, line=line, library=library, start=start, end=start, lane=lane
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
        marker = key(stack[-1]) if stack else None
        if marker not in (AWAIT, OUT_OF_CONTEXT, WAIT):
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
        counted = marker != WAIT  # a wait record is the first part of a sample whose run part follows
        for call in open_calls:
            call.end = t
            call.time += dt
            if counted:
                call.samples += 1
        if open_calls:
            open_calls[-1].self_time += dt
            if marker == WAIT:
                open_calls[-1].wait_time += dt
            elif marker is not None:
                open_calls[-1].await_time += dt
    return roots


def collapse_library(calls: list[Call]) -> list[Call]:
    """A chain of library calls becomes one call named after the first library function entered.

    Library calls below it are merged into it (their time becomes its self time); application calls
    below the chain (callbacks, views called by a framework) stay as its children. Mutates and returns.
    """
    for call in calls:
        if call.library:
            call.children = _absorb_library_children(call)
        else:
            call.children = collapse_library(call.children)
    return calls


def _absorb_library_children(owner: Call) -> list[Call]:
    kept: list[Call] = []
    for child in owner.children:
        if child.library:
            # Absorb the child's own library descendants first, so their time reaches the owner through it.
            kept.extend(_absorb_library_children(child))
            owner.self_time += child.self_time
            owner.await_time += child.await_time
            owner.wait_time += child.wait_time
        else:
            child.children = collapse_library(child.children)
            kept.append(child)
    return kept


def attach_lanes(main: list[Call], others: list[Call]) -> list[Call]:
    """Nest calls from other lanes (worker threads, child tasks) under the main-lane call that overlaps them most,
    descending while a child overlaps them too (the call that handed the work off and waited), else at the top.
    The enclosing calls are stretched to cover them; the encloser's self time no longer counts the nested time."""
    roots = list(main)
    eligible = {id(c) for root in main for c in root.walk()}
    for call in sorted(others, key=lambda c: c.start):
        path = _most_overlapping(roots, call, eligible)
        if not path:
            roots.append(call)
            continue
        parent = path[-1]
        parent.children.append(call)
        parent.children.sort(key=lambda c: c.start)
        parent.self_time = max(0.0, parent.self_time - call.time)
        parent.await_time = max(0.0, parent.await_time - call.time)
        parent.wait_time = max(0.0, parent.wait_time - call.time)
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


def prune(calls: list[Call], min_duration: float, max_calls: int) -> list[Call]:
    """Drop calls shorter than ``min_duration``, then keep the ``max_calls`` longest (parents before children
    on ties, so the kept set stays a tree). A dropped call's time goes to its parent's self time."""
    calls = _drop(calls, lambda c: c.duration < min_duration, None)
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
    for call in calls:
        if doomed(call):
            if parent is not None:
                parent.self_time += call.time
                parent.wait_time += sum(c.wait_time for c in call.walk())
        else:
            call.children = _drop(call.children, doomed, call)
            kept.append(call)
    return kept


def count(calls: list[Call]) -> int:
    return sum(1 for root in calls for _ in root.walk())
