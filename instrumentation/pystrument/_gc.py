"""Garbage-collection pauses: recorded process-wide, shown in the requests they stopped.

A collection holds the GIL from start to end, so every thread that needs it stops, and so does the sampler: a
full collection of a ~100k-object heap takes ~100 ms on a small machine, and the requests running meanwhile get
no samples for that long. Without a word about it, that time would land on whatever function the next sample
caught. ``gc.callbacks`` report each collection's start and end; pauses of at least ``MIN_PAUSE`` are kept (a
bounded ring; the young generation's collections take microseconds and are not kept).

Each request then carries the pauses that overlapped it (``pystrument.gc.pause_ms``,
``pystrument.gc.collections``), and its timeline shows each pause as a call of its own, ``garbage collection
(generation N)``, placed where the pause happened, below the calls that were on the stack on both sides of it.
The callback costs about a microsecond per collection; a request of the benchmark app triggers 0.01–0.15 of them.
"""

from __future__ import annotations

import atexit
import collections
import gc
import sys
import threading
import time
import types
from collections.abc import Callable, Sequence
from threading import get_ident
from typing import Any

from pyinstrument.frame_ops import FrameRecordType

from pystrument._frames import AWAIT, GC_FILE, MARK, OUT_OF_CONTEXT, QUEUED, READY, WAIT, RunLength, call_key
from pystrument._safety import log_once

#: Shortest pause kept, in seconds.
MIN_PAUSE = 0.001
#: Pauses kept (the most recent): at one full collection per second, over four minutes of them.
KEEP = 256

Pause = tuple[float, float, int]  # (start, end, generation) on the perf_counter clock


def pause_frame(generation: int, start: float = 0.0, length: float = 0.0) -> str:
    """The pyinstrument frame info a pause of ``generation`` shows as: each pause a call of its own (its start as the
    call site), carrying its length (``p`` + microseconds), so that two pauses in a row never merge into one call."""
    return (
        f"garbage collection (generation {generation})\x00{GC_FILE}\x000"
        f"\x01s{round(start * 1e6)}\x01{PAUSE_MARKER}{round(length * 1e6)}"
    )


#: Attribute marker of a pause frame's length in microseconds.
PAUSE_MARKER = "p"


def pause_length(frame_info: str) -> float:
    """The length in seconds a pause frame carries (0 when it carries none)."""
    for attribute in frame_info.split("\x01")[1:]:
        if attribute.startswith(PAUSE_MARKER):
            try:
                return int(attribute[1:]) / 1e6
            except ValueError:
                return 0.0
    return 0.0


