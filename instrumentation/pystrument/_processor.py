"""The span processor: profile each request span, emit its function-call spans when it ends.

A request span is a SERVER span or a root span (no local parent). A request nested in another of the
same trace on the same thread or task is not profiled again. The request span's ``end`` is wrapped on
the instance, so recording stops and ``pystrument.cpu_time_ms`` is set while the span can still take
attributes; ``on_end`` then hands the recording to the span worker.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import sys
import time
from asyncio import current_task
from asyncio.events import _get_running_loop
from collections.abc import Callable
from functools import partial
from threading import get_ident
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode
from pyinstrument.session import Session

from pystrument import _emit, _propagation
from pystrument._budget import BURST_S, EXPORT_S_PER_SPAN, cost_budget
from pystrument._emit import (
    ASYNC,
    CPU_TIME_MS,
    CPU_TIME_SOURCE,
    DEGRADED,
    FUNCTION_SPANS,
    GC_COLLECTIONS,
    GC_PAUSE_MS,
    INTERVAL_MS,
    LOOP,
    LOOP_WAIT_MS,
    SAMPLE_COUNT,
    SAMPLER,
    STARVED,
)
from pystrument._frames import END_CLAIM
from pystrument._gc import gc_pauses, paused
from pystrument._greenlets import follow_this_thread
from pystrument._propagation import install_hooks, install_task_factory
from pystrument._recording import Recording, registry
from pystrument._safety import log_once
from pystrument._sampler import get_sampler
from pystrument._settings import Settings
from pystrument._worker import SpanWorker

_VERSION = "0.1.0"
#: Most requests waiting for their spans to be built; beyond it a request's function spans are dropped.
QUEUE_SIZE = 256
#: Most child spans whose end is awaited at once (those of requests that never end them are forgotten past it).
MAX_OPEN_CHILDREN = 10_000
#: One profiled request in this many has its request-thread work timed (the budget's estimate for all of them).
TIME_EVERY = 16
#: Seconds of budget that may build up while little is spent (a burst allowance; ``_budget.BURST_S``).
BUDGET_BURST_S = BURST_S


_loop_ids: dict[int, str] = {}
_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()
    _loop_ids.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def loop_id(loop: Any) -> str:
    """``host:pid:loop``: which event loop ran a request, so that an analysis can find who else held it."""
    key = id(loop)
    found = _loop_ids.get(key)
    if found is None:
        if len(_loop_ids) > 1000:
            _loop_ids.clear()
        found = _loop_ids[key] = f"{socket.gethostname()}:{_pid}:{key:x}"
    return found


def set_valid_attributes(span: Span, attributes: dict[str, Any]) -> None:
    """``span.set_attributes`` for values known valid (short strings, numbers, booleans), without the SDK's per-value
    validation (a third of this processor's cost on the request thread): straight into the span's attribute dict
    when it has the SDK's shape and room, else through the public method."""
    try:
        bounded = span._attributes
        if (
            type(bounded) is BoundedAttributes
            and not bounded._immutable
            and bounded.max_value_len is None
            and (bounded.maxlen is None or len(bounded._dict) + len(attributes) <= bounded.maxlen)
            and span._end_time is None  # read without the span's lock: the span ends on this thread, after this
        ):
            with bounded._lock:
                bounded._dict.update(attributes)
            return
    except AttributeError:
        pass
    span.set_attributes(attributes)


class PystrumentSpanProcessor(SpanProcessor):
    """Adds function-call spans, reconstructed from stack samples, under every request span.

    ``tracer_provider`` is the provider whose tracer creates the function spans (the global one when
    omitted). Keyword settings override ``PYSTRUMENT_*`` (see :class:`pystrument.Settings`);
    ``on_session`` receives ``(request span, pyinstrument Session)`` on the span worker thread.
    """

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        *,
        settings: Settings | None = None,
        on_session: Callable[[ReadableSpan, Session], None] | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = settings if settings is not None else Settings.load(**overrides)
        if settings is not None and overrides:
            raise ValueError("pass either settings= or keyword settings to PystrumentSpanProcessor, not both")
        self._provider = tracer_provider
        self._tracer: trace.Tracer | None = None
        self._on_session = on_session
        self._worker = SpanWorker(QUEUE_SIZE)
        self._recordings: dict[int, Recording] = {}
        #: Child spans under way (span id -> their request and the stack they started on), to mark their end.
        self._children: dict[int, tuple[Recording, tuple[str, ...]]] = {}
        self._closed = not self.settings.enabled
        # Precise mode only (imported lazily, like pyinstrument's profiler): profilers left by spans ended elsewhere.
        self._stop_orphans: Callable[[], None] | None = None
        if self.settings.sampler == "pyinstrument":
            from pystrument._precise import stop_orphans

            self._stop_orphans = stop_orphans
        self._random = random.Random()
        # Settings read for every request, as plain attributes.
        self._interval_s = self.settings.interval_s
        self._min_span_s = self.settings.min_span_s
        self._precise = self.settings.sampler == "pyinstrument"
        self._profile_rate = self.settings.profile_rate
        self._keep_all = self.settings.keep_rate >= 1 and self.settings.span_budget >= 1
        self._keep_share = min(1.0, self.settings.keep_rate)
        # The cost budget (``_budget.py``): one bucket of CPU seconds for the sampler's ticks and the function spans,
        # filled at ``span_budget`` of a core; each kept request takes its estimated cost (``_afford``).
        self._budget = self.settings.span_budget
        if not self._closed:
            cost_budget.configure(self._budget)
        #: CPU seconds to turn one request into function spans: the span worker's measured building and emitting,
        #: plus the exporter's estimated encoding (moving average over the requests built; 0 until one was): the
        #: budget's estimate for the next. Per request rather than per span, which the request thread does not know:
        #: the budget holds on average over the endpoints, not for each.
        self.cost_per_request = 0.0
        #: CPU seconds pystrument spends on the request thread for one request (its hooks and marks): measured on one
        #: request in TIME_EVERY (a moving average), charged to the budget for every profiled request.
        self.hook_cost = 0.0
        self._timed_countdown = 0
        self._skip_in_debt = self._budget < 1 and self.settings.slow_ms > 0
        #: What a request left unprofiled by the spent budget says (made once: it is most requests under load).
        self._not_profiled = {
            DEGRADED: f"cpu_budget: PYSTRUMENT_SPAN_BUDGET={self._budget:g} of a core spent: not profiled"
        }
        # Attributes at their usual value are left out (each costs the exporter about 2 us to encode, on every request
        # span): the sampler unless precise, ``async`` unless true, the CPU time's source unless estimated.
        self._static_attributes: dict[str, Any] = {INTERVAL_MS: self.settings.interval_ms}
        if self._precise:
            self._static_attributes[SAMPLER] = self.settings.sampler
        if not self._closed:
            gc_pauses.install()

    # -- SpanProcessor ---------------------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self._closed:
            return
        try:
            if self._stop_orphans is not None:
                self._stop_orphans()
            self._start(span)
        except Exception:
            log_once("on_start", "pystrument: starting a request profile failed; the request runs unprofiled")

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None:
            return
        recording = self._recordings.pop(context.span_id, None)
        if recording is None:
            if self._children:
                child = self._children.pop(context.span_id, None)
                if child is not None:
                    self._end_child(*child, context.span_id, span.end_time)
            return
        try:
            if recording.active:  # the end() hook did not run: stop here, without the end attributes
                self._finish_recording(recording, None)
            keep = recording.keep
            if keep is None:
                keep = recording.keep = self._tail_keep(span, span.end_time or time.time_ns(), recording)
            registry.unregister(recording)
            if self._on_session is not None or (keep and recording.has_spans_to_build(self._min_span_s)):
                recording.ended = span
                self._worker.submit(partial(self._build, recording))
            # else no samples (a request shorter than the interval), or every call would be pruned (a request shorter
            # than the minimum span duration): no function spans, nothing for the worker
        except Exception:
            log_once("on_end", "pystrument: finishing a request profile failed; carrying on")

    @staticmethod
    def _end_child(owner: Recording, stack: tuple[str, ...], span_id: int, end_ns: int | None) -> None:
        """A child span ended: its caller's calls were still on the stack (the start's stack, marked again)."""
        try:
            owner.mark_again(stack, f"{END_CLAIM}{span_id:016x}", end_ns)
        except Exception:
            log_once("on_end.child", "pystrument: marking a child span's end failed; carrying on")

    def shutdown(self) -> None:
        self._closed = True
        self._worker.shutdown(timeout=5)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._worker.flush(timeout_millis / 1000)

    # -- internals -------------------------------------------------------------------------------------

    def _start(self, span: Span) -> None:
        """Profile ``span`` if it is a request span (SERVER, or a root or remote-parented span) that no request of
        this lane encloses. Runs on the request thread for every span: kept lean, work is left to the sampler."""
        if span.kind is not SpanKind.SERVER:
            parent = span.parent
            if parent is not None and not parent.is_remote:
                if registry.by_thread or registry.by_task:
                    self._mark_child(span)
                return
        thread_id = get_ident()
        if thread_id == self._worker.thread_id:
            return  # the span worker's own spans
        loop = _get_running_loop()
        task = current_task(loop) if loop is not None else None
        owner = registry.by_task.get(task) if task is not None else registry.by_thread.get(thread_id)
        context = span.get_span_context()
        if (
            owner is not None
            and owner.active
            and (owner.span_context.trace_id == context.trace_id or owner.encloses_caller())
        ):
            return  # nested in a request (of this trace, or a new root span inside it): one profile per lane at a time
        if self._profile_rate < 1 and self._random.random() >= self._profile_rate:
            return
        reserved = None
        if self._skip_in_debt:
            reserved = self._admit()
            if reserved < 0:
                # The cost budget is spent (in debt by at most one burst): this request is not profiled, and says so.
                # Not with PYSTRUMENT_SLOW_MS=0, where every request is slow and keeps its function spans whatever the
                # cost.
                set_valid_attributes(span, self._not_profiled)
                return
        timed = self._budget < 1 and self._timed_countdown <= 0
        cpu = 0.0
        if timed:
            self._timed_countdown = TIME_EVERY
            cpu = time.thread_time()
        else:
            self._timed_countdown -= 1
        install_hooks()
        if _propagation.follow_greenlets:
            follow_this_thread()
        recording = Recording(
            span,
            self._interval_s,
            self._precise,
            sys._getframe(2),
            span_context=context,
            thread_id=thread_id,
            task=task,
        )
        if task is not None and not self._precise:
            install_task_factory(loop)  # type: ignore[arg-type]
        if owner is not None and owner.active:
            self._finish_recording(owner, None)  # a stale request of another trace on this lane
        if reserved is not None:
            recording.reserved = reserved
        registry.register(recording)
        self._recordings[context.span_id] = recording
        # Run ``_finish_recording`` just before the span ends, while it still accepts attributes; someone else's
        # instance hook stays in the chain (read without ``span.__dict__``, which would make the instance a dict).
        previous = span.end
        if getattr(previous, "__func__", None) is not type(span).end:
            recording.previous_end = previous
        recording.on_ending = self._finish_recording
        span.end = recording.end_hook  # type: ignore[method-assign]
        if not self._precise:
            sampler = get_sampler()
            recording.ticks_at_start = sampler.ticks
            recording.stretched_at_start = sampler.stretched
            sampler.add(recording)
        if timed:
            recording.hook_cpu = time.thread_time() - cpu

    def _mark_child(self, span: Span) -> None:
        """A span starting inside a request (a query, an HTTP call, a template): mark the request's stack, so the
        function span of the call that started it claims it (``pystrument.child_span_ids``), and again at its end.

        Not the server instrumentation's own plumbing: an INTERNAL span of the very tracer that made the SERVER request
        span (ASGI's ``http send`` and ``http receive``) is started by that instrumentation's wrapper from below the
        app's frames, not by a call of the app; its mark walked the whole middleware stack twice per request (about
        30 us each on an event loop: two thirds of what a profiled FastAPI request cost pystrument). The server nests it
        by time, as it does any span without a claim."""
        owner = registry.lane_owner()
        if owner is None or owner.precise:
            return
        context = span.get_span_context()
        if owner.span_context.trace_id != context.trace_id:
            return
        if (
            span.kind is SpanKind.INTERNAL
            and span.instrumentation_scope is owner.span.instrumentation_scope
            and owner.span.kind is SpanKind.SERVER
        ):
            return
        span_id = format(context.span_id, "016x")
        cpu = time.thread_time() if owner.hook_cpu >= 0 else 0.0
        stack = owner.mark_here(sys._getframe(1), span_id, at_ns=span.start_time)
        if cpu:
            owner.hook_cpu += time.thread_time() - cpu
        if stack is not None:
            children = self._children
            if len(children) >= MAX_OPEN_CHILDREN:
                children.clear()
            children[context.span_id] = (owner, stack)

    def _finish_recording(self, recording: Recording, span: Span | None) -> None:
        """Stop recording and, when ``span`` is given (it is ending), set its attributes: on the request thread, for
        every profiled request (one method rather than several: this is most of pystrument's work per request)."""
        cpu = time.thread_time() if recording.hook_cpu >= 0 else 0.0
        ticks = 0
        stretched = False
        precise = recording.precise
        if not precise:
            sampler = get_sampler()
            sampler.remove(recording)
            ticks = sampler.ticks - recording.ticks_at_start
            stretched = sampler.stretched != recording.stretched_at_start
        recording.stop()
        if span is not None:
            keep = recording.keep = True if self._keep_all else self._tail_keep(span, time.time_ns(), recording)
            attributes = self._static_attributes.copy()
            attributes[SAMPLE_COUNT] = recording.samples_at_end
            attributes[FUNCTION_SPANS] = keep
            task = recording.task
            if task is not None or (len(recording.lanes) > 1 and recording.ran_async):
                attributes[ASYNC] = True
            cpu_time = recording.cpu_time
            if cpu_time is not None:
                attributes[CPU_TIME_MS] = round(cpu_time * 1e6) / 1000  # round(x, 3) formats the float: slower
                if recording.cpu_source != "thread":
                    attributes[CPU_TIME_SOURCE] = recording.cpu_source
            if task is not None:
                attributes[LOOP] = loop_id(recording.loop)
            loop_wait = recording.loop_wait()
            if loop_wait > 0:
                attributes[LOOP_WAIT_MS] = round(loop_wait * 1000, 3)
            starved = recording.starved(ticks) if not precise else ""
            if starved:
                attributes[STARVED] = starved
            if stretched or self._spent:
                attributes[DEGRADED] = self._degraded(stretched, keep)
            pauses = recording.gc_pauses
            if pauses:
                end = recording.end_perf or recording.start_perf
                attributes[GC_PAUSE_MS] = round(paused(pauses, recording.start_perf, end) * 1000, 3)
                attributes[GC_COLLECTIONS] = len(pauses)
            set_valid_attributes(span, attributes)
        if self._budget < 1:
            # The request thread's share (the hooks, the marks): measured on one request in TIME_EVERY, charged to all
            # (when the request started, ``_admit``, unless every request is slow).
            if cpu:
                cost = recording.hook_cpu + time.thread_time() - cpu
                previous = self.hook_cost
                self.hook_cost = cost if not previous else 0.9 * previous + 0.1 * cost
            if not self._skip_in_debt:
                cost_budget.spend(self.hook_cost + 0.5 * EXPORT_S_PER_SPAN, time.perf_counter())

    #: Whether the last ``_afford`` found the budget spent (a fast request then kept no function spans).
    _spent = False

    def _degraded(self, stretched: bool, keep: bool) -> str:
        """Why the cost budget made a request's profile coarser (``pystrument.profile.degraded``)."""
        reasons = []
        if stretched:
            reasons.append(f"samples up to {get_sampler().stretch}x further apart than the interval")
        if not keep and self._spent:
            reasons.append("no function spans")
        share = f"cpu_budget: PYSTRUMENT_SPAN_BUDGET={self._budget:g} of a core spent"
        return f"{share}: {', '.join(reasons)}" if reasons else share

    def _admit(self) -> float:
        """Admit a request starting now under the cost budget: -1 (not profiled) when the budget is spent (in debt);
        else the request's expected cost is taken from it at once: its hooks and request span attributes, and (a
        ``keep_rate`` share of) building and exporting its function spans. Returns that last part, which the request
        holds until it ends (``Recording.reserved``: given back if it has nothing to build).

        Charged at the end instead, every request starting while the bucket held anything was profiled: under load
        (FastAPI at 50 in flight) a fifth of them, each paying its hooks and samples, and most then found the bucket
        spent by the others and kept no function spans, paid for and thrown away."""
        build = self.cost_per_request * self._keep_share
        if not cost_budget.take(self.hook_cost + 0.5 * EXPORT_S_PER_SPAN + build, time.perf_counter()):
            return -1.0
        return build

    def _tail_keep(self, span: ReadableSpan, end_ns: int, recording: Recording) -> bool:
        """The tail rule: slow and failed requests keep function spans; of the rest a ``keep_rate`` share, as far as
        the span budget affords them (paid as the request started, ``_admit``, or now). A request with no span to
        build (shorter than the interval or than the minimum span duration) takes nothing from the budget."""
        rate = self.settings.keep_rate
        reserved = recording.reserved
        if not recording.has_spans_to_build(self._min_span_s):  # the rule's verdict, with nothing to pay for
            if reserved:
                cost_budget.spend(-reserved, time.perf_counter())  # given back
            return rate >= 1 or self._must_keep(span, end_ns) or self._random.random() < rate
        if reserved is not None:  # paid as it started (a keep_rate share of the cost: on average what is kept)
            self._spent = False
            return rate >= 1 or self._random.random() < rate or self._must_keep(span, end_ns)
        if rate < 1:
            if self._must_keep(span, end_ns):
                return self._afford(True)
            return self._random.random() < rate and self._afford(False)
        return self._afford(False) or (self._must_keep(span, end_ns) and self._afford(True))

    def _must_keep(self, span: ReadableSpan, end_ns: int) -> bool:
        """Slow or failed: the request keeps its function spans whatever the sampling and the budget say."""
        duration_ms = (end_ns - (span.start_time or end_ns)) / 1e6
        return duration_ms >= self.settings.slow_ms or self._failed(span)

    def _afford(self, must: bool) -> bool:
        """Take the estimated cost of building a request's spans from the budget; False (nothing taken) when it does
        not fit, unless the request ``must`` keep them (slow or failed: the budget goes into debt). Read and written
        without a lock by the request threads: a lost update only makes the estimate a little off."""
        budget = self._budget
        if budget >= 1:
            return True
        cost = self.cost_per_request
        # Up to one burst's worth is kept, or one request's cost if that is more (else such requests never fit).
        now = time.perf_counter()
        cost_budget.ceiling = cost
        tokens = cost_budget.left(now, cost)
        if must or tokens >= cost:
            cost_budget.spend(cost, now, cost)
            self._spent = False
            return True
        self._spent = True
        log_once(
            "span_budget",
            f"pystrument: profiling would take more than PYSTRUMENT_SPAN_BUDGET={budget:g} of a CPU core; fast "
            "requests keep no function spans while it is spent (slow and failed requests keep theirs)",
            exc_info=False,
            level=logging.INFO,
        )
        return False

    @staticmethod
    def _failed(span: ReadableSpan) -> bool:
        if span.status.status_code == StatusCode.ERROR:
            return True
        attributes = span.attributes
        if not attributes:
            return False
        status = attributes.get("http.response.status_code", attributes.get("http.status_code"))
        return isinstance(status, int) and status >= 500

    def _build(self, recording: Recording) -> None:
        """Build and emit the function spans of an ended request (on the span worker)."""
        span = recording.ended
        cpu = time.thread_time() if recording.keep and self._budget < 1 else None
        emitted = 0
        try:
            if span is None:
                return
            if self._on_session is not None:
                try:
                    self._on_session(span, _emit.session(recording))
                except Exception:
                    log_once("on_session", "pystrument: the on_session callback failed; carrying on")
            if not recording.keep:
                return
            if not self._paced:
                self._pace_worker()
            calls = _emit.build(recording, self.settings.min_span_s, self.settings.max_spans)
            if not calls:
                return
            bounds = (span.start_time, span.end_time) if span.start_time and span.end_time else None
            emitted = _emit.emit_calls(
                self._get_tracer(), recording.span_context, calls, recording.to_ns, self.settings.interval_ms, bounds
            )
        finally:
            recording.release()
            if cpu is not None:  # the budget's estimate of what a request costs to turn into spans and export them
                cost = time.thread_time() - cpu + emitted * EXPORT_S_PER_SPAN
                previous = self.cost_per_request
                self.cost_per_request = cost if not previous else 0.9 * previous + 0.1 * cost

    #: Whether the span worker's batching was set to the exporter's pace (``_pace_worker``, at the first build).
    _paced = False

    def _pace_worker(self) -> None:
        """Batch function spans for at most a tenth of the exporter's delay between exports: those built up to a
        batch period after their request span miss its export and make one more when requests are sparse (with
        exports every 100 ms, 0.35 more exports per request, each about 1.5 ms of the exporter's CPU, against the
        batching's 0.2 ms saved). At the SDK's default 5 s the worker keeps its half-second batches."""
        self._paced = True
        delay = _emit.export_delay(self._get_tracer())
        if delay is not None:
            self._worker.period = min(self._worker.period, delay / 10)

    def _get_tracer(self) -> trace.Tracer:
        if self._tracer is None:
            provider = self._provider if self._provider is not None else trace.get_tracer_provider()
            self._tracer = provider.get_tracer("pystrument", _VERSION)
        return self._tracer
