"""Turn a finished recording into function-call spans, off the request thread.

``build`` runs the pure pipeline (lanes -> frame records -> call trees -> collapse -> attach -> prune);
``emit_calls`` creates the spans with explicit times, parented through the request span's context.
Both run on the span worker (``_worker.py``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind
from pyinstrument.frame_ops import FrameRecordType
from pyinstrument.session import Session

from pystrument._frames import END_CLAIM
from pystrument._gc import unmarked, with_pauses
from pystrument._lanes import thread_name
from pystrument._recording import Recording
from pystrument._tree import Call, attach_lanes, build_calls, collapse_library, cover_claims, prune

# Attribute names (OTel stable code attributes, then pystrument's own).
CODE_FUNCTION = "code.function.name"
CODE_FILE = "code.file.path"
CODE_LINE = "code.line.number"
SYNTHETIC = "pystrument.synthetic"
SAMPLES = "pystrument.samples"
SELF_TIME_MS = "pystrument.self_time_ms"
AWAIT_TIME_MS = "pystrument.await_time_ms"
WAIT_TIME_MS = "pystrument.wait_time_ms"
#: Self time in which the call's thread was ready to run but had no CPU core (a machine busier than its cores).
CPU_WAIT_MS = "pystrument.cpu_wait_ms"
LIBRARY = "pystrument.library"
PRECISION_MS = "pystrument.time_precision_ms"
THREAD = "pystrument.thread"
CPU_TIME_MS = "pystrument.cpu_time_ms"
CPU_TIME_SOURCE = "pystrument.cpu_time_source"
INTERVAL_MS = "pystrument.profile.interval_ms"
SAMPLER = "pystrument.profile.sampler"
SAMPLE_COUNT = "pystrument.profile.samples"
FUNCTION_SPANS = "pystrument.function_spans"
ASYNC = "pystrument.async"
GC_PAUSE_MS = "pystrument.gc.pause_ms"
GC_COLLECTIONS = "pystrument.gc.collections"
#: On a function span: the real spans (DB, HTTP, ...) that started while it was the innermost call on the request's
#: stack, as 16-hex span ids: where they belong, as the request's own code saw it (not guessed from times).
CHILD_SPAN_IDS = "pystrument.child_span_ids"
#: On a function span rendering a template: the template's name.
TEMPLATE = "pystrument.template"
#: Time a coroutine was ready to run but another task held the event loop (function spans and the request span).
LOOP_WAIT_MS = "pystrument.loop_wait_ms"
#: On an event-loop request span: which loop ran it (``host:pid:loop``), to find who held it.
LOOP = "pystrument.loop"
#: On a request span that could not be sampled: why.
STARVED = "pystrument.profile.starved"
#: On a request span whose profile the cost budget (``PYSTRUMENT_SPAN_BUDGET``) made coarser: how and why.
DEGRADED = "pystrument.profile.degraded"


def build(recording: Recording, min_duration: float, max_calls: int) -> list[Call]:
    """The request's call tree, ready to emit: per-lane timelines, library chains collapsed, worker lanes
    nested under the call that waited for them, then pruned."""
    main: list[Call] = []
    others: list[tuple[str, list[Call]]] = []
    for lane in recording.lanes:
        records = with_pauses(lane.records(), lane.start, lane.end, recording.gc_pauses)
        calls = collapse_library(build_calls(records, lane.start, "" if lane.main else lane.name))
        if lane.bridge:  # framework plumbing between the waiting thread and the code it calls back: no news
            calls = [call for call in calls if any(not c.library or c.template for c in call.walk())]
        if lane.main:
            main.extend(calls)
        else:
            others.append((lane.token, calls))
    calls = prune(attach_lanes(main, others), min_duration, max_calls)
    # The call that started a child span was on the stack from its start to its end: whatever moved its claim since
    # (a library chain absorbed into its owner, a short call pruned into its caller), the claimer covers both.
    spans: dict[str, tuple[float, float]] = {}
    for lane in recording.lanes:
        for t, _, claim in lane.marks or ():
            if claim:
                if claim.startswith(END_CLAIM):
                    claim = claim[len(END_CLAIM) :]
                start, end = spans.get(claim, (t, t))
                spans[claim] = (min(start, t), max(end, t))
    if spans:
        cover_claims(calls, spans)
    return calls


def session(recording: Recording) -> Session:
    """The request's samples as a pyinstrument ``Session`` (each lane under its own root frame), so
    pyinstrument's processors and renderers (console, HTML, speedscope) apply."""
    root = f"{recording.name}\x00<request>\x000"
    records: list[FrameRecordType] = []
    for lane in recording.lanes:
        lane_root = f"{lane.name or thread_name(getattr(lane, 'thread_id', 0))}\x00<{lane.kind}>\x000"
        lane_records = with_pauses(lane.records(), lane.start, lane.end, recording.gc_pauses)
        records.extend(([root, lane_root, *unmarked(stack)], dt) for stack, dt in lane_records)
    end = recording.end_perf if recording.end_perf is not None else time.perf_counter()
    return Session(
        frame_records=records,
        start_time=recording.to_ns(recording.start_perf) / 1e9,
        duration=end - recording.start_perf,
        min_interval=recording.interval,
        max_interval=recording.interval,
        sample_count=recording.sample_count(),
        start_call_stack=[root],
        target_description=f"pystrument request {recording.name}",
        cpu_time=recording.cpu_time or 0.0,
        sys_path=list(sys.path),
        sys_prefixes=Session.current_sys_prefixes(),
    )


