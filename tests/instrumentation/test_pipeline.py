"""Pure pipeline stages with a fake clock: samples -> frame records -> call tree -> collapse -> prune -> spans."""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pyinstrument.renderers import ConsoleRenderer, SpeedscopeRenderer
from pystrument import _emit
from pystrument._frames import AWAIT, OUT_OF_CONTEXT, WAIT, is_library_path
from pystrument._lanes import ThreadLane
from pystrument._recording import Recording
from pystrument._sampler import StackSampler
from pystrument._tree import Call, attach_lanes, build_calls, collapse_library, count, prune


def fi(name: str, file: str = "/app/views.py", line: int = 1, attrs: str = "") -> str:
    return f"{name}\x00{file}\x00{line}{attrs}"


def lib_path(path: str) -> bool:
    return path.startswith("/lib/")


A, B, C, D = fi("a", line=1), fi("b", line=5), fi("c", line=9), fi("d", line=13)
MS = 0.001


def test_timeline_tree_from_records() -> None:
    # Eight samples 5 ms apart from t=100: a, a>b, a>b, a, a>c (awaiting) x2, nothing, d
    records = [([A], 5 * MS), ([A, B], 5 * MS), ([A, B], 5 * MS), ([A], 5 * MS),
               ([A, C, AWAIT], 5 * MS), ([A, C, AWAIT], 5 * MS), ([], 5 * MS), ([D], 5 * MS)]  # fmt: skip
    roots = build_calls(records, 100.0)
    assert [c.name for c in roots] == ["a", "d"]
    a, d = roots
    assert (a.start, a.end, a.samples) == (100.0, pytest.approx(100.030), 6)
    assert a.self_time == pytest.approx(10 * MS)
    b, c = a.children
    assert (b.name, b.start, b.end, b.samples) == ("b", pytest.approx(100.005), pytest.approx(100.015), 2)
    assert (c.start, c.end) == (pytest.approx(100.020), pytest.approx(100.030))
    assert c.await_time == pytest.approx(10 * MS) and c.self_time == pytest.approx(10 * MS)
    assert (d.start, d.end, d.line, d.file) == (pytest.approx(100.035), pytest.approx(100.040), 13, "/app/views.py")


def test_repeated_calls_stay_separate_and_names_get_their_class() -> None:
    method = fi("save", line=3, attrs="\x01cOrder\x01l7")
    records = [([A, method], MS), ([A], MS), ([A, method.replace("l7", "l8")], MS)]
    (a,) = build_calls(records, 0.0)
    assert [c.name for c in a.children] == ["Order.save", "Order.save"]
    assert a.children[0].end <= a.children[1].start
    assert build_calls([([fi("outer.<locals>.inner", attrs="\x01cX")], MS)], 0)[0].name == "outer.<locals>.inner"


def test_out_of_context_time_continues_the_open_calls_as_waiting() -> None:
    records = [([A, B], MS), ([OUT_OF_CONTEXT], 3 * MS), ([A, B], MS)]
    (a,) = build_calls(records, 0.0)
    (b,) = a.children
    assert (b.samples, b.end) == (3, pytest.approx(5 * MS))
    assert b.await_time == pytest.approx(3 * MS)


def test_a_thread_sample_splits_into_the_time_it_waited_and_the_time_it_ran() -> None:
    lane = ThreadLane("", 100.0, threading.get_ident(), sys._getframe(), main=True)
    lane.samples = [(100.005, (A,)), (100.010, (A, B)), (100.015, (A, B)), (100.020, ())]
    lane.cpu = [0.0049, 0.0005, -1.0, 0.0]  # ran, mostly waited, not known, outside the request
    lane.end = 100.020
    records = lane.records()
    assert records == [
        ([A], pytest.approx(0.005)),
        ([A, B, WAIT], pytest.approx(0.0045)),
        ([A, B], pytest.approx(0.0005)),
        ([A, B], pytest.approx(0.005)),
        ([], pytest.approx(0.005)),
    ]
    (a,) = build_calls(records, 100.0)
    (b,) = a.children
    assert (a.samples, b.samples) == (3, 2)  # the wait part is not a sample of its own
    assert b.wait_time == pytest.approx(0.0045) and b.self_time == pytest.approx(0.010)
    assert a.wait_time == 0 and b.await_time == 0
    # A library chain hands its wait to the call it collapses into; a pruned call to its parent.
    (lib,) = collapse_library(_tree([([fi("get", "/lib/x.py"), fi("recv", "/lib/y.py"), WAIT], MS)]))
    assert lib.wait_time == pytest.approx(MS)
    (kept,) = prune(build_calls([([A], MS), ([A, B, WAIT], MS / 2), ([A, B], MS / 2)], 0.0), 1.5 * MS, 10)
    assert not kept.children and kept.wait_time == pytest.approx(MS / 2)
    # So does a pruned call's await time: awaiting is not the parent's own work.
    (kept,) = prune(build_calls([([A], MS), ([A, B, AWAIT], MS / 2), ([A], MS / 2)], 0.0), 1.5 * MS, 10)
    assert not kept.children and kept.await_time == pytest.approx(MS / 2)


