"""Lanes: the lines of execution one request owns (its thread, its task, worker calls, child tasks).

The default sampler asks each open lane for the request's part of the current stack; a lane turns
its timed samples into pyinstrument frame records ``(stack, seconds since the previous sample)``.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
import os
import sys
import threading
import time
import types
from collections.abc import Sequence
from typing import Any

from pyinstrument.frame_ops import FrameRecordType

from pystrument._frames import (
    ANCHOR_DEPTH,
    AWAIT,
    IDENTIFIER_SEP,
    MARK,
    QUEUED,
    READY,
    WAIT,
    MarkMemo,
    RunLength,
    anchor_ids,
    await_chain,
    coroutine_frames,
    eager_chain,
    frame_chain,
    is_library_info,
    is_running,
    library_package,
    mark_stack,
    stack_below,
)

try:
    from pystrument import _native
except ImportError:  # built without a C compiler, or not on Linux: the sampler ticks in Python only
    _native = None  # type: ignore[assignment]

#: Which request owns which task (the registry's; here so that a lane can tell its request's tasks from others').
task_owners: dict[Any, object] = {}
#: asyncio's running task per loop (read from the sampler thread), where the interpreter keeps such a dict.
_current_tasks: dict[Any, Any] | None = getattr(asyncio.tasks, "_current_tasks", None)
#: Samples kept per lane; a request running longer keeps its first samples (about 8 minutes at 5 ms).
MAX_SAMPLES = 100_000
#: Marks kept per lane (two per child span): a request making more child spans keeps the first ones' places.
MAX_MARKS = 20_000
#: A sample interval in which a thread ran less than this share of the time is split into run and wait parts.
WAIT_MIN_SHARE = 0.1

Stack = tuple[str, ...]


def thread_cpu_clock(thread_id: int) -> int:
    """The CPU-time clock of another thread of this process (Linux), for ``time.clock_gettime``; 0 when there is none.
    Made from the kernel's thread id (as glibc's ``pthread_getcpuclockid`` does), which the kernel checks, rather
    than from the ``pthread_t``, which would point into freed memory once the thread is gone."""
    if sys.platform != "linux":
        return 0
    thread = threading._active.get(thread_id)  # type: ignore[attr-defined]
    native = getattr(thread, "native_id", None)
    return ((~native) << 3) | 6 if isinstance(native, int) and native > 0 else 0


#: Open ``/proc/self/task/<tid>/schedstat`` files by kernel thread id (one ``pread`` reads a thread's CPU time and its
#: run-queue delay); -1 where there is none. Entries of threads that are gone are dropped when the table grows.
_schedstat: dict[int, int] = {}
SCHEDSTAT_KEEP = 256


def _forget_schedstat() -> None:
    for fd in _schedstat.values():
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
    _schedstat.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_schedstat)


def schedstat_fd(thread_id: int) -> int:
    """An open schedstat file of a thread of this process (Linux), -1 when there is none."""
    if sys.platform != "linux":
        return -1
    thread = threading._active.get(thread_id)  # type: ignore[attr-defined]
    native = getattr(thread, "native_id", None)
    if not isinstance(native, int) or native <= 0:
        return -1
    fd = _schedstat.get(native)
    if fd is not None:
        return fd
    if len(_schedstat) >= SCHEDSTAT_KEEP:
        alive = {getattr(t, "native_id", None) for t in threading.enumerate()}
        for gone in [n for n in _schedstat if n not in alive]:
            old = _schedstat.pop(gone)
            if old >= 0:
                with contextlib.suppress(OSError):
                    os.close(old)
    try:
        fd = os.open(f"/proc/self/task/{native}/schedstat", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        fd = -1
    _schedstat[native] = fd
    return fd


def queue_baseline(thread_id: int) -> tuple[int, float] | None:
    """A thread's run-queue baseline at a request's start, read on the request thread where the sampler has opened
    the thread's schedstat file before (a thread's later requests): (the file, seconds ready to run without a core so
    far), or None. Without it the baseline waits for the first sample, and the queue of the interval before it, long
    when the sampler is starved, would be taken for a wait. A lookup only: opening a file gives the GIL up, which only
    the sampler thread may do."""
    if _pread is False or _pread is None:
        return None
    thread = threading._active.get(thread_id)  # type: ignore[attr-defined]
    fd = _schedstat.get(getattr(thread, "native_id", None) or 0)
    if fd is None or fd < 0:
        return None
    times = read_schedstat(fd)
    return None if times is None else (fd, times[1])


def _libc_pread() -> Any:
    """libc's ``pread`` called with the GIL held (``ctypes.PyDLL``): ``os.pread`` gives the GIL up, and the sampler
    could then wait a switch interval to get it back from a thread running Python code."""
    try:
        import ctypes

        pread = ctypes.PyDLL(None).pread
        pread.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long]
        pread.restype = ctypes.c_ssize_t
        return pread, ctypes.create_string_buffer(96)
    except (ImportError, OSError, AttributeError):
        return None


#: libc's pread and a buffer (False: not looked up yet; None: unavailable; True: the compiled helper's reader).
_pread: Any = _native is not None


def read_schedstat(fd: int) -> tuple[float, float, int] | None:
    """(CPU seconds, seconds ready to run without a core, times it was put on a core) of the thread; None when it is
    gone or unreadable. The buffer is shared by the sampler thread's reads; any other thread reads into its own."""
    global _pread
    if _pread is True:
        return _native.schedstat(fd)
    if _pread is False:
        _pread = _libc_pread()
    if _pread is None:
        return None
    pread, buffer = _pread
    if threading.get_ident() != sampler_thread[0]:
        import ctypes

        buffer = ctypes.create_string_buffer(96)
    n = pread(fd, buffer, 96, 0)
    if n <= 0:
        return None
    fields = buffer.raw[:n].split()
    try:
        return int(fields[0]) / 1e9, int(fields[1]) / 1e9, int(fields[2])
    except (ValueError, IndexError):
        return None


