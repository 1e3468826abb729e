"""The request thread's fast path: what it skips must not change what gets recorded."""

from __future__ import annotations

import gc
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from pystrument._frames import EAGER_ANCHORS, eager_chain, frame_chain, frame_info, stack_below
from pystrument._recording import registry


def _depth(n: int, fn: Any) -> Any:
    return _depth(n - 1, fn) if n else fn(sys._getframe())


def test_eager_chain_is_frame_chain_unrolled() -> None:
    for depth in (0, 3, 20):  # short stacks may fall back to the loop, long ones take the unrolled path
        chain, looped = _depth(depth, lambda frame: (eager_chain(frame), frame_chain(frame, EAGER_ANCHORS)))
        assert chain == looped
        assert chain[-1] is not None and len(chain) <= EAGER_ANCHORS
    assert len(_depth(20, eager_chain)) == EAGER_ANCHORS


CALLERS = """
def caller_one(fn):
    return fn()
def caller_two(fn):

    return fn()
"""


def test_call_sites_cached_by_offset_keep_each_callers_line() -> None:
    # Two callers whose call instruction sits at the same offset but on different lines: the per-code offset cache
    # must not hand one caller's line to the other.
    namespace: dict[str, Any] = {}
    exec(compile(CALLERS, "/app/callers.py", "exec"), namespace)
    seen: list[tuple[str, ...] | None] = []

    def leaf() -> None:
        frame = sys._getframe()
        anchor = frame.f_back.f_back  # type: ignore[union-attr]  # the test function's frame
        assert anchor is not None
        seen.append(stack_below(frame, frozenset({id(anchor)})))
        seen.append(stack_below(frame, frozenset()))  # no anchor on the stack: not the request's

    for _ in range(2):  # the second round reads the caches
        namespace["caller_one"](leaf)
        namespace["caller_two"](leaf)
    one, none, two, _, one_again, _, two_again, _ = seen
    assert none is None
    assert one is not None and two is not None
    assert one[0].startswith("caller_one\x00/app/callers.py\x002\x01s") and two[0].startswith("caller_two\x00")
    assert one[1].split("\x00")[0].endswith("leaf") and one[1].endswith("\x01s3"), one
    assert two[1].endswith("\x01s6"), two
    assert (one_again, two_again) == (one, two)
    assert frame_info(leaf.__code__, None).endswith("\x01s0")


def test_short_requests_skip_the_span_worker_and_keep_their_attributes(tracing: Any) -> None:
    t = tracing(sampler="default")
    jobs: list[Any] = []
    submit = t.processor._worker.submit
    t.processor._worker.submit = lambda job: jobs.append(job) or submit(job)  # type: ignore[method-assign]
    tracer = t.tracer
    for _ in range(20):
        with tracer.start_as_current_span("GET /quick", kind=SpanKind.SERVER):
            pass
    requests = t.requests()
    assert len(requests) == 20
    # Well under one interval: no sample (and shorter than the minimum span duration in any case), so nothing to
    # build; the request span still says what was done.
    unsampled = [s for s in requests if s.attributes and s.attributes["pystrument.profile.samples"] == 0]
    assert unsampled and not jobs
    for span in requests:
        attributes = span.attributes or {}
        assert attributes["pystrument.profile.interval_ms"] == 5.0
        assert attributes["pystrument.function_spans"] is True
        # The thread's CPU clock (the usual source and sampler, and a sync request, are not spelled out).
        assert attributes["pystrument.cpu_time_ms"] >= 0
        assert not {"pystrument.cpu_time_source", "pystrument.profile.sampler", "pystrument.async"} & set(attributes)
    assert not registry.by_thread and "end" not in vars(requests[0])
    assert not t.processor._recordings


