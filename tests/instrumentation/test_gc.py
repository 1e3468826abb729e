"""Garbage-collection pauses: recorded through ``gc.callbacks``, carried by the requests they stopped, and shown in
their timelines as calls of their own, in both samplers."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.trace import SpanKind
from pystrument._frames import AWAIT
from pystrument._gc import MIN_PAUSE, GcPauses, pause_frame, paused, with_pauses
from pystrument._lanes import Lane


def GC2(start: float, length: float) -> str:
    return pause_frame(2, start, length)


INTERVAL = 0.005


def total(records: list[Any]) -> float:
    return sum(dt for _, dt in records)


def test_a_pause_between_two_samples_sits_below_the_frames_they_share() -> None:
    records = [(["app", "view", "load"], 0.01), (["app", "view", "crunch"], 0.2)]
    out = with_pauses(records, 0.0, None, [(0.05, 0.15, 2)])
    assert out == [
        (["app", "view", "load"], 0.01),
        (["app", "view", "load"], pytest.approx(0.04)),  # the earlier sample's stack runs up to the pause
        (["app", "view", GC2(0.05, 0.1)], pytest.approx(0.1)),
        (["app", "view", "crunch"], pytest.approx(0.06)),
    ]
    assert total(out) == pytest.approx(total(records))


def test_records_without_a_pause_stay_as_they_are() -> None:
    records = [(["a"], 0.01), (["a", "b"], 0.01)]
    assert with_pauses(records, 0.0, 1.0, []) == records
    assert with_pauses(records, 0.0, 1.0, [(0.5, 0.6, 2)]) == [
        *records,
        (["a", "b"], pytest.approx(0.48)),
        (["a", "b", GC2(0.5, 0.1)], pytest.approx(0.1)),
    ]


def test_an_await_marker_is_not_a_parent_of_the_pause() -> None:
    records = [(["app", "handler", AWAIT], 0.01), (["app", "handler", AWAIT], 0.1)]
    out = with_pauses(records, 0.0, None, [(0.02, 0.08, 1)])
    assert (["app", "handler", pause_frame(1, 0.02, 0.06)], pytest.approx(0.06)) in out
    assert total(out) == pytest.approx(total(records))


def test_a_pause_inside_a_run_of_ticks_keeps_the_run_s_stack_on_both_sides() -> None:
    """A task awaited in the same call for ten ticks after running in it once: a pause late in that wait cuts the
    run, and the time before the pause is still awaited (every tick saw it), not the earlier running sample's. Its
    ten samples are counted once."""
    from pystrument._frames import WAIT, RunLength
    from pystrument._lanes import _append
    from pystrument._tree import build_calls

    running, waiting = ["app", "run_sync", "start"], ["app", "run_sync", AWAIT]
    records = [(running, 0.002), (RunLength(waiting, 10), 0.05)]
    out = with_pauses(records, 0.0, None, [(0.045, 0.046, 0)])
    assert total(out) == pytest.approx(total(records))
    (app,) = build_calls(out, 0.0)
    (run_sync,) = app.children
    assert run_sync.await_time == pytest.approx(0.049)  # all but the pause
    assert app.samples == 1 + 10 + 1  # the pause's record counts as it always did
    # A thread blocked in one call for a run of ticks: its wait, cut by a pause, stays the wait of that call.
    blocked: list[Any] = []
    _append(blocked, ("app", "recv"), 0.05, 0.001, n=10)
    out = with_pauses([(["app", "view"], 0.002), *blocked], 0.0, None, [(0.03, 0.031, 0)])
    (app,) = build_calls(out, 0.0)
    recv = next(c for c in app.children if c.name == "recv")
    assert recv.wait_time == pytest.approx(0.048)
    assert [stack[-1] for stack, _ in out].count(WAIT) == 2


def test_a_pause_after_the_last_sample_hangs_below_its_stack_until_the_lane_ends() -> None:
    records = [(["app", "view"], 0.05)]
    out = with_pauses(records, 0.0, 0.3, [(0.1, 0.4, 2)])
    assert out == [
        (["app", "view"], 0.05),
        (["app", "view"], pytest.approx(0.05)),
        (["app", "view", GC2(0.1, 0.3)], pytest.approx(0.2)),
    ]


def test_a_request_with_no_sample_still_shows_its_pause() -> None:
    """Another thread's collection stopped the request for all of its life: no sample, the pause alone."""
    out = with_pauses([], 0.0, 0.2, [(0.05, 0.18, 2)])
    assert [(stack, round(dt, 6)) for stack, dt in out if dt] == [([], 0.05), ([GC2(0.05, 0.13)], 0.13)]


def test_two_pauses_in_a_row_stay_two_calls_each_as_long_as_its_pause() -> None:
    """Back-to-back collections between two samples: each its own call, never one merged call longer than either."""
    from pystrument._tree import build_calls

    records = [(["app", "view"], 0.01), (["app", "view"], 0.1)]
    out = with_pauses(records, 0.0, None, [(0.02, 0.05, 0), (0.05, 0.09, 1)])
    (app,) = build_calls(out, 0.0)
    (view,) = app.children
    pauses = [c for c in view.children if c.file == "<gc>"]
    assert [(round(c.duration, 6), round(c.pause, 6)) for c in pauses] == [(0.03, 0.03), (0.04, 0.04)]
    assert all(not c.children for c in pauses)