#: The sampler thread's id (``_sampler.py`` sets it): the one thread that reads schedstat files.
sampler_thread = [0]


class ThreadClock:
    """Reads a thread's CPU clock for its lane; where the clock says the thread did not run, also the time it was
    ready to run but had no core (the kernel's run-queue delay, from schedstat), so that a busy machine's queue is
    not taken for a wait in the code. The CPU time comes from the clock, which is exact; schedstat's lags by up to a
    scheduler tick for a running thread."""

    thread_id = 0
    _clock: int | None = None
    _sched = -2  # not looked up yet
    #: The thread's run-queue delay at the previous schedstat reading (None: not read yet).
    delay_last: float | None = None
    #: The CPU clock's last reading, in nanoseconds as read.
    clock_ns = 0

    def _read_clock(self) -> float | None:
        clock = self._clock
        if clock is None:
            clock = self._clock = thread_cpu_clock(self.thread_id)
            if self.delay_last is None:
                self._read_queue()  # the run-queue baseline, once (unless the lane's start took it)
        if clock:
            try:
                ns = self.clock_ns = time.clock_gettime_ns(clock)
            except OSError:  # the thread is gone
                self._clock = 0
            else:
                return ns / 1e9
        return None

    def _read_queue(self) -> float:
        """Seconds the thread was ready to run without a core since the previous call; -1 when not known. The file
        is opened and libc's ``pread`` looked up on the sampler thread only: opening a file and importing give up
        the GIL, which a sample taken by a collecting thread as a garbage collection starts must not (another
        thread would run during the pause). Reading an open file keeps the GIL (``PyDLL``), so any thread may: the
        request's end reads it too, or a sampler starved for the whole last interval would leave that interval's
        queue to be taken for a wait."""
        if threading.get_ident() != sampler_thread[0] and (self._sched < 0 or _pread is False):
            return -1.0
        fd = self._sched
        if fd == -2:
            fd = self._sched = schedstat_fd(self.thread_id)
        if fd < 0:
            return -1.0
        times = read_schedstat(fd)
        if times is None:
            self._sched = -1
            return -1.0
        delay = times[1]
        last, self.delay_last = self.delay_last, delay
        return max(0.0, delay - last) if last is not None else -1.0

    def _queued(self, dt: float, ran: float) -> float:
        """The run-queue part of a sample interval ``dt`` in which the thread ran ``ran`` seconds: read only when the
        thread ran less than it could (a wait to tell from a queue), else 0."""
        if ran < 0.0 or dt - ran <= WAIT_MIN_SHARE * dt:
            return 0.0
        return self._read_queue()


def thread_name(thread_id: int) -> str:
    """The name of a live thread by id (looked up off the request thread, for sessions)."""
    for thread in threading.enumerate():
        if thread.ident == thread_id:
            return thread.name
    return f"Thread-{thread_id}"


