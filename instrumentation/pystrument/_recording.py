"""A request being profiled (its span, lanes and CPU clock) and the registry that says who owns what.

Attribution: a request owns the thread (sync) or the asyncio task (on an event loop) that started
its span; worker calls submitted on its behalf (``ThreadPoolExecutor.submit``, ``anyio.to_thread``,
:func:`pystrument.propagate`) own their worker thread while they run; tasks it creates are adopted
(default sampler). ``owner()`` finds the request of the calling code: by task, by thread, then by
the OTel current span's trace.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import threading
import time
import types
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.trace import SpanContext

from pystrument._frames import MAX_DEPTH, eager_chain
from pystrument._gc import Pause, gc_pauses
from pystrument._lanes import Lane, TaskLane, ThreadLane, queue_baseline, strip_machinery, task_owners
from pystrument._safety import log_once

T = TypeVar("T")
Stack = tuple[str, ...]
_tokens = itertools.count(1)
#: Held while a request's main lane is made (``Recording._main_lanes``).
_main_lock = threading.Lock()


def _running_task() -> Any:
    loop = asyncio._get_running_loop()
    if loop is None:
        return None
    try:
        return asyncio.current_task(loop)
    except RuntimeError:
        return None


#: An anchor's two clock readings are retaken when the thread lost its core between them for longer than this.
ANCHOR_GAP_S = 20e-6


def _anchor(before: float) -> tuple[int, float]:
    """The epoch clock in nanoseconds read beside the sampler's clock (the middle of the two readings around it): the
    recording's one conversion between the two, both ways (child spans' times to marks, calls' times to function
    spans), so that a child span's end marked on the sampler's clock comes back as that very end. Read again (three
    tries, the closest pair kept) when the thread was preempted in between, which would shift every conversion."""
    ns = time.time_ns()
    after = time.perf_counter()
    best, gap = (ns, 0.5 * (before + after)), after - before
    for _ in range(2):
        if gap <= ANCHOR_GAP_S:
            break
        before = time.perf_counter()
        ns = time.time_ns()
        after = time.perf_counter()
        if after - before < gap:
            best, gap = (ns, 0.5 * (before + after)), after - before
    return best


class Recording:
    """Everything recorded for one request span until it ends. Attributes that most requests leave at their default
    are class attributes (the instance is made on the request thread, for every request)."""

    end_perf: float | None = None
    cpu_time: float | None = None
    cpu_source = ""
    worker_cpu = 0.0
    active = True
    # The tail rule's verdict, decided when the span ends (None: not decided yet).
    keep: bool | None = None
    adopted_tasks: list[Any] | tuple[()] = ()
    task: Any = None
    loop: asyncio.AbstractEventLoop | None = None
    #: Someone else's ``end`` hook on the span instance, called after pystrument's.
    previous_end: Callable[[int | None], None] | None = None
    #: How many samples the request had when it stopped (``stop``).
    samples_at_end = 0
    #: The garbage-collection pauses that overlapped the request (``stop``).
    gc_pauses: list[Pause] | tuple[()] = ()
    #: Template renders under way in the request (only the outermost marks its start and end).
    template_depth = 0
    #: The sampler's tick count when the request started (to tell why a request got no samples).
    ticks_at_start = 0
    #: The sampler's count of ticks slowed down by the cost budget when the request started (``degraded``).
    stretched_at_start = 0
    #: CPU seconds of the request thread's pystrument work so far, on a request whose hooks are timed (-1: not timed).
    hook_cpu = -1.0
    #: CPU seconds of the cost budget taken for building this request's function spans when it was admitted (its
    #: estimated cost, the processor's ``_admit``): paid already when it keeps them, given back when it has none. None:
    #: not admitted that way (no budget, or every request is slow), the end pays.
    reserved: float | None = None
    #: The ended request span, as ``on_end`` got it (set when the recording goes to the span worker).
    ended: ReadableSpan | None = None
    #: Called with (this recording, the span) by ``end_hook`` just before the span ends (the processor's).
    on_ending: Callable[[Recording, Span], None] | None = None

    def __init__(
        self,
        span: Span,
        interval: float,
        precise: bool,
        caller: types.FrameType,
        *,
        span_context: SpanContext | None = None,
        thread_id: int | None = None,
        task: Any = None,
    ) -> None:
        self.span = span
        self.span_context = span_context if span_context is not None else span.get_span_context()
        self.interval = interval
        self.precise = precise
        self.start_perf = start = time.perf_counter()
        self.anchor_ns, self.anchor_perf = _anchor(start)
        self.start_ns = span.start_time or self.anchor_ns
        if thread_id is None:
            thread_id = threading.get_ident()
            if task is None:
                task = _running_task()
        self.thread_id = thread_id
        if task is None:
            self.cpu_start = time.thread_time()
            if not precise:  # the common case: the main lane is made when first needed (``_main_lanes``)
                self._chain = eager_chain(caller)
                self._queue = queue_baseline(thread_id)
                self.lanes: list[Lane] = []
                return
        else:
            self.task = task
            self.loop = task.get_loop()
            self.cpu_start = 0.0
        self.lanes = [self._main_lane(caller)]
        if interval != 0.005:
            self.lanes[0].interval = interval

    #: A request on a thread (default sampler) whose main lane is not made yet: the frames it started below
    #: (``eager_chain``, taken as it started) and its thread's run-queue baseline then (``queue_baseline``).
    _chain: list[types.FrameType] | None = None
    _queue: tuple[int, float] | None = None

    @property
    def name(self) -> str:
        return self.span.name

    def _main_lanes(self, wait: bool = True) -> list[Lane]:
        """``lanes``, with the main lane made first if it was not yet (a request on a thread gets its main lane when
        the sampler first samples it or something marks or joins it: most requests end before their first sample, and
        then never need one). Made under a lock (the sampler thread and the request's own may both want it); ``wait``
        False: not made if another thread is making it (a garbage collection's callback must not give the GIL up)."""
        lanes = self.lanes
        chain = self._chain
        if lanes or chain is None:
            return lanes
        if not _main_lock.acquire(wait):
            return lanes
        try:
            if lanes:
                return lanes
            lane = ThreadLane("", self.start_perf, self.thread_id, None, main=True, chain=chain)
            lane.cpu_last = self.cpu_start
            queue = self._queue
            if queue is not None:
                lane._sched, lane.delay_last = queue
            if self.interval != 0.005:
                lane.interval = self.interval
            lanes.append(lane)
        finally:
            _main_lock.release()
        end = self.end_perf
        if end is not None:  # the request ended meanwhile (``stop`` may not have seen the lane)
            lane.close(end)
        return lanes

    def end_hook(self, end_time: int | None = None) -> None:
        """Installed as the request span's own ``end``: runs ``on_ending`` while the span still takes attributes,
        then ends it (through someone else's instance hook if there was one)."""
        span = self.span
        previous = self.previous_end
        # The span ends now, when its instrumentation ends it, not after the SDK's work below (on a crowded machine the
        # thread may be preempted in between: the span would then outlast what the SDK saw). Someone else's hook gets
        # the call as it was made.
        ends_at = end_time if end_time is not None else time.time_ns()
        try:
            if previous is None:
                del span.end  # the class's end() again, and no reference cycle
            else:
                span.end = previous  # type: ignore[method-assign,assignment]
            if self.on_ending is not None:
                self.on_ending(self, span)
        except Exception:
            log_once("end_hook", "pystrument: finishing a request profile failed; carrying on")
        if previous is not None:
            previous(end_time)
        else:
            type(span).end(span, ends_at)

    def _main_lane(self, caller: types.FrameType) -> Lane:
        if self.precise:
            from pystrument._precise import PyinstrumentLane

            root = None
            if self.task is not None:
                coro = self.task.get_coro()
                root = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            return PyinstrumentLane(
                threading.current_thread().name,
                self.interval,
                caller,
                on_loop=self.task is not None,
                coroutine_root=root,
                main=True,
            )
        if self.task is not None:
            lane = TaskLane(self.task.get_name(), self.start_perf, self.task, self.thread_id, caller, main=True)
            lane.owner = self
            return lane
        # The main thread lane's name is looked up when a session is built (``thread_name``), off the request thread.
        return ThreadLane("", self.start_perf, self.thread_id, caller, main=True)

    @property
    def on_loop(self) -> bool:
        return self.task is not None

    @property
    def ran_async(self) -> bool:
        """Whether the request ran on an event loop: its span started in a task, or application code of it was
        sampled running in a task it adopted (a Django async view under ASGI; not a sync view's Django plumbing)."""
        if self.task is not None:
            return True
        lanes = self.lanes
        return len(lanes) > 1 and any(getattr(lane, "ran_code", False) for lane in lanes)

    def encloses_caller(self) -> bool:
        """Whether this request still runs below the calling code: the frames it started from are on the calling
        stack (a root span started inside it), rather than it being left over from an earlier request."""
        held = self.lanes[0].anchor_frames if self.lanes else self._chain or []
        ids = {id(frame) for frame in held}
        frame: types.FrameType | None = sys._getframe(1)
        for _ in range(4 * MAX_DEPTH):
            if frame is None:
                return False
            if id(frame) in ids:
                return True
            frame = frame.f_back
        return False

    def sample(self, frames: dict[int, types.FrameType], now: float) -> bool:
        """Record one sample, taken at ``now``, in every lane open then (called by the sampler thread); returns whether
        any lane moved (False: every lane blocked in the same call as at the previous tick; only threads count as
        still, whose lanes place the end of a wait between slower ticks, not a task awaiting the same future). The
        request may have ended since ``frames`` were taken: the sampler thread can lose the GIL in the middle of a
        round, for as long as a garbage collection it ran itself and the queue of threads that waited through it."""
        end = self.end_perf
        if end is not None and now > end:
            return False
        moved = False
        for lane in self.lanes[:] or self._main_lanes():
            lane_end = lane.end
            if lane_end is None or now <= lane_end:
                stack = lane.capture(frames)
                if stack is not None:
                    lane.record(now, stack)
                    if not lane.still or not lane.stretchable:
                        moved = True
        return moved

    def stop(self) -> None:
        """End recording; call on the thread that ends the span (CPU time and pyinstrument need it)."""
        if not self.active:
            return
        self.active = False
        now = self.end_perf = time.perf_counter()
        lanes = self.lanes
        if self.precise:
            for lane in tuple(lanes):
                if not lane.stop():  # type: ignore[attr-defined]
                    log_once(
                        "precise.thread",
                        "pystrument: a request span ended on another thread than it started; "
                        "pyinstrument mode cannot stop its profiler there",
                        exc_info=False,
                    )
        if gc_pauses.last_end > self.start_perf or gc_pauses.open_start:  # O(1) in the common case: no pause
            self.gc_pauses = pauses = gc_pauses.between(self.start_perf, now)
            if pauses and not lanes:
                lanes = self._main_lanes()  # a pause is shown in its lanes' timelines
        for lane in lanes:  # list iteration sees lanes appended meanwhile too
            lane.close(now)
        if self._chain is not None:
            self._chain = []  # freed on the request's own thread, as its lanes' anchors are (``ThreadLane.close``)
        self.samples_at_end = self.sample_count() if lanes else 0
        if self.task is None and threading.get_ident() == self.thread_id:
            self.cpu_time = time.thread_time() - self.cpu_start + self.worker_cpu
            self.cpu_source = "thread"
            if len(lanes) > 1:
                adopted = [lane for lane in lanes if isinstance(lane, TaskLane) and not lane.cpu_counted]
                if adopted:  # async_to_sync tasks ran part of it on the main loop: their sampled running time counts
                    self.cpu_time += self._sampled_busy(adopted)
                    self.cpu_source = "thread+samples"
        elif self.task is not None:
            # The loop thread's CPU clock is shared by every task: estimate the request's share from the samples
            # in which its tasks were running (a blocking call inside async code counts too), plus worker threads.
            loop_lanes = [lane for lane in self.lanes if lane.kind == "task" or (lane.main and lane.kind != "thread")]
            self.cpu_time = self._sampled_busy(loop_lanes) + self.worker_cpu
            self.cpu_source = "samples"

    def loop_wait(self) -> float:
        """Seconds the request's tasks were ready to run while another task held the event loop."""
        lanes = self.lanes
        if self.task is None and len(lanes) <= 1:
            return 0.0
        return sum(lane.ready for lane in lanes)

    def starved(self, ticks: int) -> str:
        """Why a request of at least two intervals got fewer than two samples ("" when it did not), given the
        sampler's ticks while it ran."""
        samples = self.samples_at_end
        if samples >= 2:
            return ""
        start = self.start_perf
        end = self.end_perf
        if end is None:
            end = time.perf_counter()
        duration = end - start
        # An instrumentation may give the span an earlier start than the moment it starts it (Flask's takes the
        # WSGI call's): the request ran that long before pystrument could sample it.
        late = max(0.0, start - self.to_perf(self.start_ns))
        if late >= self.interval and duration + late >= 2 * self.interval:
            return (
                f"late: the request span started {late * 1000:.0f} ms before pystrument was told (its "
                f"instrumentation set an earlier start time); {samples} samples in the {duration * 1000:.0f} ms after"
            )
        # Two intervals, not four: the span's own end comes after this (the thread may wait for the GIL in between),
        # so a request measured here a little under four intervals may still last four by its span's clock.
        if duration < 2 * self.interval:
            return ""
        ms = duration * 1000
        pause = sum(max(0.0, min(b, end) - max(a, self.start_perf)) for a, b, _ in self.gc_pauses)
        if pause >= 0.5 * duration:
            return f"gc: garbage collection stopped every thread for {pause * 1000:.0f} of its {ms:.0f} ms"
        if ticks < 2:
            return (
                f"gil: the sampler thread ran {ticks} times in {ms:.0f} ms; other threads held the GIL "
                f"(CPU-bound requests in parallel), {samples} samples"
            )
        return f"unseen: {samples} samples in {ticks} sampler ticks over {ms:.0f} ms; the request's stack was not found"

    def _sampled_busy(self, lanes: Sequence[Lane]) -> float:
        """Time the lanes' tasks were sampled running, less the garbage-collection pauses in it (the sample after a
        pause carries the pause's time, while every thread stood still)."""
        busy = sum(lane.busy for lane in lanes)
        if self.gc_pauses:
            busy -= sum(lane.busy_during(self.gc_pauses) for lane in lanes)
        return max(0.0, busy)

    def has_spans_to_build(self, min_duration: float) -> bool:
        """Whether building the ended request's function spans can give any. Not without a sample or a pause (a
        request shorter than the interval), nor when it ran on one lane (calls of other lanes may outlast it) for less
        than ``min_duration`` (so did every call in it: all are pruned) with nothing kept however short (no mark, so
        no template render and no child span for a call to claim; no garbage-collection pause). Precise mode's
        profiles are always built."""
        if self.precise:
            return True
        pauses = self.gc_pauses
        if not self.samples_at_end and not pauses:
            return False
        lanes = self.lanes
        end = self.end_perf
        return bool(
            end is None
            or end - self.start_perf >= min_duration
            or len(lanes) > 1
            or (lanes and lanes[0].marks)
            or pauses
        )

    def sample_count(self) -> int:
        lanes = self.lanes
        if len(lanes) == 1:
            return lanes[0].sample_count()
        return sum(lane.sample_count() for lane in lanes)

    def release(self) -> None:
        """Drop references to frames and tasks once the spans are built."""
        for lane in self.lanes:
            release = getattr(lane, "release", None)
            if release is not None:
                release()
        self.adopted_tasks = ()

    # -- worker threads and child tasks ------------------------------------------------------------

    def lane_of(self, task: Any, thread_id: int) -> Lane | None:
        """The open lane running the calling code: the task's (on a loop), else the thread's."""
        lanes = self.lanes or self._main_lanes()
        if task is not None:
            for lane in reversed(lanes):
                if lane.end is None and getattr(lane, "task", None) is task:
                    return lane
        for lane in reversed(lanes):
            if lane.end is None and lane.kind == "thread" and getattr(lane, "thread_id", None) == thread_id:
                return lane
        return None

    def mark_here(
        self, frame: types.FrameType, claim: str, handoff: bool = False, at_ns: int | None = None
    ) -> Stack | None:
        """Mark the calling lane's stack below ``frame`` now, the tracing machinery left out (see ``Lane.mark``);
        returns the stack marked (None: the calling code is not on a lane of this request). ``at_ns``: the instant
        the stack stood there (a child span's start time), when this code runs later than that (it may have waited
        for the GIL since)."""
        if self.precise or not self.active:
            return None
        lane = self.lane_of(_running_task(), threading.get_ident())
        if lane is None:
            return None
        stack = lane.stack_at(frame)
        if stack is None:
            return None
        if handoff:
            stack = strip_machinery(stack, stdlib=True)
        now = time.perf_counter()
        gc_pauses.observe(now)  # this thread runs Python code: a collection on another thread is over
        lane.mark(self.perf_at(at_ns, now), stack, claim)
        return stack

    def mark_again(self, stack: Stack, claim: str = "", at_ns: int | None = None) -> None:
        """Mark ``stack`` without walking it again: the calling code stands where an earlier mark of its lane saw it
        (the end of a template render, or of a child span, that marked its start). ``at_ns`` as for ``mark_here``."""
        if self.precise or not self.active:
            return
        lane = self.lane_of(_running_task(), threading.get_ident())
        if lane is not None:
            now = time.perf_counter()
            gc_pauses.observe(now)
            lane.mark(self.perf_at(at_ns, now), stack, claim)

    def perf_at(self, at_ns: int | None, now: float) -> float:
        """An epoch time in nanoseconds (a span's start or end) on the sampler's clock, through the recording's anchor
        (``to_perf``); ``now`` (that clock's reading now) when there is none or it is not earlier."""
        if not at_ns:
            return now
        return min(now, self.to_perf(at_ns))

    def to_perf(self, at_ns: int) -> float:
        """An epoch time in nanoseconds on the sampler's clock (the inverse of ``to_ns``)."""
        return self.anchor_perf + (at_ns - self.anchor_ns) / 1e9

    def to_ns(self, t: float) -> int:
        """A time on the sampler's clock in epoch nanoseconds: how function spans are timed. Reading the epoch clock
        again at each conversion would add whatever the reading thread waited in between (for the GIL, for a core);
        pairing the sampler's start with the span's own start would shift every call by the time the request ran
        before pystrument was told (Flask's request span takes the WSGI call's start)."""
        return self.anchor_ns + round((t - self.anchor_perf) * 1e9)

    def bind(self, fn: Callable[..., T]) -> Callable[..., T]:
        """``fn`` wrapped so the thread that runs it is attributed to this request while it runs; the caller's stack
        is marked, so the worker's calls nest under the call that handed the work off."""
        recording = self
        token = f"lane:{next(_tokens)}"
        try:
            self.mark_here(sys._getframe(1), token, handoff=True)
        except Exception:
            log_once("bind.mark", "pystrument: marking a hand-off failed; carrying on")

        def pystrument_bound_call(*args: Any, **kwargs: Any) -> T:
            lane = recording._enter_worker(sys._getframe(), token)
            try:
                return fn(*args, **kwargs)
            finally:
                if lane is not None:
                    recording._exit_worker(lane)

        return pystrument_bound_call

    def _enter_worker(
        self, frame: types.FrameType, token: str = ""
    ) -> tuple[Lane, int, Recording | None, float] | None:
        try:
            if not self.active:
                return None
            tid = threading.get_ident()
            name = threading.current_thread().name
            lane: Lane
            if self.precise:
                from pystrument._precise import PyinstrumentLane

                lane = PyinstrumentLane(name, self.interval, frame, on_loop=False)
            else:
                lane = ThreadLane(name, time.perf_counter(), tid, frame, worker=True)
                lane.interval = self.interval
            if token:
                lane.token = token
            previous = registry.by_thread.get(tid)
            registry.by_thread[tid] = self
            self._main_lanes().append(lane)  # after the main lane, the first
            lane.start = time.perf_counter()  # as late as possible: the call starts now
            cpu = time.thread_time()
            if isinstance(lane, ThreadLane):
                lane.cpu_last = cpu
            return lane, tid, previous, cpu
        except Exception:
            log_once("worker.enter", "pystrument: attributing a worker thread failed; carrying on")
            return None

    def _exit_worker(self, token: tuple[Lane, int, Recording | None, float]) -> None:
        try:
            lane, tid, previous, cpu_start = token
            stop = getattr(lane, "stop", None)
            if stop is not None:
                stop()
            lane.close(time.perf_counter())
            self.worker_cpu += time.thread_time() - cpu_start
            if previous is None:
                registry.by_thread.pop(tid, None)
            else:
                registry.by_thread[tid] = previous
        except Exception:
            log_once("worker.exit", "pystrument: detaching a worker thread failed; carrying on")

    def adopt_bridge(self, task: Any) -> None:
        """Adopt asgiref's ``async_to_sync`` task running code for this request (on the main loop under ASGI, on a
        private loop in a worker thread under WSGI). In a worker thread of the request the task lane takes over from
        the thread lane, which would see only the loop's machinery while the coroutine awaits."""
        tid = threading.get_ident()
        if not self.active or self.precise or (self.task is None and tid == self.thread_id):
            return  # the request's own thread runs that loop: its main lane sees the task whenever it runs
        counted = False
        now = time.perf_counter()
        for lane in tuple(self._main_lanes()):
            if lane.worker and lane.open and isinstance(lane, ThreadLane) and lane.thread_id == tid:
                lane.close(now)
                counted = True  # the worker's thread CPU time already counts for the request
        self.adopt_task(task, bridge=True, cpu_counted=counted)

    def adopt_task(self, task: Any, *, bridge: bool = False, cpu_counted: bool = False) -> None:
        """Sample a task created by this request as one of its lanes (default sampler only). ``bridge``: the task
        runs the rest of the request for a thread waiting in asgiref's ``async_to_sync``; if only library code of it
        is sampled (the framework's plumbing around a sync view), its calls are left out of the spans."""
        if not self.active or self.precise:
            return
        tid = threading.get_ident()
        for other in self.lanes:
            if other.bridge and not other.open and isinstance(other, TaskLane) and other.thread_id == tid:
                return  # the async_to_sync task is done: what its private loop starts now is asyncio's cleanup
        registry.by_task[task] = self
        if not self.adopted_tasks:
            self.adopted_tasks = []
        self.adopted_tasks.append(task)
        # Tasks are created on their loop's thread: the request's own thread, or the main loop's for async_to_sync.
        lane = TaskLane(task.get_name(), time.perf_counter(), task, tid, None, worker=True)
        lane.owner = self
        lane.interval = self.interval
        if not bridge:  # created by the request's running code: it nests under the call that created it
            lane.token = f"lane:{next(_tokens)}"
            self.mark_here(sys._getframe(1), lane.token, handoff=True)
        lane.bridge = bridge
        lane.cpu_counted = cpu_counted
        self._main_lanes().append(lane)
        # The lane brackets the task's coroutine: close it when the task is done, not at the next sample.
        task.add_done_callback(lambda _task: lane.close(time.perf_counter()))


class Registry:
    """Which request owns which thread and task (process-wide)."""

    def __init__(self) -> None:
        self.by_thread: dict[int, Recording] = {}
        self.by_task: dict[Any, Recording] = task_owners  # type: ignore[assignment]

    def lane_owner(self) -> Recording | None:
        """The request owning the calling task (on a loop) or thread, if it is still active."""
        task = _running_task()
        owner = self.by_task.get(task) if task is not None else self.by_thread.get(threading.get_ident())
        return owner if owner is not None and owner.active else None

    def thread_owner(self) -> Recording | None:
        """The active request owning the calling thread (even when a task runs on it)."""
        owner = self.by_thread.get(threading.get_ident())
        return owner if owner is not None and owner.active else None

    def owner(self) -> Recording | None:
        """The request the calling code works for: its lane's owner, else the one of the current span's trace."""
        owner = self.lane_owner()
        if owner is None:
            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                owner = self.by_trace(context.trace_id)
        return owner if owner is not None and owner.active else None

    def by_trace(self, trace_id: int) -> Recording | None:
        """An active request of the trace: a search of the (few) requests running now, rather than one more index
        to maintain on the request thread for every request."""
        for owner in (*self.by_thread.values(), *self.by_task.values()):
            if owner.active and owner.span_context.trace_id == trace_id:
                return owner
        return None

    def register(self, recording: Recording) -> None:
        task = recording.task
        if task is not None:
            self.by_task[task] = recording
        else:
            self.by_thread[recording.thread_id] = recording

    def unregister(self, recording: Recording) -> None:
        # Each entry goes only if it is still this recording's (a later request may own the thread already).
        task = recording.task
        if task is not None:
            if self.by_task.get(task) is recording:
                del self.by_task[task]
        else:
            by_thread, thread_id = self.by_thread, recording.thread_id
            if by_thread.get(thread_id) is recording:
                del by_thread[thread_id]
        if recording.adopted_tasks:
            for task in recording.adopted_tasks:
                if self.by_task.get(task) is recording:
                    del self.by_task[task]

    def clear(self) -> None:
        self.by_thread.clear()
        self.by_task.clear()


registry = Registry()


def sample_collecting_thread(frame: types.FrameType, now: float) -> None:
    """Sample the request of the thread running a full garbage collection, at its start and end (``_gc.py``): the
    sampler cannot run meanwhile, and these two samples place the pause exactly, below the code that set it off."""
    tid = threading.get_ident()
    owner = registry.by_thread.get(tid)
    if owner is None or not owner.active or owner.precise:
        return
    for lane in reversed(owner.lanes or owner._main_lanes(wait=False)):
        if isinstance(lane, ThreadLane) and lane.thread_id == tid and lane.end is None:
            stack = lane.capture({tid: frame})
            if stack is not None:
                lane.record(now, stack)
            return


gc_pauses.sample = sample_collecting_thread

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=registry.clear)
