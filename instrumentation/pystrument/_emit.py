"""Turn a finished recording into function-call spans, off the request thread.

``build`` runs the pure pipeline (lanes -> frame records -> call trees -> collapse -> attach -> prune);
``emit_calls`` creates the spans with explicit times, parented through the request span's context;
``SpanWorker`` is the small worker thread with a bounded queue that does both.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind
from pyinstrument.frame_ops import FrameRecordType
from pyinstrument.session import Session

from pystrument._recording import Recording
from pystrument._safety import log_once
from pystrument._tree import Call, attach_lanes, build_calls, collapse_library, prune

_logger = logging.getLogger("pystrument")

# Attribute names (OTel stable code attributes, then pystrument's own).
CODE_FUNCTION = "code.function.name"
CODE_FILE = "code.file.path"
CODE_LINE = "code.line.number"
SYNTHETIC = "pystrument.synthetic"
SAMPLES = "pystrument.samples"
SELF_TIME_MS = "pystrument.self_time_ms"
AWAIT_TIME_MS = "pystrument.await_time_ms"
LIBRARY = "pystrument.library"
PRECISION_MS = "pystrument.time_precision_ms"
THREAD = "pystrument.thread"
CPU_TIME_MS = "pystrument.cpu_time_ms"
CPU_TIME_SOURCE = "pystrument.cpu_time_source"
INTERVAL_MS = "pystrument.profile.interval_ms"
SAMPLER = "pystrument.profile.sampler"
SAMPLE_COUNT = "pystrument.profile.samples"
FUNCTION_SPANS = "pystrument.function_spans"


def build(recording: Recording, min_duration: float, max_calls: int) -> list[Call]:
    """The request's call tree, ready to emit: per-lane timelines, library chains collapsed, worker lanes
    nested under the call that waited for them, then pruned."""
    main: list[Call] = []
    others: list[Call] = []
    for lane in recording.lanes:
        calls = collapse_library(build_calls(lane.records(), lane.start, "" if lane.main else lane.name))
        (main if lane.main else others).extend(calls)
    return prune(attach_lanes(main, others), min_duration, max_calls)


def session(recording: Recording) -> Session:
    """The request's samples as a pyinstrument ``Session`` (each lane under its own root frame), so
    pyinstrument's processors and renderers (console, HTML, speedscope) apply."""
    root = f"{recording.name}\x00<request>\x000"
    records: list[FrameRecordType] = []
    for lane in recording.lanes:
        lane_root = f"{lane.name}\x00<{lane.kind}>\x000"
        records.extend(([root, lane_root, *stack], dt) for stack, dt in lane.records())
    end = recording.end_perf if recording.end_perf is not None else time.perf_counter()
    return Session(
        frame_records=records,
        start_time=recording.start_ns / 1e9,
        duration=end - recording.start_perf,
        min_interval=recording.interval,
        max_interval=recording.interval,
        sample_count=len(records),
        start_call_stack=[root],
        target_description=f"pystrument request {recording.name}",
        cpu_time=recording.cpu_time or 0.0,
        sys_path=list(sys.path),
        sys_prefixes=Session.current_sys_prefixes(),
    )


def emit_calls(
    tracer: trace.Tracer,
    parent: SpanContext,
    calls: list[Call],
    to_ns: Callable[[float], int],
    precision_ms: float,
    bounds: tuple[int, int] | None = None,
) -> int:
    """Create one INTERNAL span per call (depth first, parents before children); returns how many."""
    emitted = 0
    stack: list[tuple[SpanContext, list[Call]]] = [(parent, calls)]
    while stack:
        parent_context, batch = stack.pop()
        context = trace.set_span_in_context(NonRecordingSpan(parent_context))
        for call in batch:
            start, end = to_ns(call.start), to_ns(call.end)
            if bounds is not None:
                start = min(max(start, bounds[0]), bounds[1])
                end = min(max(end, start), bounds[1])
            attributes: dict[str, Any] = {
                CODE_FUNCTION: call.name,
                CODE_FILE: call.file,
                CODE_LINE: call.line,
                SYNTHETIC: True,
                SAMPLES: call.samples,
                SELF_TIME_MS: round(call.self_time * 1000, 3),
                LIBRARY: call.library,
                PRECISION_MS: precision_ms,
            }
            if call.await_time > 0:
                attributes[AWAIT_TIME_MS] = round(call.await_time * 1000, 3)
            if call.lane:
                attributes[THREAD] = call.lane
            span = tracer.start_span(
                call.name,
                context=context,
                kind=SpanKind.INTERNAL,
                attributes=attributes,
                start_time=start,
                record_exception=False,
                set_status_on_exception=False,
            )
            span.end(end_time=end)
            emitted += 1
            if call.children:
                stack.append((span.get_span_context(), call.children))
    return emitted


class SpanWorker:
    """One daemon thread running jobs from a bounded queue; a full queue drops the job with one log line."""

    def __init__(self, maxsize: int = 256) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=maxsize)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.dropped = 0

    @property
    def ident(self) -> int | None:
        thread = self._thread
        return thread.ident if thread is not None else None

    def submit(self, job: Callable[[], None]) -> bool:
        self._ensure_thread()
        try:
            self._queue.put_nowait(job)
            return True
        except queue.Full:
            self.dropped += 1
            log_once(
                "worker.full",
                "pystrument: span worker queue full; dropping function spans of a request "
                "(further drops are logged at debug level)",
                exc_info=False,
            )
            return False

    def flush(self, timeout: float) -> bool:
        """Wait until every queued job ran; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        return True

    def shutdown(self, timeout: float) -> None:
        self.flush(timeout)
        thread = self._thread
        if thread is not None and thread.is_alive():
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                return
            thread.join(timeout)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="pystrument-spans", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                job()
            except Exception:
                log_once("worker.job", "pystrument: building function spans failed; carrying on")
            finally:
                self._queue.task_done()
