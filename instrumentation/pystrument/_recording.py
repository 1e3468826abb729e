"""A request being profiled (its span, lanes and CPU clock) and the registry that says who owns what.

Attribution: a request owns the thread (sync) or the asyncio task (on an event loop) that started
its span; worker calls submitted on its behalf (``ThreadPoolExecutor.submit``, ``anyio.to_thread``,
:func:`pystrument.propagate`) own their worker thread while they run; tasks it creates are adopted
(default sampler). ``owner()`` finds the request of the calling code: by task, by thread, then by
the OTel current span's trace.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import types
from collections.abc import Callable
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.sdk.trace import Span

from pystrument._lanes import Lane, TaskLane, ThreadLane
from pystrument._safety import log_once

T = TypeVar("T")


def _running_task() -> Any:
    loop = asyncio._get_running_loop()
    if loop is None:
        return None
    try:
        return asyncio.current_task(loop)
    except RuntimeError:
        return None


class Recording:
    """Everything recorded for one request span until it ends."""

    def __init__(self, span: Span, interval: float, precise: bool, caller: types.FrameType) -> None:
        self.span = span
        self.span_context = span.get_span_context()
        self.name = span.name
        self.interval = interval
        self.precise = precise
        self.start_ns = span.start_time or time.time_ns()
        self.start_perf = time.perf_counter()
        self.end_perf: float | None = None
        self.thread_id = threading.get_ident()
        self.cpu_time: float | None = None
        self.cpu_source = ""
        self.worker_cpu = 0.0
        self.active = True
        self.adopted_tasks: list[Any] = []
        self.task = _running_task()
        self.loop = asyncio._get_running_loop() if self.task is not None else None
        self.cpu_start = time.thread_time() if self.task is None else 0.0
        self.lanes: list[Lane] = [self._main_lane(caller)]

    def _main_lane(self, caller: types.FrameType) -> Lane:
        name = threading.current_thread().name
        if self.precise:
            from pystrument._precise import PyinstrumentLane

            root = None
            if self.task is not None:
                coro = self.task.get_coro()
                root = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            return PyinstrumentLane(
                name, self.interval, caller, on_loop=self.task is not None, coroutine_root=root, main=True
            )
        if self.task is not None:
            return TaskLane(self.task.get_name(), self.start_perf, self.task, self.thread_id, caller, main=True)
        return ThreadLane(name, self.start_perf, self.thread_id, caller, main=True)

    @property
    def on_loop(self) -> bool:
        return self.task is not None

    def sample(self, frames: dict[int, types.FrameType], now: float) -> None:
        """Record one sample in every open lane (called by the sampler thread)."""
        if not self.active:
            return
        for lane in tuple(self.lanes):
            if lane.open:
                stack = lane.capture(frames)
                if stack is not None:
                    lane.record(now, stack)

    def stop(self) -> None:
        """End recording; call on the thread that ends the span (CPU time and pyinstrument need it)."""
        if not self.active:
            return
        self.active = False
        now = time.perf_counter()
        self.end_perf = now
        for lane in tuple(self.lanes):
            stop = getattr(lane, "stop", None)
            if stop is not None and not stop():
                log_once(
                    "precise.thread",
                    "pystrument: a request span ended on another thread than it started; "
                    "pyinstrument mode cannot stop its profiler there",
                    exc_info=False,
                )
            lane.close(now)
        if not self.on_loop and threading.get_ident() == self.thread_id:
            self.cpu_time = time.thread_time() - self.cpu_start + self.worker_cpu
            self.cpu_source = "thread"
        elif self.on_loop:
            # The loop thread's CPU clock is shared by every task: estimate the request's share from the samples
            # in which its tasks were running (a blocking call inside async code counts too), plus worker threads.
            loop_lanes = [lane for lane in self.lanes if lane.kind == "task" or (lane.main and lane.kind != "thread")]
            self.cpu_time = sum(lane.busy for lane in loop_lanes) + self.worker_cpu
            self.cpu_source = "samples"

    def sample_count(self) -> int:
        return sum(lane.sample_count() for lane in self.lanes)

    def release(self) -> None:
        """Drop references to frames and tasks once the spans are built."""
        for lane in self.lanes:
            release = getattr(lane, "release", None)
            if release is not None:
                release()
        self.adopted_tasks = []

    # -- worker threads and child tasks ------------------------------------------------------------

    def bind(self, fn: Callable[..., T]) -> Callable[..., T]:
        """``fn`` wrapped so the thread that runs it is attributed to this request while it runs."""
        recording = self

        def pystrument_bound_call(*args: Any, **kwargs: Any) -> T:
            lane = recording._enter_worker(sys._getframe())
            try:
                return fn(*args, **kwargs)
            finally:
                if lane is not None:
                    recording._exit_worker(lane)

        return pystrument_bound_call

    def _enter_worker(self, frame: types.FrameType) -> tuple[Lane, int, Recording | None, float] | None:
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
            previous = registry.by_thread.get(tid)
            registry.by_thread[tid] = self
            self.lanes.append(lane)
            lane.start = time.perf_counter()  # as late as possible: the call starts now
            return lane, tid, previous, time.thread_time()
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

    def adopt_task(self, task: Any) -> None:
        """Sample a task created by this request as one of its lanes (default sampler only)."""
        if not self.active or self.precise:
            return
        registry.by_task[task] = self
        self.adopted_tasks.append(task)
        lane = TaskLane(task.get_name(), time.perf_counter(), task, self.thread_id, None, worker=True)
        self.lanes.append(lane)
        # The lane brackets the task's coroutine: close it when the task is done, not at the next sample.
        task.add_done_callback(lambda _task: lane.close(time.perf_counter()))


class Registry:
    """Which request owns which thread, task and trace (process-wide)."""

    def __init__(self) -> None:
        self.by_thread: dict[int, Recording] = {}
        self.by_task: dict[Any, Recording] = {}
        self.by_trace: dict[int, Recording] = {}

    def lane_owner(self) -> Recording | None:
        """The request owning the calling task (on a loop) or thread, if it is still active."""
        task = _running_task()
        owner = self.by_task.get(task) if task is not None else self.by_thread.get(threading.get_ident())
        return owner if owner is not None and owner.active else None

    def owner(self) -> Recording | None:
        """The request the calling code works for: its lane's owner, else the one of the current span's trace."""
        owner = self.lane_owner()
        if owner is None:
            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                owner = self.by_trace.get(context.trace_id)
        return owner if owner is not None and owner.active else None

    def register(self, recording: Recording) -> None:
        if recording.task is not None:
            self.by_task[recording.task] = recording
        else:
            self.by_thread[recording.thread_id] = recording
        self.by_trace[recording.span_context.trace_id] = recording

    def unregister(self, recording: Recording) -> None:
        for mapping, key in (
            (self.by_task, recording.task),
            (self.by_thread, recording.thread_id),
            (self.by_trace, recording.span_context.trace_id),
        ):
            if key is not None and mapping.get(key) is recording:
                mapping.pop(key, None)
        for task in recording.adopted_tasks:
            if self.by_task.get(task) is recording:
                self.by_task.pop(task, None)

    def clear(self) -> None:
        self.by_thread.clear()
        self.by_task.clear()
        self.by_trace.clear()


registry = Registry()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=registry.clear)
