"""Issue #14, cost without losing fidelity: waiting lanes are recorded run-length style, the sampler slows down while
every request waits, one budget degrades profiles visibly, and function spans go to the processors finished."""

from __future__ import annotations

import itertools
import sys
import threading
import time
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import SpanKind
from pystrument import _emit, _lanes
from pystrument._budget import BURST_S, CostBudget
from pystrument._frames import WAIT
from pystrument._lanes import Lane, ThreadLane
from pystrument._recording import Recording
from pystrument._sampler import StackSampler
from pystrument._settings import Settings
from pystrument._tree import build_calls, collapse_library


def blocked_here(step: threading.Event, reached: threading.Event) -> None:
    reached.set()
    step.wait(10)


def slept(seconds: float) -> None:
    time.sleep(seconds)


def test_a_blocked_thread_extends_its_sample_instead_of_adding_one() -> None:
    """Ticks that find the thread in the same call at the same instruction record nothing new (no sample, no CPU
    clock read); the run is written out when the stack changes and counts as the samples it stands for, including
    ticks the sampler spaced further apart while nothing moved."""
    provider = TracerProvider()
    span = provider.get_tracer("t").start_span("req")
    step, reached, created, done = threading.Event(), threading.Event(), threading.Event(), threading.Event()
    box: dict[str, Recording] = {}

    def request_thread() -> None:
        box["rec"] = Recording(span, 0.005, False, sys._getframe())
        created.set()
        blocked_here(step, reached)
        done.wait(10)  # alive until the lane closes: its CPU clock is read then

    thread = threading.Thread(target=request_thread)
    thread.start()
    created.wait(5)
    rec = box["rec"]
    sampler = StackSampler()
    sampler._active[id(rec)] = rec
    t0 = rec.start_perf
    reached.wait(5)
    moved = []
    for dt in (0.005, 0.010, 0.015, 0.025, 0.035):  # the last two 10 ms apart: the sampler slowed down
        sampler.sample_once(t0 + dt)
        moved.append(sampler.moved)
    assert moved == [True, False, False, False, False]
    (lane,) = rec.lanes
    assert isinstance(lane, ThreadLane)
    assert len(lane.samples) == 1 and lane.sample_count() == 7  # 5 ms apart, as if every interval had been sampled
    step.set()
    rec.lanes[0].close(t0 + 0.040)
    rec.stop()
    done.set()
    thread.join(5)
    assert lane.sample_count() >= 7
    records = lane.records()
    calls = collapse_library(build_calls(records, lane.start))
    (blocked,) = [c for c in calls if c.name == "blocked_here"]
    assert blocked.samples >= 7
    assert blocked.end - t0 >= 0.035 - 1e-9
    # The blocked time reads as waiting: the thread's CPU clock stood still.
    assert sum(c.wait_time for c in blocked.walk()) > 0.02


def test_an_unchanged_task_stack_is_one_sample_standing_for_several() -> None:
    lane = Lane("task", 100.0)
    waiting = ("app\x00/app/x.py\x001", "[await]")
    for k in range(1, 6):
        lane.record(100.0 + 0.005 * k, waiting)
    lane.record(100.035, waiting)  # 10 ms later: two samples' worth
    assert len(lane.samples) == 1 and lane.sample_count() == 7 and lane.still
    # One record standing for the seven samples: the call tree counts them all and takes all of their time.
    records = lane.records()
    assert len(records) == 1 and sum(dt for _, dt in records) == pytest.approx(0.035)
    (app,) = build_calls(records, 100.0)
    assert (app.samples, app.time, app.await_time) == (7, pytest.approx(0.035), pytest.approx(0.035))
    lane.record(100.040, ("app\x00/app/x.py\x001",))
    assert not lane.still and lane.sample_count() == 8