class Lane:
    """Base lane: a named, timed list of samples. Attributes that rarely change from their default are class
    attributes, written on the instance only when they change (a request's main lane is made on its thread)."""

    kind = "lane"
    end: float | None = None
    main = False
    worker = False
    bridge = False
    # Time the lane spent running rather than awaiting (meaningful for tasks: their share of the loop).
    busy = 0.0
    #: Time the lane's task was ready to run while another task held the loop.
    ready = 0.0
    #: CPU seconds the lane's thread ran in each sample's interval, aligned with ``samples`` (-1: not known); None
    #: when not measured (tasks share their thread's clock).
    cpu: list[float] | None = None
    #: Seconds of each sample's interval in which the lane's thread was ready to run without a core (run-queue
    #: delay), aligned with ``cpu`` when measured (0: none seen or not looked at; -1: not known).
    queue: list[float] | None = None
    #: Stacks seen by the request's own code at an instant: (time, stack, claim) (see ``mark``).
    marks: list[tuple[float, Stack, str]] | None = None
    #: The claim a hand-off mark makes for this lane (set by whoever hands the lane its work).
    token = ""
    #: The request's sample interval: how many samples a run of unchanged ticks stands for (``ticks``).
    interval = 0.005
    #: Run-length samples: sample index -> how many samples it stands for when not one (0: only the wait of the stack
    #: before it). A tick that finds the lane unchanged extends the previous sample instead of adding one.
    counts: dict[int, int] | None = None
    #: Samples the run-length ones stand for beyond one each (``sample_count``).
    merged = 0
    #: Whether the last tick found the lane unchanged (blocked, or awaiting the same future).
    still = False
    #: Whether the sampler may slow down while this lane is still: the lane places the end of a wait the slower ticks
    #: straddle (``ThreadLane._flush``). A task's does not (its await ends at the last tick that saw it awaiting).
    stretchable = False
    #: The frames of the lane's previous mark (``mark_stack``), made at the first mark.
    _memo: MarkMemo | None = None

    def __init__(self, name: str, start: float, *, main: bool = False, worker: bool = False) -> None:
        self.name = name
        self.start = start
        self._last_t = start
        self.samples: list[tuple[float, Stack]] = []
        if main:
            self.main = True
        if worker:
            self.worker = True

    @property
    def open(self) -> bool:
        return self.end is None

    def close(self, now: float) -> None:
        if self.end is None:
            self.end = now
        self._forget()

    def _forget(self) -> None:
        """Drop what ``capture`` keeps between samples."""

    @property
    def anchor_frames(self) -> list[types.FrameType]:
        """Frames that were on the lane's stack when it started (held while the lane lives)."""
        return getattr(self, "_anchor_frames", [])

    def record(self, now: float, stack: Stack) -> None:
        samples = self.samples
        if samples and stack is samples[-1][1]:  # unchanged (the same tuple: awaiting the same future): extend it
            i = len(samples) - 1
            n = ticks(now - samples[i][0], self.interval)
            counts = self.counts
            if counts is None:
                counts = self.counts = {}
            counts[i] = counts.get(i, 1) + n
            self.merged += n
            samples[i] = (now, stack)
            self.still = True
        else:
            self.still = False
            if len(samples) < MAX_SAMPLES:
                samples.append((now, stack))
        if not stack or (stack[-1] is not AWAIT and stack[-1] is not READY):
            self.busy += max(0.0, now - self._last_t)
        elif stack[-1] is READY:
            self.ready += max(0.0, now - self._last_t)
        self._last_t = now

    def sample_count(self) -> int:
        return len(self.samples) + self.merged

    def _add_queue(self, index: int, queued: float) -> None:
        """Add run-queue time to sample ``index`` (the list is made, and padded, only where there is some)."""
        if queued > 0.0:
            queue = self.queue
            if queue is None:
                queue = self.queue = []
            if len(queue) <= index:
                queue.extend([0.0] * (index + 1 - len(queue)))
            queue[index] += queued

    def busy_during(self, pauses: Sequence[tuple[float, float, int]]) -> float:
        """The part of ``busy`` that falls inside ``pauses`` (the intervals ``record`` counted as running)."""
        inside, previous = 0.0, self.start
        for t, stack in self.samples[:]:
            if not stack or (stack[-1] is not AWAIT and stack[-1] is not READY):
                inside += sum(max(0.0, min(b, t) - max(a, previous)) for a, b, _ in pauses)
            previous = t
        return inside

    def capture(self, frames: dict[int, types.FrameType]) -> Stack | None:
        """The request's part of this lane's stack now; ``()`` if outside the request, None if gone."""
        raise NotImplementedError

    def stack_at(self, frame: types.FrameType) -> Stack | None:
        """The request's part of the stack below ``frame``, a frame of the lane's own running code (called there)."""
        raise NotImplementedError

    def mark(self, now: float, stack: Stack, claim: str) -> None:
        """Record that ``stack`` was on the lane at ``now`` (seen by the lane's own code, so exact): the timeline holds
        its calls then, and the innermost one claims ``claim`` (a child span's id, a lane's token; "" for none)."""
        marks = self.marks
        if marks is None:
            marks = self.marks = []
        if len(marks) < MAX_MARKS:
            marks.append((now, stack, claim))

    def records(self) -> list[FrameRecordType]:
        """pyinstrument frame records of this lane's samples and marks up to its end. A mark splits the interval of
        the sample after it (each record's time ends at the record), its share of the thread's CPU time pro rata; its
        record ends in a ``MARK`` leaf. A worker lane's last stack runs on to the lane's end (its function returns
        just before the lane closes); other lanes stop at their last sample."""
        out: list[FrameRecordType] = []
        previous = self.start
        end = self.end if self.end is not None else float("inf")
        cpu = self.cpu
        queue = self.queue
        samples = self.samples[:]
        marks = sorted(self.marks, key=_first) if self.marks else ()
        weights: list[int] | None = None
        if self.counts:
            samples, cpu, queue, weights = _expand(samples, cpu, queue, self.counts, self.start, marks)
        m = 0
        last: Stack = ()  # the stack seen last (a sample's or a mark's)
        for i, (t, stack) in enumerate(samples):
            if t > end:
                break
            dt = max(0.0, t - previous)
            ran = cpu[i] if cpu is not None and i < len(cpu) else -1.0
            queued = queue[i] if queue is not None and i < len(queue) else 0.0
            if ran == WAIT_ONLY:  # the rest of a wait the run-length sample before it saw (ThreadLane._flush)
                # A mark inside it is placed at its time (not at the next sample's): the thread had resumed by then,
                # and what it ran from the mark on is the mark's stack.
                while m < len(marks) and marks[m][0] <= t:
                    at, mstack, claim = marks[m]
                    m += 1
                    if at > previous:
                        out.append(([*last, WAIT] if last else list(last), at - previous))
                    out.append(([*mstack, MARK + claim], 0.0))
                    last = mstack
                    previous = max(previous, at)
                if t > previous:
                    out.append(([*stack, WAIT], t - previous) if last is stack else (list(last), t - previous))
                previous = max(previous, t)
                continue
            while m < len(marks) and marks[m][0] <= t:
                # Up to the mark, what was seen last goes on; the mark itself is an instant (a record of no time).
                at, mstack, claim = marks[m]
                m += 1
                piece = max(0.0, at - previous)
                mran = ran * piece / dt if ran >= 0.0 and dt > 0 else -1.0
                mqueued = queued * piece / dt if queued > 0.0 and dt > 0 else 0.0
                if piece > 0:
                    _append(out, last, piece, mran, mqueued)
                out.append(([*mstack, MARK + claim], 0.0))
                last = mstack
                previous = max(previous, at)
                dt = max(0.0, t - previous)
                if ran >= 0.0:
                    ran = max(0.0, ran - mran)
                queued = max(0.0, queued - mqueued)
            _append(out, stack, dt, ran, queued, weights[i] if weights is not None else 1)
            previous, last = t, stack
        for at, mstack, claim in marks[m:]:
            if at > end:
                break
            if at > previous:
                out.append((list(last), at - previous))
            out.append(([*mstack, MARK + claim], 0.0))
            previous, last = max(previous, at), mstack
        if self.worker:
            out = self._worker_records(out, end, previous)
        return out

    def _worker_records(self, out: list[FrameRecordType], end: float, last: float) -> list[FrameRecordType]:
        """A worker lane brackets one function call: samples taken before it was entered or after it returned
        (empty stacks) carry no information, and the call runs from the lane's start to its end."""
        first = next((i for i, (stack, _) in enumerate(out) if stack), None)
        if first is None:
            return []
        kept = len(out) - next(i for i, (stack, _) in enumerate(reversed(out)) if stack)
        body = out[first:kept]
        body[0] = (body[0][0], body[0][1] + sum(dt for _, dt in out[:first]))
        tail = sum(dt for _, dt in out[kept:])
        if end != float("inf") and end > last:
            tail += end - last
        if tail > 0:
            stack = body[-1][0]
            body.append((stack[:-1] if stack[-1].startswith(MARK) else list(stack), tail))
        return body