def test_a_pause_is_not_running_time_of_a_task() -> None:
    """On an event loop a request's CPU time is estimated from the samples in which its task ran; the sample after a
    pause carries the pause, which is not the task's."""
    lane = Lane("task", 0.0)
    lane.record(0.01, ("handler",))
    lane.record(0.2, ("handler",))  # after a 100 ms pause
    lane.record(0.3, ("handler", AWAIT))
    assert lane.busy == pytest.approx(0.2)
    assert lane.busy_during([(0.05, 0.15, 2), (0.21, 0.29, 2)]) == pytest.approx(0.1)  # the second was awaited


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def collection(pauses: GcPauses, clock: Clock, seconds: float, generation: int = 2) -> None:
    pauses._callback("start", {"generation": generation})
    clock.now += seconds
    pauses._callback("stop", {"generation": generation, "collected": 0, "uncollectable": 0})


def test_pauses_are_kept_from_the_minimum_up() -> None:
    clock = Clock()
    pauses = GcPauses(clock)
    collection(pauses, clock, MIN_PAUSE / 2, generation=0)
    assert list(pauses.pauses) == [] and pauses.between(0, 200) == []
    collection(pauses, clock, 0.12)
    assert list(pauses.pauses) == [(pytest.approx(100.0005), pytest.approx(100.1205), 2)]
    assert pauses.between(100.1, 101) and not pauses.between(100.2, 101) and not pauses.between(50, 100)
    assert paused(pauses.between(100.1, 101), 100.1, 101) == pytest.approx(0.0205)


def test_another_thread_seen_running_ends_the_pause_earlier() -> None:
    """The stop callback may run late (its thread hands the GIL over on entering it); a thread that ran meanwhile
    bounds the pause's end."""
    clock = Clock()
    pauses = GcPauses(clock)
    pauses._callback("start", {"generation": 2})
    clock.now += 0.1
    pauses.observe(clock.now)  # the collecting thread itself: no news
    other = threading.Thread(target=pauses.observe, args=(clock.now + 0.01,))
    other.start()
    other.join()
    clock.now += 0.05
    pauses._callback("stop", {"generation": 2})
    ((start, end, _),) = pauses.pauses
    assert end - start == pytest.approx(0.11)


def test_a_request_ending_during_a_collection_counts_it_up_to_its_end() -> None:
    clock = Clock()
    pauses = GcPauses(clock)
    pauses._callback("start", {"generation": 2})
    found: list[Any] = []
    other = threading.Thread(target=lambda: found.extend(pauses.between(99.0, 100.08)))
    other.start()
    other.join()
    assert found == [(100.0, 100.08, 2)]
    clock.now += 0.2
    pauses._callback("stop", {"generation": 2})
    assert list(pauses.pauses) == [(100.0, 100.08, 2)]  # that request saw the world running at 100.08


def test_installed_callback_records_a_real_collection() -> None:
    pauses = GcPauses()
    pauses.install()
    pauses.install()  # once
    try:
        assert gc.callbacks.count(pauses._callback) == 1
        heap = [[i] for i in range(200_000)]
        t0 = time.perf_counter()
        gc.collect()
        t1 = time.perf_counter()
        del heap
    finally:
        pauses.uninstall()
    assert pauses._callback not in gc.callbacks
    ((start, end, generation),) = [p for p in pauses.pauses if p[0] >= t0]
    assert generation == 2 and t0 <= start < end <= t1


def gc_view(heap: list[list[int]], truth: dict[str, float], burn: Callable[[float], int]) -> None:
    burn(0.03)
    t0 = time.perf_counter()
    gc.collect()
    truth["gc"] = time.perf_counter() - t0
    burn(0.03)


@pytest.mark.parametrize("sampler", ["default", "pyinstrument"])
def test_a_collection_inside_a_request_shows_as_its_own_call(
    sampler: str, tracing: Any, helpers: SimpleNamespace
) -> None:
    heap = [[i] for i in range(600_000)]  # a full collection of it takes ~40 ms here
    t = tracing(sampler=sampler, interval_ms=INTERVAL * 1000)
    truth: dict[str, float] = {}
    with t.tracer.start_as_current_span("GET /gc", kind=SpanKind.SERVER):
        gc_view(heap, truth, helpers.burn)
    del heap
    (request,) = t.requests()
    attributes = request.attributes
    assert attributes["pystrument.gc.collections"] >= 1
    assert abs(attributes["pystrument.gc.pause_ms"] / 1000 - truth["gc"]) <= max(0.2 * truth["gc"], 2 * INTERVAL)
    spans = helpers.by_name(t.functions(request, with_gc=True))
    (pause,) = spans["garbage collection (generation 2)"]
    assert abs(helpers.duration(pause) - truth["gc"]) <= max(0.2 * truth["gc"], 2 * INTERVAL), helpers.duration(pause)
    assert pause.attributes["code.file.path"] == "<gc>"
    assert pause.attributes["pystrument.library"] is False
    (view,) = spans["gc_view"]
    assert helpers.parent_id(pause) == helpers.span_id(view)
    assert helpers.contains(view, pause)
    # The view's own time is the two 30 ms loops, not the pause.
    assert view.attributes["pystrument.self_time_ms"] <= helpers.duration(view) * 1000 - 0.8 * truth["gc"] * 1000


def test_a_request_without_a_collection_has_no_gc_attributes(tracing: Any) -> None:
    t = tracing(interval_ms=INTERVAL * 1000)
    gc.disable()
    try:
        with t.tracer.start_as_current_span("GET /quiet", kind=SpanKind.SERVER):
            time.sleep(0.02)
    finally:
        gc.enable()
    (request,) = t.requests()
    assert "pystrument.gc.pause_ms" not in request.attributes
    assert "pystrument.gc.collections" not in request.attributes