def test_the_run_after_a_slowed_wait_starts_when_the_thread_resumed() -> None:
    """Between the last unchanged tick and the next one 10 ms later the thread resumed and ran 2 ms: the blocked
    stack's wait runs on to the middle of the 8 ms it could have resumed in; the new stack gets the rest."""
    lane = ThreadLane("", 100.0, 0, sys._getframe())
    lane._clock = 0
    readings = iter([0.0, 0.002, 0.002])
    lane._read_clock = lambda: next(readings)  # type: ignore[method-assign]
    blocked, running = ("view\x00/app/v.py\x001", "sleep\x00/app/v.py\x002"), ("view\x00/app/v.py\x001",)
    lane._same_leaf = False
    lane.record(100.005, blocked)
    lane._same_leaf = True
    lane.record(100.010, blocked)
    lane._same_leaf = False
    lane.record(100.020, running)
    times = [round(t - 100.0, 6) for t, _ in lane.samples]
    assert times == [0.005, 0.010, 0.014, 0.020]
    records = lane.records()
    assert records[-1] == ([*running], pytest.approx(0.002)) and records[-2] == ([*running, WAIT], pytest.approx(0.004))


@pytest.mark.parametrize(("on_a_core", "resumed"), [(1, 0.058), (2, 0.049)])
def test_a_wait_closing_on_its_own_thread_ends_when_the_thread_resumed(
    on_a_core: int, resumed: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request ends (on its own thread, running then) 20 ms after the last tick that saw it blocked, having run
    2 ms of CPU since. Put on a core once since that tick (schedstat), it ran without a break since it woke: the wait
    ends 2 ms before the end. Put on a core twice (preempted, or blocked again): the middle of the 18 ms it could have
    resumed in."""
    lane = ThreadLane("", 100.0, threading.get_ident(), sys._getframe())
    lane._clock = 0
    lane._sched = 99  # any open schedstat file: the readings below stand for it
    readings = iter([0.001, 0.003])  # the CPU clock at the first sample, then at the end
    lane._read_clock = lambda: next(readings)  # type: ignore[method-assign]
    monkeypatch.setattr(_lanes, "read_schedstat", lambda fd: (0.001, 0.0, 7))  # at the unchanged ticks
    monkeypatch.setattr(_lanes, "sampler_thread", [threading.get_ident()])
    blocked = ("view\x00/app/v.py\x001", "sleep\x00/app/v.py\x002")
    lane._same_leaf = False
    lane.record(100.005, blocked)
    lane._same_leaf = True
    lane.record(100.010, blocked)
    lane.record(100.040, blocked)  # the sampler slowed down meanwhile (still)
    monkeypatch.setattr(_lanes, "read_schedstat", lambda fd: (0.003, 0.0, 7 + on_a_core))  # at the end
    lane.close(100.060)
    times = [round(t - 100.0, 6) for t, _ in lane.samples]
    assert times == [0.005, 0.040, resumed]
    records = lane.records()
    assert sum(dt for stack, dt in records if stack[: len(blocked)] == list(blocked)) == pytest.approx(resumed)


def test_a_request_gets_its_lane_at_its_first_sample_and_none_if_it_ends_before() -> None:
    """Most requests end before their first sample: the request thread makes no lane for them (only the frames it
    started below and its clocks). A request still running at its first sample gets its main lane then, as it would
    have had from the start: timed from the request's start, its CPU clock read then, its stack below the frames the
    request started under."""
    provider = TracerProvider()
    tracer = provider.get_tracer("t")
    short = Recording(tracer.start_span("short"), 0.005, False, sys._getframe())
    assert short.lanes == []
    short.stop()
    assert short.lanes == [] and short.samples_at_end == 0 and short.cpu_time is not None

    step, reached, created = threading.Event(), threading.Event(), threading.Event()
    box: dict[str, Recording] = {}

    def request_thread() -> None:
        box["rec"] = Recording(tracer.start_span("long"), 0.005, False, sys._getframe())
        created.set()
        blocked_here(step, reached)
        box["rec"].stop()

    thread = threading.Thread(target=request_thread)
    thread.start()
    try:
        created.wait(5)
        reached.wait(5)
        rec = box["rec"]
        assert rec.lanes == []
        now = time.perf_counter()
        rec.sample(sys._current_frames(), now)
        (lane,) = rec.lanes
        assert lane.main and lane.start == rec.start_perf and lane.samples[0][0] == now
        names = [frame.split("\x00")[0] for frame in lane.samples[0][1]]
        assert names[0] == "blocked_here" and names[-1] == "Condition.wait", names  # below the request's frame
    finally:
        step.set()
        thread.join(5)
    assert lane.end is not None and rec.samples_at_end == 1


def test_the_sampler_backs_off_while_every_thread_is_blocked_and_parks_without_requests(helpers: Any) -> None:
    """Ticks come one interval apart while a thread moves, two while every profiled thread is blocked as before; once
    no request is active the thread parks at the next tick (no ticking on while idle) and wakes for the next one."""
    provider = TracerProvider()
    step, reached, created = threading.Event(), threading.Event(), threading.Event()
    box: dict[str, Recording] = {}

    def request_thread() -> None:
        box["rec"] = Recording(provider.get_tracer("t").start_span("req"), 0.005, False, sys._getframe())
        created.set()
        blocked_here(step, reached)

    thread = threading.Thread(target=request_thread)
    thread.start()
    created.wait(5)
    reached.wait(5)
    rec = box["rec"]
    sampler = StackSampler(native=False)  # the Python ticks (the compiled helper's: test_native.py)
    times = helpers.tick_times(sampler)
    sampler.add(rec)
    deadline = time.monotonic() + 10
    while len(times) < 6 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(times) >= 6
    assert not sampler.moved  # blocked in the same call: the pace slowed down
    assert max(b - a for a, b in itertools.pairwise(times[2:])) >= 1.5 * rec.interval  # two intervals apart
    rec.active = False
    sampler.remove(rec)
    while not sampler._idle and time.monotonic() < deadline:
        time.sleep(0.005)
    assert sampler._idle
    parked_at = len(times)
    time.sleep(0.05)
    assert len(times) == parked_at  # parked: no ticks without a request
    step.set()
    thread.join(5)
    sampler.stop()


def test_the_budget_bucket_fills_at_its_share_and_bounds_its_debt() -> None:
    budget = CostBudget(0.05)
    now = budget.at
    assert budget.left(now) == pytest.approx(0.05 * BURST_S)
    assert budget.spend(1.0, now) == pytest.approx(-0.05 * BURST_S)  # one burst of debt at most
    assert budget.left(now + 1.0) == pytest.approx(0.0, abs=1e-9)
    assert CostBudget(1).spend(5.0, now) > 0  # 1 = no limit


def test_the_bucket_admits_a_cost_unless_in_debt() -> None:
    budget = CostBudget(0.05)
    now = budget.at
    assert budget.take(0.08, now)  # into debt by taking it
    assert budget.left(now) == pytest.approx(-0.03)
    assert not budget.take(0.001, now)  # in debt: nothing taken
    assert budget.left(now) == pytest.approx(-0.03)
    assert budget.take(0.001, now + 1.0)  # refilled at 0.05 a second


def test_bad_budget_names_the_fix() -> None:
    with pytest.raises(ValueError, match=r"PYSTRUMENT_SPAN_BUDGET.*share of one CPU core"):
        Settings.load({"PYSTRUMENT_SPAN_BUDGET": "1.5"})


def test_function_spans_go_to_the_processors_finished_with_the_same_shape(tracing: Any) -> None:
    """The SDK tracer with its default sampler and exporting processors: function spans skip the live span (no lock,
    no validation), with the parent, times, attributes, resource and scope the live span would have given them."""
    t = tracing(min_span_ms=0)
    tracer = t.provider.get_tracer("pystrument")
    assert _emit.direct(tracer) is not None
    with t.tracer.start_as_current_span("GET /x", kind=SpanKind.SERVER):
        slept(0.03)
    (request,) = t.requests()
    spans = t.functions(request)
    assert spans and all(s.parent is not None and s.parent.span_id == request.context.span_id for s in spans)
    for s in spans:
        assert s.kind == SpanKind.INTERNAL and s.context.trace_id == request.context.trace_id
        assert s.start_time is not None and s.end_time is not None and s.start_time <= s.end_time
        assert s.resource is request.resource and s.instrumentation_scope.name == "pystrument"
        assert s.attributes["pystrument.synthetic"] is True


def test_a_custom_sampler_or_processor_keeps_the_live_span_path() -> None:
    class Counting(SimpleSpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:  # does something at the start
            pass

    plain = TracerProvider()
    plain.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    assert _emit.direct(plain.get_tracer("p")) is not None
    custom = TracerProvider(sampler=ParentBased(ALWAYS_ON, local_parent_sampled=ParentBased(ALWAYS_ON)))
    assert _emit.direct(custom.get_tracer("p")) is None
    starting = TracerProvider()
    starting.add_span_processor(Counting(InMemorySpanExporter()))
    assert _emit.direct(starting.get_tracer("p")) is None