#: Span processors known to do nothing when a span starts: with only these, function spans (whose start and end are
#: known at once) go to the processors finished, without the SDK's live span (``direct``).
_IDLE_ON_START: tuple[Any, ...] = (
    sdk_trace.SpanProcessor.on_start,
    BatchSpanProcessor.on_start,
    SimpleSpanProcessor.on_start,
)


def direct(tracer: trace.Tracer) -> Any:
    """The SDK tracer's span processor if function spans can be handed to it finished (``ReadableSpan`` straight to
    ``on_end``): the SDK's tracer, its default parent-based sampler (a child of a sampled span is sampled) and
    processors that do nothing at a span's start (the exporting ones; pystrument's own ignores spans of its worker).
    That skips the live span's lock, attribute validation and sampling, a third of a function span's cost. None: go
    through ``start_span``."""
    if type(tracer) is not sdk_trace.Tracer or not getattr(getattr(tracer, "_tracer_config", None), "is_enabled", True):
        return None
    sampler = tracer.sampler
    if type(sampler) is not ParentBased or getattr(sampler, "_local_parent_sampled", None) is not ALWAYS_ON:
        return None
    processor = tracer.span_processor
    for each in getattr(processor, "_span_processors", None) or ():
        on_start = getattr(type(each), "on_start", None)
        if on_start not in _IDLE_ON_START and type(each).__module__ != "pystrument._processor":
            return None
    return processor


def export_delay(tracer: trace.Tracer) -> float | None:
    """Seconds between the scheduled exports of the SDK tracer's batch span processors (the shortest; None: none
    found). Read from the processor (``schedule_delay_millis``, on its inner batch processor since SDK 1.28)."""
    processor = getattr(tracer, "span_processor", None)
    delays = []
    for each in getattr(processor, "_span_processors", None) or ():
        if isinstance(each, BatchSpanProcessor):
            inner = getattr(each, "_batch_processor", None)
            millis = getattr(each, "schedule_delay_millis", None) or getattr(inner, "_schedule_delay_millis", None)
            if isinstance(millis, int | float) and millis > 0:
                delays.append(millis / 1000)
    return min(delays) if delays else None


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
    processor = direct(tracer)
    if processor is not None:
        resource = tracer.resource  # type: ignore[attr-defined]
        scope = tracer._instrumentation_scope  # type: ignore[attr-defined]
        new_id = tracer.id_generator.generate_span_id  # type: ignore[attr-defined]
        trace_id, flags, state = parent.trace_id, parent.trace_flags, parent.trace_state
    stack: list[tuple[SpanContext, list[Call]]] = [(parent, calls)]
    while stack:
        parent_context, batch = stack.pop()
        context = trace.set_span_in_context(NonRecordingSpan(parent_context)) if processor is None else None
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
            if call.wait_time > 0:
                attributes[WAIT_TIME_MS] = round(call.wait_time * 1000, 3)
            if call.queue_time > 0:
                attributes[CPU_WAIT_MS] = round(call.queue_time * 1000, 3)
            if call.loop_wait_time > 0:
                attributes[LOOP_WAIT_MS] = round(call.loop_wait_time * 1000, 3)
            if call.claims:
                children = [claim for claim in call.claims if len(claim) == 16]
                if children:
                    attributes[CHILD_SPAN_IDS] = tuple(children)
            if call.template:
                attributes[TEMPLATE] = call.template
            if call.pause:
                attributes[GC_PAUSE_MS] = round(call.pause * 1000, 3)
            if call.lane:
                attributes[THREAD] = call.lane
            if processor is not None:
                span_context = SpanContext(trace_id, new_id(), False, flags, state)
                processor.on_end(
                    sdk_trace.ReadableSpan(
                        call.name,
                        span_context,
                        parent_context,
                        resource,
                        attributes,
                        kind=SpanKind.INTERNAL,
                        start_time=start,
                        end_time=end,
                        instrumentation_scope=scope,
                    )
                )
                emitted += 1
                if call.children:
                    stack.append((span_context, call.children))
                continue
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