def _first(mark: tuple[float, Stack, str]) -> float:
    return mark[0]


#: ``cpu`` value of a sample that stands for no sample of its own, only its stack's wait up to it.
WAIT_ONLY = -2.0


def ticks(dt: float, interval: float) -> int:
    """How many samples ``dt`` since the previous one stands for: one, unless the sampler slowed down (a tick more
    than 1.5 intervals after the previous one counts the intervals it spans)."""
    return 1 if dt < 1.5 * interval else round(dt / interval)


def _expand(
    samples: list[tuple[float, Stack]],
    cpu: list[float] | None,
    queue: list[float] | None,
    counts: dict[int, int],
    start: float,
    marks: Sequence[tuple[float, Stack, str]] = (),
) -> tuple[list[tuple[float, Stack]], list[float] | None, list[float] | None, list[int]]:
    """Run-length samples as the records need them, with how many samples each stands for: a run with no mark inside
    stays one sample standing for all of its ticks (its CPU and run-queue time together: split evenly, each tick
    would have been split the same way); one with a mark inside goes back to one sample per tick (times, CPU and
    run-queue time split evenly), so that the mark splits the tick it fell in, as if every tick had been recorded."""
    out: list[tuple[float, Stack]] = []
    out_cpu: list[float] | None = [] if cpu is not None else None
    out_queue: list[float] | None = [] if queue is not None else None
    weights: list[int] = []
    mark_times = [t for t, _, _ in marks]
    previous = start
    for i, (t, stack) in enumerate(samples):
        n = counts.get(i, 1)
        ran = cpu[i] if cpu is not None and i < len(cpu) else -1.0
        queued = queue[i] if queue is not None and i < len(queue) else 0.0
        if n == 1 or (n > 1 and not _marked_within(mark_times, previous, t)):
            out.append((t, stack))
            if out_cpu is not None:
                out_cpu.append(ran)
            if out_queue is not None:
                out_queue.append(queued)
            weights.append(n)
        elif n == 0:
            out.append((t, stack))
            if out_cpu is not None:
                out_cpu.append(WAIT_ONLY)
            if out_queue is not None:
                out_queue.append(0.0)
            weights.append(1)
        else:
            step = max(0.0, t - previous) / n
            share = ran / n if ran >= 0.0 else -1.0
            for k in range(1, n + 1):
                out.append((t if k == n else previous + k * step, stack))
                if out_cpu is not None:
                    out_cpu.append(share)
                if out_queue is not None:
                    out_queue.append(queued / n if queued > 0.0 else 0.0)
                weights.append(1)
        previous = max(previous, t)
    return out, out_cpu, out_queue, weights


def _marked_within(times: list[float], after: float, until: float) -> bool:
    """Whether a mark time (``times``, sorted) falls in (``after``, ``until``]."""
    if not times:
        return False
    j = bisect.bisect_right(times, after)
    return j < len(times) and times[j] <= until


def _append(out: list[FrameRecordType], stack: Stack, dt: float, ran: float, queued: float = 0.0, n: int = 1) -> None:
    """One record of ``dt`` seconds, split when the thread ran less than it could: the part it was ready to run
    without a core (``queued``, the run-queue delay), the part it waited, and the part it ran (the record that counts
    as the sample, or as ``n`` samples)."""
    if ran >= 0.0 and stack and dt - ran > WAIT_MIN_SHARE * dt:
        # The queue and the wait first: their records do not count as samples (``build_calls``), the run part does.
        queued = min(queued, dt - ran) if queued > WAIT_MIN_SHARE * dt else 0.0
        # A run's parts saw its stack throughout (a pause cut into them keeps it: ``with_pauses``); they count no
        # sample (n=0).
        if queued > 0.0:
            out.append((RunLength([*stack, QUEUED], 0) if n > 1 else [*stack, QUEUED], queued))
        wait = dt - ran - queued
        if wait > WAIT_MIN_SHARE * dt:
            out.append((RunLength([*stack, WAIT], 0) if n > 1 else [*stack, WAIT], wait))
            dt = ran
        else:
            dt -= queued
    out.append((list(stack) if n == 1 else RunLength(stack, n), dt))