def test_someone_elses_end_hook_stays_in_the_chain(tracing: Any) -> None:
    t = tracing(sampler="default")
    calls: list[Any] = []
    span = t.tracer.start_span("hooked")  # not a request: give it one of ours after an instance hook of theirs
    span.end()
    original_start = t.processor._start

    def start_with_their_hook(span: Any) -> None:
        their_end = span.end

        def theirs(end_time: int | None = None) -> None:
            calls.append(end_time)
            their_end(end_time)

        span.end = theirs
        original_start(span)

    t.processor._start = start_with_their_hook  # type: ignore[method-assign]
    with t.tracer.start_as_current_span("GET /hooked", kind=SpanKind.SERVER):
        time.sleep(0.02)
    (request,) = t.requests()
    assert calls == [None]
    assert (request.attributes or {})["pystrument.profile.samples"] >= 1


def test_owner_by_trace_finds_the_request_from_an_unattributed_thread(tracing: Any) -> None:
    t = tracing(sampler="default")
    found: list[Any] = []
    with t.tracer.start_as_current_span("GET /fanout", kind=SpanKind.SERVER) as span:
        context = trace.set_span_in_context(span)

        def elsewhere() -> None:  # a thread the request did not hand work to, but running in its trace
            token = otel_context.attach(context)
            try:
                found.append(registry.owner())
            finally:
                otel_context.detach(token)
            found.append(registry.owner())  # outside the trace: nobody's

        worker = threading.Thread(target=elsewhere)
        worker.start()
        worker.join(5)
    (owner, nobody) = found
    assert owner is not None and owner.span_context.trace_id == span.get_span_context().trace_id
    assert nobody is None


def test_requests_shorter_than_the_minimum_span_skip_the_span_worker_unless_something_is_kept(tracing: Any) -> None:
    """Issue #14: a request shorter than ``PYSTRUMENT_MIN_SPAN_MS`` has only calls shorter than that, all pruned: its
    samples go nowhere, and the span worker is not woken for them (a cold wake-up and build of 100-300 us). A request
    as short that started a child span (a call claims it) still goes, and so does a longer one."""
    t = tracing(sampler="default", min_span_ms=60)
    jobs: list[Any] = []
    submit = t.processor._worker.submit
    t.processor._worker.submit = lambda job: jobs.append(job) or submit(job)  # type: ignore[method-assign]
    tracer = t.tracer

    def view(seconds: float, query: bool = False) -> None:
        if query:
            with tracer.start_as_current_span("SELECT 1", kind=SpanKind.CLIENT):
                time.sleep(seconds)
        else:
            time.sleep(seconds)

    with tracer.start_as_current_span("GET /short", kind=SpanKind.SERVER):
        view(0.03)
    short = len(jobs)
    with tracer.start_as_current_span("GET /query", kind=SpanKind.SERVER):
        view(0.03, query=True)
    query = len(jobs) - short
    with tracer.start_as_current_span("GET /long", kind=SpanKind.SERVER):
        view(0.1)
    long = len(jobs) - short - query
    by_name = {s.name: s for s in t.requests()}
    assert by_name["GET /short"].attributes["pystrument.profile.samples"] >= 2  # type: ignore[index]
    assert (short, query, long) == (0, 1, 1)
    assert not t.functions(by_name["GET /short"]) and not t.functions(by_name["GET /query"])
    assert [s.name.rsplit(".", 1)[-1] for s in t.functions(by_name["GET /long"])] == ["view"]


def test_a_profiled_request_leaves_no_cycle_to_keep_its_locals(tracing: Any, tmp_path: Path) -> None:
    """When a profiled request ends, what its code held is freed at once, as without pystrument, not when a garbage
    collection finds a cycle: the template wrapper held its own frame in its locals, and so every caller's frame and
    locals above it (the request's objects, the hooks' frames, the recording). A profiled template page set off three
    times the young-generation collections of an unprofiled one, and its request thread ran 280k instructions more of
    them."""
    flask = pytest.importorskip("flask")
    flask_instrumentation = pytest.importorskip("opentelemetry.instrumentation.flask")
    (tmp_path / "page.html").write_text("<p>{{ n }}</p>")
    t = tracing(keep_rate=0)  # no function spans: nothing is queued for the span worker
    app = flask.Flask("cycles", template_folder=str(tmp_path))

    class Payload:
        pass

    held: list[weakref.ref[Any]] = []

    @app.get("/page")
    def page() -> str:
        payload = Payload()
        held.append(weakref.ref(payload))
        return str(flask.render_template("page.html", n=len(held)))

    flask_instrumentation.FlaskInstrumentor().instrument_app(app, tracer_provider=t.provider)
    client = app.test_client()
    gc.collect()
    gc.disable()
    try:
        for _ in range(6):
            assert client.get("/page").status_code == 200
        locals_left = sum(r() is not None for r in held)
    finally:
        gc.enable()
        flask_instrumentation.FlaskInstrumentor().uninstrument_app(app)
    assert len(t.requests()) == 6
    assert locals_left == 0, f"{locals_left} of 6 requests' locals still alive"