class GcPauses:
    """Records garbage-collection pauses through ``gc.callbacks`` (installed once per process).

    A pause's end is the earlier of the ``stop`` callback and the first time another thread was seen running after
    the start (:meth:`observe`): the callback is Python code, and on entering it the collecting thread may hand the
    GIL to threads that waited through the whole collection, so its clock may read tens of milliseconds late.
    Python code run during the collection (finalizers) may let other threads run too, which then shortens the pause.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter, keep: int = KEEP) -> None:
        self.clock = clock
        self.pauses: collections.deque[Pause] = collections.deque(maxlen=keep)
        #: End of the latest pause kept (0.0: none), so a request can tell in O(1) that none overlapped it.
        self.last_end = 0.0
        #: Start of the collection under way (0.0: none) and the thread running it.
        self.open_start = 0.0
        self._thread = 0
        self._seen = 0.0
        #: Called with (the frame the collection interrupted, time) at the start and end of a full collection, to
        #: sample the request of the collecting thread there (set by ``_recording``): the pause's exact place.
        self.sample: Callable[[types.FrameType, float], None] | None = None
        self._lock = threading.Lock()
        self._installed = False

    def install(self) -> None:
        with self._lock:
            if not self._installed:
                gc.callbacks.append(self._callback)
                self._installed = True
                atexit.register(self.uninstall)  # the collections of interpreter shutdown are no request's

    def uninstall(self) -> None:
        with self._lock:
            if self._installed:
                gc.callbacks.remove(self._callback)
                self._installed = False
                atexit.unregister(self.uninstall)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        # The collector is not re-entrant: one start/stop pair at a time. An exception here would be printed by the
        # collector on the host's stderr: none escapes.
        try:
            if phase == "start":
                self._seen = 0.0
                self._thread = get_ident()
                self.open_start = now = self.clock()
                if info.get("generation") == 2:
                    self._sample(now)
                return
            end = self.clock()
            start, seen = self.open_start, self._seen
            self.open_start = 0.0
            if info.get("generation") == 2:
                self._sample(end)
            if seen and seen < end:
                end = seen
            if end - start >= MIN_PAUSE:
                self.pauses.append((start, end, info.get("generation", 2)))
                self.last_end = end
        except Exception:
            log_once("gc.callback", "pystrument: recording a garbage collection failed; carrying on")

    def _sample(self, now: float) -> None:
        frame = sys._getframe(1).f_back  # the Python code the collection interrupted (none from C, at exit)
        if self.sample is not None and frame is not None:
            self.sample(frame, now)

    @property
    def collecting_thread(self) -> int:
        """The thread running the collection under way (meaningful while ``open_start`` is set)."""
        return self._thread

    def observe(self, now: float) -> None:
        """Called by a thread that runs Python code at ``now``: a collection under way in another thread has ended
        by then (its thread has yet to run the stop callback)."""
        if self.open_start and not self._seen and get_ident() != self._thread and now > self.open_start:
            self._seen = now

    def between(self, start: float, end: float) -> list[Pause]:
        """The pauses overlapping [start, end], oldest first; one under way counts as ended by ``end``."""
        found = [p for p in tuple(self.pauses) if p[1] > start and p[0] < end] if self.last_end > start else []
        open_start = self.open_start
        if open_start and open_start < end and get_ident() != self._thread:
            self.observe(end)
            found.append((open_start, end, 2))
        return found


gc_pauses = GcPauses()


def paused(pauses: Sequence[Pause], start: float, end: float) -> float:
    """Seconds of ``pauses`` inside [start, end]."""
    return sum(max(0.0, min(b, end) - max(a, start)) for a, b, _ in pauses)


def with_pauses(
    records: Sequence[FrameRecordType], start: float, end: float | None, pauses: Sequence[Pause]
) -> list[FrameRecordType]:
    """``records`` (timed from ``start``; each record's time ends at the record) with every pause that falls between
    two samples cut out as a record of its own: the previous sample's stack runs up to the pause, the pause sits
    below the frames both samples share, and the later sample's stack takes the rest. A record that stands for a run
    of ticks (``RunLength``: every tick saw the same stack, a wait awaited or blocked in) keeps its own stack on both
    sides of the pause, its ticks shared between them by time: the stack before the run ended where the run began.
    A pause after the last sample (up to ``end``, the lane's end) sits below the last sample's stack."""
    if not pauses:
        return list(records)
    if not records:  # no sample at all (the pause took most of the request): the pauses alone, at the top
        records = [([], 0.0)]
    out: list[FrameRecordType] = []
    t = start
    previous: list[str] | None = None
    for stack, dt in records:
        t0, t1 = t, t + dt
        t = t1
        inside = [((max(a, t0), min(b, t1), g), (a, b, g)) for a, b, g in pauses if b > t0 and a < t1]
        if not inside:
            out.append((stack, dt))
            previous = stack
            continue
        run = isinstance(stack, RunLength)
        before = stack if run else plain(previous if previous is not None else stack)
        shared = _shared(before, stack)
        n = ticks = stack.n if isinstance(stack, RunLength) else 0
        cursor = t0
        for (a, b, generation), (pa, pb, _) in inside:
            if a > cursor:
                if run:  # the ticks that fell before the pause
                    k = min(ticks, round(n * (a - cursor) / dt)) if dt > 0 else 0
                    ticks -= k
                    out.append((RunLength(stack, k) if k != 1 else list(stack), a - cursor))
                else:
                    out.append((before, a - cursor))
            out.append(([*shared, pause_frame(generation, pa, pb - pa)], b - a))
            cursor = b
        if t1 > cursor or (stack and stack[-1].startswith(MARK)):  # a mark's claim survives a pause over it
            rest = (RunLength(stack, ticks) if ticks != 1 else list(stack)) if run else stack
            out.append((rest, max(0.0, t1 - cursor)))
        previous = stack
    if end is not None and previous is not None:
        cursor = t
        previous = plain(previous)
        for pa, pb, generation in pauses:
            a, b = max(pa, cursor), min(pb, end)
            if b - a <= 0:
                continue
            if a > cursor:
                out.append((previous, a - cursor))
            out.append(([*_shared(previous, previous), pause_frame(generation, pa, pb - pa)], b - a))
            cursor = b
    return out


def unmarked(stack: list[str]) -> list[str]:
    """``stack`` without a mark's leaf: a mark's claim is made once, by the mark's own record."""
    return stack[:-1] if stack and stack[-1].startswith(MARK) else stack


def plain(stack: list[str]) -> list[str]:
    """``stack`` without a mark's leaf, as a record of one sample: a stack standing for a run of samples
    (``RunLength``) counts them once, in its own record, not again in a piece of time cut off for a pause."""
    stack = unmarked(stack)
    return list(stack) if stack.__class__ is RunLength else stack


def _shared(a: list[str], b: list[str]) -> list[str]:
    """The frames two stacks share from the root, compared as the timeline compares calls (a frame's current line
    differs between samples); markers such as ``[await]`` excluded."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if (
            x in (AWAIT, OUT_OF_CONTEXT, WAIT, READY, QUEUED)
            or x.startswith(MARK)
            or (x != y and call_key(x) != call_key(y))
        ):
            break
        n += 1
    return list(a[:n])