#: Frame infos of the tracing machinery that starts a span (the OpenTelemetry API and SDK, the context managers
#: around it): left out of a child span's mark, which is taken inside it but belongs to its caller.
_machinery: dict[str, bool] = {}
_MACHINERY_PARTS = (f"{os.sep}opentelemetry{os.sep}", f"{os.sep}contextlib.py", f"{os.sep}functools.py")


def strip_machinery(stack: Stack, stdlib: bool = False) -> Stack:
    """``stack`` without the tracing machinery at its leaf end (and with ``stdlib``, the standard library's: the
    executor or task plumbing between the code that handed work off and pystrument's hook)."""
    n = len(stack)
    while n:
        info = stack[n - 1]
        found = _machinery.get(info)
        if found is None:
            parts = info.split(IDENTIFIER_SEP, 2)
            found = _machinery[info] = len(parts) > 1 and any(part in parts[1] for part in _MACHINERY_PARTS)
            if len(_machinery) > 50_000:
                _machinery.clear()
        if not found and not (stdlib and library_package(info.split(IDENTIFIER_SEP, 2)[1]) == "stdlib"):
            break
        n -= 1
    return stack if n == len(stack) else stack[:n]


class ThreadLane(ThreadClock, Lane):
    """A thread running the request synchronously (WSGI view, threadpool worker call). Each sample also reads the
    thread's CPU clock, so that the time it waited (in a C call, for a lock or the GIL) is told from the time it ran."""

    kind = "thread"
    stretchable = True
    _anchors: frozenset[int] | None = None
    _last: _LastStack | None = None
    #: The thread's CPU clock at the previous sample (set at the start by the request thread, which reads it anyway).
    cpu_last: float | None = None
    #: Set by ``capture``: the innermost frame is the previous tick's, at the same instruction (blocked in a call).
    _same_leaf = False
    #: A run of ticks that found the lane unchanged since its last sample: [time of the latest, samples it stands for,
    #: the thread's schedstat at the first (CPU seconds, times put on a core) or None]. Read once per run: a thread
    #: put on a core once since then was blocked through the run, and ran no CPU time in it.
    _run: list[Any] | None = None
    #: The CPU clock (ns) read right after the lane's stack was last taken, on the sampler thread (``watch``).
    watch_ns: int | None = None
    #: (the sampler's compiled helper, its call, this lane's place in it) while it may watch the lane (``progress``).
    watch_slot: tuple[Any, int, int] | None = None
    #: When the thread, blocked through the run, first called or returned again (its resume hook fired), and its CPU
    #: clock then: the run's end, exactly (``credit``).
    _fire: tuple[float, float] | None = None

    def __init__(
        self,
        name: str,
        start: float,
        thread_id: int,
        anchor: types.FrameType | None,
        *,
        main: bool = False,
        worker: bool = False,
        chain: list[types.FrameType] | None = None,
    ) -> None:
        # Lane.__init__, inlined.
        self.name = name
        self.start = self._last_t = start
        self.samples = []
        if main:
            self.main = True
        if worker:
            self.worker = True
        self.thread_id = thread_id
        # The anchors: the frame that called the SDK's hook and its callers, held so that their ids stay unique.
        # The nearest ones are taken now (a generator such as ``start_as_current_span`` loses its link to its caller
        # once suspended); the sampler adds the rest at the first sample (CPython links a finished frame to its
        # caller's frame object), so the request thread does not create a frame object for every caller.
        # ``chain``: taken so already (``eager_chain`` of the frame that started the request).
        self._anchor_frames = chain if chain is not None else eager_chain(anchor)  # type: ignore[arg-type]

    def _anchor_ids(self) -> frozenset[int]:
        anchors = self._anchors
        if anchors is None:
            chain = self._anchor_frames
            if chain:
                chain = self._anchor_frames = chain + frame_chain(chain[-1].f_back, ANCHOR_DEPTH - len(chain))
            anchors = self._anchors = anchor_ids(chain)
        return anchors

    def stack_at(self, frame: types.FrameType) -> Stack | None:
        anchors = self._anchor_ids()
        if not anchors:
            return None
        memo = self._memo
        if memo is None:
            memo = self._memo = MarkMemo()
        return mark_stack(frame, anchors, None, memo)

    def capture(self, frames: dict[int, types.FrameType]) -> Stack | None:
        leaf = frames.get(self.thread_id)
        anchors = self._anchor_ids()
        if leaf is None or not anchors:
            return None
        last = self._last
        if last is None:
            last = self._last = _LastStack()
        else:
            cached = last.get(leaf)
            if cached is not None:
                lasti = leaf.f_lasti
                self._same_leaf = lasti == last.lasti
                last.lasti = lasti
                return cached
        self._same_leaf = False
        stack = stack_below(leaf, anchors, None, self.thread_id)
        last.lasti = leaf.f_lasti
        return last.put(leaf, stack if stack is not None else ())

    def close(self, now: float) -> None:
        slot = self.watch_slot
        if slot is not None and self.end is None:
            # The compiled helper may be waiting on this thread still: its ticks so far are the lane's (on the
            # request thread: its request ended first).
            native, call, i = slot
            found = native.progress(call, i)
            if found is not None:
                self.credit(found[1], found[2], native.fire(call, i))
        if self._run is not None:
            self._flush(now)
        if self.end is None:
            self.end = now
        self._last = None
        self._memo = None
        # The anchors (the callers' frames, held so that their ids stay unique while the lane is sampled) go now, on
        # the lane's own thread: held until the spans were built, each of those frames was copied into its frame
        # object when it returned, and freed, with its locals (the request's objects), on the span worker.
        self._anchor_frames = []
        self._anchors = frozenset()

    def sample_count(self) -> int:
        run = self._run
        return len(self.samples) + self.merged + (run[1] if run is not None else 0)

    def record(self, now: float, stack: Stack) -> None:
        samples = self.samples
        if samples and now < samples[-1][0]:
            return  # taken before a sample the collecting thread recorded meanwhile (``_gc.py``)
        if self._same_leaf and samples and stack is samples[-1][1]:
            # Blocked in the same call as at the previous tick: nothing new to record. The run is written out, its time
            # split into wait and run by the clock, when the stack next changes.
            run = self._run
            if run is None:
                self._run = [now, ticks(now - samples[-1][0], self.interval), self._blocked_stat()]
            else:
                run[1] += ticks(now - run[0], self.interval)
                run[0] = now
            self._fire = None  # it called or returned, and stands in the same call again (a loop of reads)
            self.still = True
            # The compiled helper's baseline (``watch``): the thread may have run since the last one (blocked again in
            # the same call: a loop of reads).
            clock = self._clock
            if _native is not None:
                try:
                    self.watch_ns = time.clock_gettime_ns(clock) if clock else None
                except OSError:  # the thread is gone
                    self.watch_ns = None
            return
        self.still = False
        if self._run is not None:
            self._flush(now)
        if len(samples) >= MAX_SAMPLES:
            return
        reading = self._read_clock()
        ran = -1.0
        if reading is not None:
            last = self.cpu_last
            if last is not None:
                ran = max(0.0, reading - last)
            self.cpu_last = reading
        self.watch_ns = self.clock_ns if reading is not None else None
        cpu = self.cpu
        if cpu is None:
            cpu = self.cpu = []
        dt = now - (samples[-1][0] if samples else self.start)
        samples.append((now, stack))
        cpu.append(ran)
        self._add_queue(len(samples) - 1, self._queued(dt, ran))

    def watch(self) -> tuple[int, int, int] | None:
        """What the sampler's compiled helper watches on this lane while the thread has not run (``_native.c``): its
        CPU clock, the clock's reading (ns) right after the lane's stack was last taken, and its schedstat file (-1:
        none). None when there is no such reading: the Python sampler takes the next tick. On the sampler thread."""
        ns = self.watch_ns
        if ns is None or not self._clock:
            return None
        fd = self._sched
        if fd == -2:
            fd = self._sched = schedstat_fd(self.thread_id)
        return self._clock, ns, fd

    def credit(self, seen: float, stat: tuple[float, int] | None, fire: tuple[float, float] | None = None) -> None:
        """The compiled helper found the thread off its core from the lane's last sample up to the tick ``seen`` (its
        schedstat ``stat`` read at the first such tick): its stack held, as a run of unchanged ticks would say. Or,
        hooked (``_native.hook``), off Python code: ``fire`` says when it first called or returned again, and its CPU
        clock then (the end of the wait, exactly)."""
        samples = self.samples
        if not samples or seen <= samples[-1][0] or self.end is not None:
            return
        run = self._run
        if run is None:
            self._run = [seen, ticks(seen - samples[-1][0], self.interval), stat]
        elif seen > run[0]:
            run[1] += ticks(seen - run[0], self.interval)
            run[0] = seen
        if fire is not None and fire[0] > seen:
            self._fire = fire
        self.still = True

    def _blocked_stat(self) -> tuple[float, int] | None:
        """The blocked thread's (CPU seconds, times put on a core) from schedstat, exact while it is off its core; on
        the sampler thread only (None elsewhere, or when there is no schedstat)."""
        if threading.get_ident() != sampler_thread[0]:
            return None
        fd = self._sched
        if fd == -2:
            fd = self._sched = schedstat_fd(self.thread_id)
        if fd < 0:
            return None
        times = read_schedstat(fd)
        return (times[0], times[2]) if times is not None else None

    def _resumed_at(self, now: float, seen: float, after: float, stat: tuple[float, int] | None) -> float:
        """When the thread, blocked at the tick ``seen``, resumed (it ran ``after`` seconds of CPU since, up to
        ``now``). Asked on the thread itself (its lane closing: it runs now) and put on a core exactly once since
        ``seen`` (schedstat), it has run without a break since it woke: it resumed at ``now - after``. Otherwise
        (blocked again, preempted, waiting for the GIL, or no schedstat) somewhere in between: the middle, unbiased,
        off by at most half that span (one interval when the ticks were two apart)."""
        latest = now - after
        if stat is not None and self._sched >= 0 and threading.get_ident() == self.thread_id:
            times = read_schedstat(self._sched)
            if times is not None and times[2] - stat[1] == 1:
                return latest
        return seen + 0.5 * max(0.0, latest - seen)

    def _flush(self, now: float) -> None:
        """Write out the run of unchanged ticks before ``now`` (a changed stack's tick, or the lane's end): the last
        sample's stack held through the run. When the sampler had slowed down (more than an interval and a half since
        the run's last tick), the wait up to when the thread resumed is still the blocked stack's, not the next one's
        (``_resumed_at``; at the normal pace the next sample takes that interval, as without a run)."""
        run, self._run = self._run, None
        samples = self.samples
        if run is None or not samples or len(samples) >= MAX_SAMPLES - 1:
            return
        seen, n, stat = run
        stack = samples[-1][1]
        cpu = self.cpu
        if cpu is None:
            cpu = self.cpu = [-1.0] * len(samples)
        counts = self.counts
        if counts is None:
            counts = self.counts = {}
        reading = self._read_clock()
        last = self.cpu_last
        if reading is None or last is None:
            samples.append((seen, stack))
            cpu.append(-1.0)
            counts[len(samples) - 1] = n
            self.merged += n - 1
            return
        ran = max(0.0, reading - last)
        fire, self._fire = self._fire, None
        if fire is not None and seen < fire[0] <= now and fire[1] >= 0:
            # Hooked: the wait ended at its first call or return, and what ran since is the resumed code's.
            after = min(max(0.0, reading - fire[1]), ran)
            self._place(now, seen, stack, cpu, counts, reading, ran, after, fire[0], n, exact=True)
            return
        # What ran after the last unchanged tick (the resumed code): exactly, from the CPU time schedstat gave then.
        after = min(ran if stat is None else max(0.0, reading - stat[0]), max(0.0, now - seen))
        # It resumed after the last unchanged tick and at the latest ``after`` before now (less if it was preempted
        # or blocked again since, which only schedstat tells).
        resumed = self._resumed_at(now, seen, after, stat) if now - seen > 1.5 * self.interval else now
        self._place(now, seen, stack, cpu, counts, reading, ran, after, resumed, n)

    def _place(
        self,
        now: float,
        seen: float,
        stack: Stack,
        cpu: list[float],
        counts: dict[int, int],
        reading: float,
        ran: float,
        after: float,
        resumed: float,
        n: int,
        exact: bool = False,
    ) -> None:
        """Write the run (its last tick ``seen``, ``n`` samples) and, when the thread resumed well after ``seen``
        (always when ``exact``: a resume hook saw it), the wait's end at ``resumed``; ``after`` of the CPU time
        ``ran`` since the last sample was the resumed code's."""
        samples = self.samples
        dt = seen - samples[-1][0]
        samples.append((seen, stack))
        cpu.append(max(0.0, ran - after))  # anything more ran inside the blocked call itself (a long C computation)
        self._add_queue(len(samples) - 1, self._queued(dt, ran - after))
        counts[len(samples) - 1] = n
        self.merged += n - 1
        marks = self.marks
        if marks:  # the thread's own code marked its stack since: it had resumed by the first such mark
            first = min((t for t, _, _ in marks[-8:] if seen < t < now), default=None)
            if first is not None and first <= resumed:  # just before it: at its time the wait would follow the mark
                resumed = math.nextafter(first, seen)
        if (exact or now - seen > 1.5 * self.interval) and resumed > seen:  # slower ticks, or hooked: place it
            samples.append((resumed, stack))
            cpu.append(0.0)
            k = ticks(resumed - seen, self.interval) if resumed - seen >= 0.5 * self.interval else 0
            counts[len(samples) - 1] = k
            self.merged += k - 1
        self.cpu_last = reading - after

    def _forget(self) -> None:
        self._last = None
        self._memo = None
        self._run = None

    def release(self) -> None:
        self._forget()
        self._anchor_frames = []
        self._anchors = frozenset()