def _tree(records: list[Any]) -> list[Call]:
    return build_calls(records, 0.0, is_library=lib_path)


def test_collapse_library_chains_keep_application_callbacks() -> None:
    view, handler = fi("view"), fi("handler", line=40)
    flask, dispatch = fi("Flask.wsgi_app", "/lib/flask/app.py"), fi("Flask.dispatch", "/lib/flask/app.py", 90)
    orm, driver = fi("Session.execute", "/lib/sqlalchemy/orm.py"), fi("Cursor.execute", "/lib/psycopg/cursor.py")
    records = [
        ([flask, dispatch, view], MS),
        ([flask, dispatch, view, orm, driver], 4 * MS),
        ([flask, dispatch, view, orm], MS),
        ([flask, dispatch, view, orm, handler], 2 * MS),
        ([flask, dispatch], MS),
    ]
    roots = collapse_library(_tree(records))
    (wsgi,) = roots
    assert wsgi.name == "Flask.wsgi_app" and wsgi.library
    assert wsgi.self_time == pytest.approx(MS)  # the dispatch sample, merged into the chain's first frame
    (v,) = wsgi.children
    assert v.name == "view" and not v.library
    (orm_call,) = v.children
    assert orm_call.name == "Session.execute"
    assert orm_call.self_time == pytest.approx(5 * MS)  # its own sample + the driver's four
    assert [c.name for c in orm_call.children] == ["handler"]


def test_a_collapsed_library_chain_keeps_the_time_of_every_frame_it_absorbed() -> None:
    """``json.dumps`` -> ``JSONEncoder.encode`` -> ``iterencode``: the time is spent two frames down; the one span
    left for the chain must carry it as self time (it once showed 0 ms)."""
    view = fi("view")
    stdlib_json = os.path.dirname(json.__file__)  # the standard library's: never the hot end of a chain
    dumps = fi("dumps", f"{stdlib_json}/__init__.py", 183)
    encode = fi("JSONEncoder.encode", f"{stdlib_json}/encoder.py", 183)
    iterencode = fi("JSONEncoder.iterencode", f"{stdlib_json}/encoder.py", 205)
    default = fi("to_json", "/app/models.py", 7)  # an application callback called from deep in the chain
    records = [
        ([view], MS),
        ([view, dumps, encode, iterencode], 90 * MS),
        ([view, dumps, encode, iterencode, default], 10 * MS),
        ([view, dumps, encode], 5 * MS),
        ([view, dumps], 1 * MS),
        ([view, dumps, encode, iterencode, AWAIT], 4 * MS),
    ]
    (v,) = collapse_library(build_calls(records, 0.0, is_library=lambda p: lib_path(p) or p.startswith(stdlib_json)))
    (chain,) = v.children
    assert chain.name == "dumps" and chain.library
    assert chain.self_time == pytest.approx(100 * MS)  # 90 + 5 + 1 + the 4 ms await, not the callback's 10
    assert chain.await_time == pytest.approx(4 * MS)
    assert chain.time == pytest.approx(110 * MS)
    assert [c.name for c in chain.children] == ["to_json"]
    assert chain.self_time + sum(c.time for c in chain.children) == pytest.approx(chain.time)


def test_attach_lanes_nests_worker_calls_under_the_waiting_call() -> None:
    a = Call("a", "a", "f", 1, False, 0.0, 1.0, time=1.0, self_time=0.2)
    b = Call("b", "b", "f", 2, False, 0.2, 0.8, time=0.6, self_time=0.6, await_time=0.6)
    a.children.append(b)
    worker = Call("w", "w", "f", 3, False, 0.3, 0.85, time=0.55, self_time=0.55, lane="pool-1")
    late = Call("z", "z", "f", 4, False, 1.5, 2.0, time=0.5, self_time=0.5, lane="pool-2")
    child_task = Call("t", "t", "f", 5, False, 0.4, 0.5, time=0.1, self_time=0.1, lane="Task-9")
    roots = attach_lanes([a], [("l1", [late]), ("l2", [child_task]), ("l3", [worker])])
    assert [c.name for c in roots] == ["a", "z"]
    assert b.children == [worker, child_task]  # other lanes never nest under each other
    assert b.self_time == pytest.approx(0.0) and b.await_time == pytest.approx(0.0)
    # b handed the work off and waited: it is stretched to the worker's end (its last sample came earlier).
    assert b.end == pytest.approx(0.85) and a.end == pytest.approx(1.0)
    # A worker that starts while the hand-off call is still running goes under the call that waits for it.
    submit = Call("submit", "submit", "f", 6, True, 0.0, 0.1, time=0.1)
    result = Call("result", "result", "f", 7, True, 0.1, 0.6, time=0.5)
    early = Call("e", "e", "f", 8, False, 0.09, 0.58, time=0.49, lane="pool-3")
    attach_lanes([submit, result], [("l4", [early])])
    assert submit.children == [] and result.children == [early] and result.start == pytest.approx(0.09)