def waited_20ms() -> None:
    time.sleep(0.02)


@pytest.mark.parametrize("delay_ms", [100, 5000])
def test_function_spans_go_out_in_their_request_spans_export(delay_ms: int) -> None:
    """The span worker batches for at most a tenth of the exporter's delay: with exports every 100 ms, requests 30 ms
    apart each have their function spans in the export that carries their request span (with half-second batches a
    third of them made one export more). At the SDK's default 5 s the worker keeps its half-second batches."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from pystrument._processor import PystrumentSpanProcessor

    exports: list[list[Any]] = []

    class Recorded(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            exports.append(list(spans))
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    processor = PystrumentSpanProcessor(provider, min_span_ms=0)
    provider.add_span_processor(processor)
    provider.add_span_processor(BatchSpanProcessor(Recorded(), schedule_delay_millis=delay_ms))
    tracer = provider.get_tracer("test")
    try:
        for i in range(20):
            with tracer.start_as_current_span(f"GET /{i}", kind=SpanKind.SERVER):
                waited_20ms()
            time.sleep(0.03)
        assert processor._worker.period == pytest.approx(min(0.5, delay_ms / 10_000))
        if delay_ms > 1000:
            return
        processor.force_flush()
        provider.force_flush()
        export_of = {s.context.span_id: n for n, batch in enumerate(exports) for s in batch}
        requests = [s for batch in exports for s in batch if s.kind is SpanKind.SERVER]
        functions = [s for batch in exports for s in batch if s.name.endswith("waited_20ms")]
        assert len(requests) == 20 and len(functions) == 20
        apart = [
            f for f in functions if f.parent is not None and export_of[f.context.span_id] != export_of[f.parent.span_id]
        ]
        # Built within milliseconds, they miss an export only when its timer falls in between (0.5 s batches: 17 of 20).
        assert len(apart) <= 6, f"{len(apart)} of 20 requests had their function spans in another export"
    finally:
        provider.shutdown()


def test_a_frame_chain_read_mid_teardown_skips_the_sample_without_an_error(caplog: Any) -> None:
    """CPython 3.11 once handed another thread's ``f_back`` as a ``str`` (the wagtail corpus app under load: a frame
    torn down while a finalizer let the sampler run). The walk raises ``TornStack`` and the sampler skips that request
    this tick, as during a collection, instead of logging an SDK error."""
    from types import SimpleNamespace

    from pystrument._frames import TornStack
    from pystrument._sampler import StackSampler

    torn = SimpleNamespace(f_code=sys._getframe().f_code, f_back="not a frame", f_lasti=0)
    with pytest.raises(TornStack):
        stack_below(torn, frozenset())  # type: ignore[arg-type]

    class Request:
        interval = 0.005
        active = True
        sampled = 0

        def sample(self, frames: Any, now: float) -> bool:
            self.sampled += 1
            stack_below(torn, frozenset())  # type: ignore[arg-type]
            return True

    request, sampler = Request(), StackSampler(native=False)
    sampler._active[id(request)] = request
    with caplog.at_level("DEBUG", logger="pystrument"):
        sampler.sample_once()
    assert request.sampled == 1 and not sampler.moved
    assert not [r for r in caplog.records if "sampling a request failed" in r.getMessage()]