class TaskLane(ThreadClock, Lane):
    """An asyncio task: sampled from its thread's stack while it runs, from its await chain while it waits."""

    kind = "task"
    #: Whether a sample caught application code (not only the standard library and packages) in the task, running
    #: or awaiting: the request's code ran as a coroutine.
    ran_code = False
    #: Whether the thread CPU time of the worker running this task is measured already (not to count it twice).
    cpu_counted = False
    _checked: Stack | None = None

    def __init__(
        self,
        name: str,
        start: float,
        task: Any,
        thread_id: int,
        anchor: types.FrameType | None,
        *,
        main: bool = False,
        worker: bool = False,
    ) -> None:
        super().__init__(name, start, main=main, worker=worker)
        self.task = task
        self.thread_id = thread_id
        self._loop = task.get_loop()
        #: The request the lane belongs to (its tasks holding the loop are not a wait for it).
        self.owner: object = None
        self._coro = task.get_coro()
        self._root = getattr(self._coro, "cr_frame", None) or getattr(self._coro, "gi_frame", None)
        # The task's own frames at the start (below the loop machinery, whose frames are renewed every step); taken
        # now, since suspended coroutines lose their links to their callers.
        self._caller: types.FrameType | None = anchor
        self._anchor_frames = self._own_frames()
        self._anchors = anchor_ids(self._anchor_frames)
        self._last = _LastStack()
        self._waiter: object = None
        self._waiting: Stack | None = None
        self._ready: Stack | None = None
        self.cpu_last: float | None = None

    def record(self, now: float, stack: Stack) -> None:
        samples = self.samples
        before = len(samples)
        merges = bool(samples) and stack is samples[-1][1]
        ran = -1.0
        if stack and stack[-1] is not AWAIT and stack[-1] is not READY:
            # Running: the loop thread's CPU clock since this task's previous running sample tells the time its
            # thread ran from the time it waited in the task's frame (the GIL, the CPU, a blocking C call). Other
            # tasks the loop ran in between only add to it: a wait is never made up.
            reading = self._read_clock()
            last = self.cpu_last
            if reading is not None and last is not None:
                ran = max(0.0, reading - last)
            self.cpu_last = reading
        else:
            self.cpu_last = None  # not read while it awaits (that would cost a system call per waiting task)
        if merges and ran >= 0.0 and (not self.cpu or self.cpu[-1] < 0.0):
            # The first tick of this run had no clock to compare with: a run-length sample's CPU time is known for
            # all of its ticks or none, so the run starts again here (an equal tuple, not the same one, is not merged).
            stack = (*stack,)
            if self._last.stack is samples[-1][1]:
                self._last.stack = stack
            merges = False
        previous = samples[-1][0] if samples else self.start
        super().record(now, stack)
        cpu = self.cpu
        if cpu is None and ran >= 0.0:
            cpu = self.cpu = [-1.0] * before
        if cpu is not None:
            if merges:
                if cpu:
                    cpu[-1] = cpu[-1] + ran if cpu[-1] >= 0.0 and ran >= 0.0 else -1.0
            elif len(samples) > before:
                cpu.append(ran)
            if ran >= 0.0 and samples:
                self._add_queue(len(samples) - 1, self._queued(now - previous, ran))
        if not self.ran_code and stack is not self._checked:  # an unchanged await chain is the same tuple
            self._checked = stack
            self.ran_code = not all(map(is_library_info, stack))

    def _own_frames(self) -> list[types.FrameType]:
        own: list[types.FrameType] = []
        frame, root = self._caller, self._root
        while frame is not None and root is not None:
            own.append(frame)
            if frame is root:
                return own
            frame = frame.f_back
        return []

    def stack_at(self, frame: types.FrameType) -> Stack | None:
        if self._root is None:
            return None
        memo = self._memo
        if memo is None:
            memo = self._memo = MarkMemo()
        return mark_stack(frame, self._anchors, self._root, memo)

    def capture(self, frames: dict[int, types.FrameType]) -> Stack | None:
        task, coro, root = self.task, self._coro, self._root
        if task is None or coro is None or root is None or task.done():
            return None
        if is_running(coro):
            resuming = self._waiting
            self._waiter = self._waiting = None
            leaf = frames.get(self.thread_id)
            if leaf is None:
                return None
            cached = self._last.get(leaf)
            if cached is not None:
                return cached
            stack = stack_below(leaf, self._anchors, root, self.thread_id)
            if not stack and resuming:
                # Caught as its outermost frame resumes (CPython gives up the GIL at a frame's RESUME, so a waiting
                # sampler often lands exactly here): it is re-entering the chain it awaited in, not leaving it, and
                # until now it waited there (for what it awaited, or for the loop): the interval is not its work.
                samples = self.samples
                if samples and samples[-1][1] and samples[-1][1][-1] is READY:
                    return samples[-1][1]
                return resuming
            return self._last.put(leaf, stack if stack is not None else ())
        # Suspended: while it awaits the same future (held, so it is not a recycled one) it has not moved.
        # Loop wait: it could not run, since another request's task held the loop (sampled mid-step), or it was
        # ready (what it awaited is done, or it yielded) and waited for its turn.
        waiter = getattr(task, "_fut_waiter", None)
        holder = _current_tasks.get(self._loop) if _current_tasks is not None else None
        ready = (
            (holder is not None and holder is not task and task_owners.get(holder) is not self.owner)
            or waiter is None
            or waiter.done()
        )
        if waiter is not None and waiter is self._waiter and self._waiting is not None:
            return self._ready_stack() if ready else self._waiting
        chain = coroutine_frames(coro)
        cut = 0
        for i, frame in enumerate(chain):
            if id(frame) in self._anchors:
                cut = i + 1
        self._waiter = waiter
        self._waiting = (*await_chain(chain[cut:], chain[cut - 1] if cut else None), AWAIT)
        self._ready = None
        return self._ready_stack() if ready else self._waiting

    def _ready_stack(self) -> Stack:
        ready = self._ready
        if ready is None:
            ready = self._ready = (*(self._waiting or (AWAIT,))[:-1], READY)
        return ready

    def _forget(self) -> None:
        self._last.clear()
        self._waiter = self._waiting = None
        self._memo = None

    def release(self) -> None:
        self._forget()
        self._caller = None
        self._anchor_frames = []
        self._anchors = frozenset()
        self._root = None
        self._coro = None
        self.task = None
        self.owner = None


class _LastStack:
    """The previous sample's stack, reused while the same frame is still innermost (a thread blocked in I/O,
    a task running the same frame): then nothing is walked. The two innermost frames are held until the next
    sample so that a new frame cannot reuse their address; this may keep a just-returned function's locals
    alive for up to one interval."""

    __slots__ = ("back", "lasti", "leaf", "stack")

    def __init__(self) -> None:
        self.leaf: types.FrameType | None = None
        self.back: types.FrameType | None = None
        self.stack: Stack = ()
        self.lasti = -1

    def get(self, leaf: types.FrameType) -> Stack | None:
        if leaf is self.leaf and leaf.f_back is self.back:
            return self.stack
        return None

    def put(self, leaf: types.FrameType, stack: Stack) -> Stack:
        self.leaf, self.back, self.stack = leaf, leaf.f_back, stack
        return stack

    def clear(self) -> None:
        self.leaf = self.back = None
        self.stack = ()