def test_attach_lanes_follows_the_hand_off_mark_and_never_nests_under_a_pause() -> None:
    """A lane handed off by a mark nests under the call that made the mark, whatever overlaps it in time; without a
    mark, the most overlapping call that is not a garbage-collection pause."""
    a = Call("a", "a", "f", 1, False, 0.0, 1.0, time=1.0)
    handed = Call("h", "h", "f", 2, False, 0.0, 0.1, time=0.1, claims=["lane:7"])
    pause = Call("gc", "garbage collection (generation 0)", "<gc>", 0, False, 0.2, 0.9, time=0.7, pause=0.7)
    a.children += [handed, pause]
    worker = Call("w", "w", "f", 3, False, 0.25, 0.85, time=0.6, lane="pool-1")
    stray = Call("s", "s", "f", 4, False, 0.86, 0.95, time=0.09, lane="pool-2")
    attach_lanes([a], [("lane:7", [worker]), ("lane:8", [stray])])
    assert handed.children == [worker] and handed.end == pytest.approx(0.85)
    assert pause.children == [] and pause.duration == pytest.approx(0.7)
    assert stray in a.children


def test_prune_min_duration_and_cap_keep_the_longest_as_a_tree() -> None:
    records = [([A], MS)] + [([A, B], MS)] * 6 + [([A, B, C], MS)] * 3 + [([A, D], MS)] * 2 + [([A], MS)]
    roots = _tree(records)
    assert count(roots) == 4
    short = prune(_tree(records), min_duration=2.5 * MS, max_calls=100)
    (a,) = short
    assert [c.name for c in a.children] == ["b"]  # d (2 ms) dropped ...
    assert a.self_time == pytest.approx(4 * MS)  # ... its time now a's own
    capped = prune(_tree(records), min_duration=0, max_calls=2)
    (a,) = capped
    assert [c.name for c in a.children] == ["b"] and a.children[0].children == []
    assert a.children[0].self_time == pytest.approx(9 * MS)
    assert count(prune(_tree(records), 0, 1)) == 1


def test_emit_calls_creates_nested_spans_with_exact_times() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    request = tracer.start_span("GET /x")
    records = [([A], 5 * MS), ([A, B], 5 * MS), ([A, B], 5 * MS), ([A], 5 * MS)]
    calls = build_calls(records, 10.0)
    base = 1_700_000_000_000_000_000

    def to_ns(t: float) -> int:
        return base + round((t - 10.0) * 1e9)

    n = _emit.emit_calls(tracer, request.get_span_context(), calls, to_ns, 5.0, None)
    request.end()
    assert n == 2
    spans = {s.name: s for s in exporter.get_finished_spans()}
    a, b = spans["a"], spans["b"]
    assert a.parent is not None and a.parent.span_id == request.get_span_context().span_id
    assert b.parent is not None and a.context is not None and b.parent.span_id == a.context.span_id
    assert (a.start_time, a.end_time) == (base, base + 20_000_000)
    assert (b.start_time, b.end_time) == (base + 5_000_000, base + 15_000_000)
    assert dict(b.attributes or {}) == {
        "code.function.name": "b",
        "code.file.path": "/app/views.py",
        "code.line.number": 5,
        "pystrument.synthetic": True,
        "pystrument.samples": 2,
        "pystrument.self_time_ms": 10.0,
        "pystrument.library": False,
        "pystrument.time_precision_ms": 5.0,
    }
    provider.shutdown()


def test_library_paths() -> None:
    assert is_library_path(threading.__file__)
    assert is_library_path(pytest.__file__)
    assert is_library_path("<frozen importlib._bootstrap>")
    assert not is_library_path(__file__)
    assert not is_library_path("<string>")


# -- the sampler stage on a real thread, with a fake clock -------------------------------------------------


def planted_outer(steps: list[threading.Event], reached: list[threading.Event]) -> None:
    planted_inner(steps[0], reached[0])
    reached[1].set()
    steps[1].wait(10)


def planted_inner(step: threading.Event, reached: threading.Event) -> None:
    reached.set()
    step.wait(10)


def test_sampler_records_the_request_thread_with_fake_times() -> None:
    provider = TracerProvider()
    span = provider.get_tracer("t").start_span("req")
    steps = [threading.Event(), threading.Event()]
    reached = [threading.Event(), threading.Event()]
    box: dict[str, Recording] = {}
    created = threading.Event()

    def request_thread() -> None:
        box["rec"] = Recording(span, 0.005, False, sys._getframe())
        created.set()
        planted_outer(steps, reached)

    thread = threading.Thread(target=request_thread)
    thread.start()
    created.wait(5)
    rec = box["rec"]
    sampler = StackSampler(clock=lambda: 0.0)
    sampler._active[id(rec)] = rec  # registered without starting the sampler thread
    t0 = rec.start_perf
    reached[0].wait(5)
    sampler.sample_once(t0 + 0.005)
    sampler.sample_once(t0 + 0.010)
    sampler.sample_once(t0 + 0.011)  # too soon after the previous sample: skipped
    steps[0].set()
    reached[1].wait(5)
    sampler.sample_once(t0 + 0.015)
    sampler.sample_once(t0 + 0.020)
    steps[1].set()
    thread.join(5)
    rec.lanes[0].close(t0 + 0.025)  # the fake end; stop() keeps it
    rec.stop()
    (lane,) = rec.lanes
    assert [t - t0 for t, _ in lane.samples] == pytest.approx([0.005, 0.010, 0.015, 0.020])
    calls = collapse_library(build_calls(lane.records(), lane.start))
    (outer,) = calls
    assert outer.name == "planted_outer"
    assert (outer.start - t0, outer.end - t0, outer.samples) == (0.0, pytest.approx(0.020), 4)
    inner = outer.children[0]
    assert (inner.name, inner.end - t0) == ("planted_inner", pytest.approx(0.010))
    assert inner.children[0].name == "Event.wait" and inner.children[0].library  # the chain wait > Condition.wait
    assert outer.children[1].name == "Event.wait" and outer.children[1].start - t0 == pytest.approx(0.010)

    session = _emit.session(rec)
    text = ConsoleRenderer(unicode=False, color=False).render(session)
    assert "planted_inner" in text and "planted_outer" in text
    assert "planted_inner" in SpeedscopeRenderer().render(session)
    rec.release()
    span.end()


def _lane(samples: list[tuple[float, tuple[str, ...]]], cpu: list[float], queue: list[float]) -> ThreadLane:
    lane = ThreadLane("", 100.0, threading.get_ident(), sys._getframe(), main=True)
    lane.samples, lane.cpu, lane.queue = samples, cpu, queue
    lane.end = samples[-1][0]
    return lane


def _shape(calls: list[Call]) -> list[tuple[Any, ...]]:
    return [
        (c.name, c.samples, *(round(x, 9) for x in (c.start, c.end, c.time, c.self_time, c.wait_time, c.queue_time)))
        for root in calls
        for c in root.walk()
    ]


@pytest.mark.parametrize("mark_at", [None, 100.0125])
def test_a_run_of_unchanged_ticks_builds_the_tree_its_ticks_would(mark_at: float | None) -> None:
    """Issue #14: a thread blocked for ten ticks was ten pairs of records (wait, run) for the span worker to build a
    tree from, one per tick; it is one pair standing for ten samples. The tree is the one the ticks give, recorded
    one by one: the same calls, times, waits, run-queue time and sample counts. A mark inside the run (a child span
    starting) splits the tick it fell in, so that run is still taken tick by tick."""
    a, b = (fi("view"),), (fi("view"), fi("recv", "/lib/socket.py"))
    # 5 ms ticks: one in the view, then b blocked for four ticks (one run-length sample), then the view again.
    run = _lane([(100.005, a), (100.025, b), (100.030, a)], [0.004, 0.002, 0.005], [0.0, 0.004, 0.0])
    run.counts = {1: 4}
    ticks = _lane(
        [(100.005, a), (100.010, b), (100.015, b), (100.020, b), (100.025, b), (100.030, a)],
        [0.004, 0.0005, 0.0005, 0.0005, 0.0005, 0.005],
        [0.0, 0.001, 0.001, 0.001, 0.001, 0.0],
    )
    if mark_at is not None:
        run.mark(mark_at, b, "0123456789abcdef")
        ticks.mark(mark_at, b, "0123456789abcdef")
    records = run.records()
    # The run is three records (its run-queue time, its wait, its run) for four ticks; with a mark inside, three per
    # tick, the mark's own, and the tick it fell in split at it.
    assert len([r for r in records if fi("recv", "/lib/socket.py") in r[0]]) == (3 if mark_at is None else 16)
    built = build_calls(records, 100.0)
    assert _shape(built) == _shape(build_calls(ticks.records(), 100.0))
    (view,) = built
    (recv,) = view.children
    assert recv.samples >= 4 and recv.wait_time == pytest.approx(0.014) and recv.queue_time == pytest.approx(0.004)
