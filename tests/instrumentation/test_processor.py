"""The processor on a real TracerProvider with an in-memory exporter, in both samplers: accuracy, nesting,
thread isolation, the tail rule, pruning, and that nothing inside the SDK reaches the caller."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pystrument
import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind
from pystrument._budget import cost_budget

SAMPLERS = ["default", "pyinstrument"]
INTERVAL = 0.005


def planted(truth: dict[str, float], burn: Callable[[float], int]) -> None:
    t0 = time.perf_counter()
    time.sleep(0.05)
    burn(0.05)
    truth["planted"] = time.perf_counter() - t0


def within(measured: float, truth: float, interval: float = INTERVAL) -> bool:
    return abs(measured - truth) <= max(0.2 * truth, 2 * interval)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_planted_function_duration_is_accurate(sampler: str, tracing: Any, helpers: SimpleNamespace) -> None:
    t = tracing(sampler=sampler, interval_ms=INTERVAL * 1000)
    truth: dict[str, float] = {}
    with t.tracer.start_as_current_span("GET /planted", kind=SpanKind.SERVER):
        planted(truth, helpers.burn)
    (request,) = t.requests()
    spans = helpers.by_name(t.functions(request))
    (span,) = spans["planted"]
    assert within(helpers.duration(span), truth["planted"]), (helpers.duration(span), truth["planted"])
    attributes = span.attributes
    assert attributes["code.function.name"] == "planted"
    assert attributes["code.file.path"] == __file__
    assert attributes["code.line.number"] == planted.__code__.co_firstlineno
    assert attributes["pystrument.library"] is False and attributes["pystrument.synthetic"] is True
    # pyinstrument samples on call events (one per C call such as sleep), the default sampler every interval.
    assert attributes["pystrument.samples"] >= (10 if sampler == "default" else 2)
    assert attributes["pystrument.time_precision_ms"] == 5.0
    assert helpers.parent_id(span) == helpers.span_id(request)
    assert request.attributes["pystrument.profile.interval_ms"] == 5.0
    # Attributes at their usual value are left out: the sampler unless precise, async unless true.
    assert request.attributes.get("pystrument.profile.sampler", "default") == sampler
    assert ("pystrument.profile.sampler" in request.attributes) == (sampler == "pyinstrument")
    assert request.attributes["pystrument.function_spans"] is True
    assert "pystrument.async" not in request.attributes
    # Thread CPU time: the loop, not the 50 ms sleep (a loaded machine may give the loop less than its wall time).
    cpu = request.attributes["pystrument.cpu_time_ms"] / 1000
    assert 0.005 <= cpu <= helpers.duration(request) - 0.045


def level_three(burn: Callable[[float], int]) -> None:
    burn(0.03)


def level_two(burn: Callable[[float], int]) -> None:
    time.sleep(0.03)
    level_three(burn)


def level_one(burn: Callable[[float], int], truth: dict[str, float]) -> None:
    t0 = time.perf_counter()
    level_two(burn)
    time.sleep(0.03)
    truth["level_one"] = time.perf_counter() - t0


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_nested_functions_nest(sampler: str, tracing: Any, helpers: SimpleNamespace) -> None:
    t = tracing(sampler=sampler, min_span_ms=0)
    truth: dict[str, float] = {}
    with t.tracer.start_as_current_span("GET /nested", kind=SpanKind.SERVER):
        level_one(helpers.burn, truth)
    (request,) = t.requests()
    spans = helpers.by_name(t.functions(request))
    (one,), (two,), (three,) = spans["level_one"], spans["level_two"], spans["level_three"]
    assert helpers.parent_id(three) == helpers.span_id(two)
    assert helpers.parent_id(two) == helpers.span_id(one)
    assert helpers.parent_id(one) == helpers.span_id(request)
    assert helpers.contains(request, one) and helpers.contains(one, two) and helpers.contains(two, three)
    assert within(helpers.duration(one), truth["level_one"])
    # level_one's own time is its trailing sleep, not its children's; pyinstrument shows the sleep as a C call.
    if sampler == "default":
        own = one.attributes["pystrument.self_time_ms"] / 1000
        assert 0.01 <= own <= helpers.duration(one) - helpers.duration(two) + 0.001
    else:
        (sleep,) = [s for s in spans["sleep"] if helpers.parent_id(s) == helpers.span_id(one)]
        assert sleep.attributes["pystrument.library"] is True and helpers.contains(one, sleep)
        assert sleep.start_time >= two.end_time


def report_rows(rows: int) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"row {i}", "tags": ["a", "b"], "score": i / 7} for i in range(rows)]


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_a_collapsed_library_call_keeps_its_time_as_self_time(
    sampler: str, tracing: Any, helpers: SimpleNamespace
) -> None:
    """``json.dumps`` with ``indent`` runs Python frames several levels down in the json package: its one span must
    carry their time as self time."""
    t = tracing(sampler=sampler, min_span_ms=0)
    timings = []
    for _ in range(3):  # the fastest of three: a garbage collection in one would make the estimate too slow
        t0 = time.perf_counter()
        json.dumps(report_rows(1000), indent=1)
        timings.append(time.perf_counter() - t0)
    rows = report_rows(max(1000, int(1000 * 0.08 / min(timings))))  # about 80 ms of encoding
    with t.tracer.start_as_current_span("GET /report", kind=SpanKind.SERVER):
        json.dumps(rows, indent=1)
    spans = t.functions()
    (dumps,) = [s for s in spans if s.name == "dumps"]
    assert dumps.attributes["pystrument.library"] is True
    assert [s.name for s in spans if helpers.parent_id(s) == helpers.span_id(dumps)] == []
    assert dumps.attributes["pystrument.self_time_ms"] / 1000 >= 0.7 * helpers.duration(dumps) >= 0.7 * 0.04


def load_user() -> None:
    time.sleep(0.06)  # a C call: no Python frame below this function while it waits


def score_user(burn: Callable[[float], int]) -> None:
    burn(0.04)


def test_time_a_thread_waits_is_told_from_time_it_runs(tracing: Any, helpers: SimpleNamespace) -> None:
    """The stack sampler sees no frame for a C call: the sleep is the self time of ``load_user``. The thread's CPU
    clock tells the two apart: ``pystrument.wait_time_ms`` is the part of the self time in which it did not run."""
    t = tracing(min_span_ms=0, interval_ms=INTERVAL * 1000)
    with t.tracer.start_as_current_span("GET /user", kind=SpanKind.SERVER):
        load_user()
        score_user(helpers.burn)
    spans = helpers.by_name(t.functions())
    (load,), (score,) = spans["load_user"], spans["score_user"]
    waited = load.attributes["pystrument.wait_time_ms"] / 1000
    assert within(waited, 0.06), waited
    assert waited <= load.attributes["pystrument.self_time_ms"] / 1000 + 1e-6
    # The loop ran (a loaded machine may take the core away for a while: that shows as waiting, up to a half).
    loop_wait = score.attributes.get("pystrument.wait_time_ms", 0.0) / 1000
    assert loop_wait <= 0.5 * helpers.duration(score), loop_wait


def _request_in_thread(t: Any, fn: Callable[[], None], name: str, barrier: threading.Barrier) -> None:
    barrier.wait()
    with t.tracer.start_as_current_span(name, kind=SpanKind.SERVER):
        fn()


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_concurrent_threads_never_mix_samples(sampler: str, tracing: Any, helpers: SimpleNamespace) -> None:
    t = tracing(sampler=sampler, min_span_ms=0)

    def work() -> None:
        time.sleep(0.04)
        helpers.burn(0.01)
        time.sleep(0.02)

    barrier = threading.Barrier(8)
    threads = [
        threading.Thread(target=_request_in_thread, args=(t, helpers.renamed(work, f"work_{i}"), f"GET /{i}", barrier))
        for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    requests = {r.name: r for r in t.requests()}
    assert len(requests) == 8
    for i in range(8):
        names = {s.name for s in t.functions(requests[f"GET /{i}"])}
        user = {n for n in names if n.startswith("work_")}
        assert user == {f"work_{i}"}, names
        assert not any(n.startswith("_request_in_thread") for n in names)


def fast_call() -> None:
    time.sleep(0.012)


def slow_call() -> None:
    time.sleep(0.15)


def test_tail_rule_keeps_slow_and_failed_requests(tracing: Any, helpers: SimpleNamespace) -> None:
    t = tracing(keep_rate=0, slow_ms=120, min_span_ms=0)
    with t.tracer.start_as_current_span("GET /fast", kind=SpanKind.SERVER):
        fast_call()
    with t.tracer.start_as_current_span("GET /slow", kind=SpanKind.SERVER):
        slow_call()
    with pytest.raises(RuntimeError), t.tracer.start_as_current_span("GET /fail", kind=SpanKind.SERVER):
        fast_call()
        raise RuntimeError("boom")
    with t.tracer.start_as_current_span("GET /500", kind=SpanKind.SERVER) as span:
        fast_call()
        span.set_attribute("http.response.status_code", 503)
    requests = {r.name: r for r in t.requests()}
    kept = {
        name: {s.name for s in t.functions(r) if not s.attributes["pystrument.library"]} for name, r in requests.items()
    }
    assert kept == {"GET /fast": set(), "GET /slow": {"slow_call"}, "GET /fail": {"fast_call"},
                    "GET /500": {"fast_call"}}  # fmt: skip
    assert requests["GET /fast"].attributes["pystrument.function_spans"] is False
    assert requests["GET /slow"].attributes["pystrument.function_spans"] is True


def deep(levels: int) -> None:
    if levels:
        deep(levels - 1)
    else:
        time.sleep(0.03)


def waited(seconds: float) -> None:
    time.sleep(seconds)


def budget_recovered() -> None:
    deadline = time.monotonic() + 10
    while cost_budget.left(time.perf_counter()) < 0 and time.monotonic() < deadline:
        time.sleep(0.05)


def test_span_budget_leaves_fast_requests_out_when_spent(tracing: Any) -> None:
    """One budget pays for everything pystrument adds (PYSTRUMENT_SPAN_BUDGET of one core, accrued over time): the
    sampler's ticks and the function spans (~25 us per span here to build, measured per request by the span worker).
    A fast, successful request whose estimated cost does not fit what is left keeps none and says so; slow and failed
    requests keep theirs; the sampler samples less often while it is spent; the budget fills up again."""
    budget = 0.01  # the sampler takes about half of it here (a tick costs 50-100 us of CPU, wake-up included)
    t = tracing(span_budget=budget, slow_ms=150, min_span_ms=0)
    kept = []
    started = time.perf_counter()
    for _ in range(20):  # ~40 spans per 30 ms request, ~2 ms to build and export, against 0.3 ms accrued per request
        with t.tracer.start_as_current_span("GET /deep", kind=SpanKind.SERVER) as span:
            deep(40)
        t.provider.force_flush()
        kept.append(span.attributes.get("pystrument.function_spans", False))  # False: kept none, or not profiled
    cost = t.processor.cost_per_request
    assert cost > 0
    assert kept[0] is True and False in kept, kept  # the first is free (nothing measured yet)
    # What was kept fits the budget: its one-second burst allowance plus what accrued, give or take the estimate.
    assert (kept.count(True) - 2) * cost <= budget * (1 + time.perf_counter() - started), (kept, cost)
    degraded = [r.attributes.get("pystrument.profile.degraded", "") for r in t.requests()]
    assert any(
        "PYSTRUMENT_SPAN_BUDGET=0.01" in d and ("no function spans" in d or "not profiled" in d) for d in degraded
    )
    # While the budget is in debt (one burst at most) new requests are not profiled at all, and say so; it recovers.
    budget_recovered()
    # Slow and failed requests keep theirs (sampled at the budget's slowest pace: 8 intervals, so long calls here).
    with t.tracer.start_as_current_span("GET /slow", kind=SpanKind.SERVER):
        waited(0.2)
    budget_recovered()
    with pytest.raises(RuntimeError), t.tracer.start_as_current_span("GET /fail", kind=SpanKind.SERVER):
        waited(0.1)
        raise RuntimeError("boom")
    requests = {r.name: r for r in t.requests()}
    assert requests["GET /slow"].attributes["pystrument.function_spans"] is True and t.functions(requests["GET /slow"])
    assert t.functions(requests["GET /fail"])
    # The budget fills up again (how soon depends on the measured cost, the sampler's and the debt of the two above).
    deadline = time.monotonic() + 20
    while True:
        time.sleep(0.25)
        t.exporter.clear()
        with t.tracer.start_as_current_span("GET /later", kind=SpanKind.SERVER):
            waited(0.1)
        (later,) = t.requests()
        if later.attributes.get("pystrument.function_spans") or time.monotonic() > deadline:
            break
    assert later.attributes.get("pystrument.function_spans") is True and t.functions(later)
    # Without a budget every request keeps its spans, and none is degraded.
    free = tracing(span_budget=1, min_span_ms=0)
    for _ in range(5):
        with free.tracer.start_as_current_span("GET /deep", kind=SpanKind.SERVER):
            deep(40)
    assert all(r.attributes["pystrument.function_spans"] for r in free.requests())
    assert not any("pystrument.profile.degraded" in r.attributes for r in free.requests())


def test_requests_with_no_span_to_build_take_nothing_from_the_budget(tracing: Any) -> None:
    """Issue #14: a request shorter than the interval has no sample and nothing to build, yet was charged a built
    request's estimated cost; on a busy endpoint of such requests the budget went to them, and the slower requests
    that have spans to build lost theirs."""
    t = tracing(span_budget=0.01)  # 10 ms of CPU to spend at once, once the bucket is full
    deadline = time.monotonic() + 5
    while cost_budget.left(time.perf_counter()) < 0.0099 and time.monotonic() < deadline:
        time.sleep(0.05)
    t.processor.cost_per_request = 0.005  # as if a request's spans took 5 ms to build and export
    for _ in range(3):  # 15 ms of the budget, were they charged that: the page below would find it spent
        with t.tracer.start_as_current_span("GET /quick", kind=SpanKind.SERVER):
            pass
    with t.tracer.start_as_current_span("GET /page", kind=SpanKind.SERVER):
        waited(0.05)
    requests = t.requests()
    assert all(r.attributes.get("pystrument.function_spans") is True for r in requests), [
        (r.name, dict(r.attributes)) for r in requests if r.attributes.get("pystrument.function_spans") is not True
    ][:2]
    (page,) = [r for r in requests if r.name == "GET /page"]
    assert "pystrument.profile.degraded" not in page.attributes and t.functions(page)


def test_requests_pay_their_expected_cost_as_they_start(tracing: Any) -> None:
    """Issue #14: charged only as they ended, every request starting while the bucket held anything was profiled; under
    load (FastAPI at 50 in flight: a fifth of the requests) most of them then found the bucket spent by the others and
    kept no function spans, their hooks and samples paid for and thrown away (pystrument took 2-3x its budget there).
    A request now takes its expected cost as it starts: as many are profiled as the budget pays for, and each keeps
    its function spans; the others say they were not profiled."""
    t = tracing(span_budget=0.01, slow_ms=10_000, min_span_ms=0)  # 10 ms of CPU to spend at once
    deadline = time.monotonic() + 5
    while cost_budget.left(time.perf_counter()) < 0.0099 and time.monotonic() < deadline:
        time.sleep(0.05)
    t.processor.cost_per_request = 0.004  # as if a request's spans took 4 ms to build and export: two or three fit
    start = threading.Barrier(8)

    def request() -> None:
        start.wait()
        with t.tracer.start_as_current_span("GET /io", kind=SpanKind.SERVER):
            waited(0.06)  # all eight are under way before the first ends

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    t.provider.force_flush()
    requests = t.requests()
    assert len(requests) == 8
    profiled = [r for r in requests if "not profiled" not in r.attributes.get("pystrument.profile.degraded", "")]
    assert 1 <= len(profiled) <= 4, [dict(r.attributes) for r in requests]
    assert all(r.attributes.get("pystrument.function_spans") is True and t.functions(r) for r in profiled), [
        dict(r.attributes) for r in profiled
    ]


def test_profile_rate_zero_profiles_nothing(tracing: Any) -> None:
    t = tracing(profile_rate=0)
    with t.tracer.start_as_current_span("GET /x", kind=SpanKind.SERVER):
        fast_call()
    (request,) = t.requests()
    assert not any(k.startswith("pystrument.") for k in request.attributes)
    assert t.functions() == []


def short_one() -> None:
    time.sleep(0.004)


def long_one() -> None:
    time.sleep(0.05)


def medium_one() -> None:
    time.sleep(0.03)


def test_min_span_and_max_spans(tracing: Any, helpers: SimpleNamespace) -> None:
    t = tracing(min_span_ms=15)
    with t.tracer.start_as_current_span("GET /min", kind=SpanKind.SERVER):
        short_one()
        long_one()
    assert {s.name for s in t.functions()} == {"long_one"}

    t2 = tracing(min_span_ms=0, max_spans=2)
    with t2.tracer.start_as_current_span("GET /max", kind=SpanKind.SERVER):
        medium_one()
        long_one()
        medium_one()
        short_one()
    functions = t2.functions()
    assert len(functions) == 2
    assert sorted(s.name for s in functions) == ["long_one", "medium_one"]
    assert min(helpers.duration(s) for s in functions) >= 0.02


def test_internal_child_spans_are_not_requests(tracing: Any, helpers: SimpleNamespace) -> None:
    t = tracing(min_span_ms=0)
    with t.tracer.start_as_current_span("GET /outer", kind=SpanKind.SERVER):
        with t.tracer.start_as_current_span("db query"):
            medium_one()
        with t.tracer.start_as_current_span("GET /inner", kind=SpanKind.SERVER):  # same trace: not profiled again
            medium_one()
    requests = {r.name: r for r in t.requests()}
    assert "pystrument.profile.interval_ms" not in requests["GET /inner"].attributes
    assert [s.name for s in t.functions()] == ["medium_one", "medium_one"]
    assert all(helpers.parent_id(s) == helpers.span_id(requests["GET /outer"]) for s in t.functions())


def test_a_root_span_is_a_request(tracing: Any) -> None:
    t = tracing(min_span_ms=0)
    with t.tracer.start_as_current_span("nightly job"):
        medium_one()
    assert [s.name for s in t.functions()] == ["medium_one"]


def pool_work(burn: Callable[[float], int], truth: dict[str, float]) -> None:
    t0 = time.perf_counter()
    time.sleep(0.04)
    # 20 ms, not 10: pyinstrument (the precise sampler) reads a coarse clock (4 ms ticks here) and samples at the first
    # event 5 ms of it after its last sample, so a 10 ms tail after a wait is sampled only when its ticks fall right;
    # it then loses the tail (the pool work reads 40 ms), in about one run in four on this machine.
    burn(0.02)
    truth["pool_work"] = time.perf_counter() - t0


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_thread_pool_work_belongs_to_the_submitting_request(
    sampler: str, tracing: Any, helpers: SimpleNamespace
) -> None:
    t = tracing(sampler=sampler, min_span_ms=0)
    truth: dict[str, float] = {}
    with ThreadPoolExecutor(2) as pool:
        with t.tracer.start_as_current_span("GET /pool", kind=SpanKind.SERVER):
            pool.submit(pool_work, helpers.burn, truth).result()
        with t.tracer.start_as_current_span("GET /other", kind=SpanKind.SERVER):
            medium_one()
        pool.submit(short_one).result()  # outside any request: not attributed
    requests = {r.name: r for r in t.requests()}
    pooled = helpers.by_name(t.functions(requests["GET /pool"]))
    (work,) = pooled["pool_work"]
    assert within(helpers.duration(work), truth["pool_work"]), (helpers.duration(work), truth, work.attributes)
    assert work.attributes["pystrument.thread"].startswith("ThreadPoolExecutor")
    # Nested under the call that waited for it on the request thread.
    (waiting,) = pooled["Future.result"]
    assert helpers.parent_id(work) == helpers.span_id(waiting) and helpers.contains(waiting, work)
    other = {s.name for s in t.functions(requests["GET /other"]) if not s.attributes["pystrument.library"]}
    assert other == {"medium_one"}
    # The worker's CPU time counts for the request (the request thread itself only waited).
    assert requests["GET /pool"].attributes["pystrument.cpu_time_ms"] >= 2


def test_propagate_follows_a_request_into_a_plain_thread(tracing: Any, helpers: SimpleNamespace) -> None:
    t = tracing(min_span_ms=0)
    with t.tracer.start_as_current_span("GET /thread", kind=SpanKind.SERVER):
        thread = threading.Thread(target=pystrument.propagate(long_one), name="helper")
        thread.start()
        thread.join()
    spans = helpers.by_name(t.functions())
    (span,), (join,) = spans["long_one"], spans["Thread.join"]
    assert span.attributes["pystrument.thread"] == "helper" and within(helpers.duration(span), 0.05)
    assert helpers.parent_id(span) == helpers.span_id(join)
    assert pystrument.propagate(long_one) is long_one  # outside a request: unchanged


class FailingExporter(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        raise RuntimeError("collector down")

    def shutdown(self) -> None:
        pass


def test_failures_inside_the_sdk_never_reach_the_caller(
    tracing: Any, caplog: pytest.LogCaptureFixture, helpers: SimpleNamespace
) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FailingExporter()))
    seen: list[Any] = []

    def on_session(span: ReadableSpan, session: Any) -> None:
        seen.append(session)
        raise ValueError("user callback bug")

    processor = pystrument.PystrumentSpanProcessor(provider, on_session=on_session, min_span_ms=0)
    provider.add_span_processor(processor)
    with caplog.at_level(logging.WARNING, logger="pystrument"):
        for _ in range(2):
            with provider.get_tracer("t").start_as_current_span("GET /x", kind=SpanKind.SERVER):
                medium_one()
        assert processor.force_flush()
    assert len(seen) == 2 and seen[0].sample_count > 0
    assert sum("on_session callback failed" in r.message for r in caplog.records) == 1  # logged once
    provider.shutdown()


def test_configure_is_idempotent(caplog: pytest.LogCaptureFixture) -> None:
    provider = TracerProvider()
    first = pystrument.configure(provider)
    with caplog.at_level(logging.WARNING, logger="pystrument"):
        second = pystrument.configure(provider, interval_ms=1)
    assert first is second
    assert "already configured" in caplog.text
    processors = provider._active_span_processor._span_processors  # type: ignore[attr-defined]
    assert sum(isinstance(p, pystrument.PystrumentSpanProcessor) for p in processors) == 1
    assert processors[0] is first  # runs first, so it builds its last spans before exporters shut down
    provider.shutdown()


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_a_request_span_ended_on_another_thread(
    sampler: str, tracing: Any, helpers: SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    """A root span handed to a worker that ends it: nothing reaches either thread, precise mode logs once, and the
    profiler it left running on the starting thread is stopped when that thread starts its next span."""
    t = tracing(sampler=sampler, min_span_ms=0)
    seen: dict[str, Any] = {}

    def starter() -> None:
        for i in range(3):
            span = t.tracer.start_span(f"job {i}")  # a root span: a request of its own
            medium_one()
            ender = threading.Thread(target=span.end)
            ender.start()
            ender.join(5)
        seen["profile_after_handoffs"] = sys.getprofile()
        with t.tracer.start_as_current_span("GET /next", kind=SpanKind.SERVER):
            medium_one()
        seen["profile_after_next"] = sys.getprofile()

    with caplog.at_level(logging.WARNING, logger="pystrument"):
        thread = threading.Thread(target=starter)
        thread.start()
        thread.join(10)
    spans = t.spans()
    assert sorted(s.name for s in spans if s.parent is None) == ["GET /next", "job 0", "job 1", "job 2"]
    warnings = [r for r in caplog.records if "ended on another thread" in r.message]
    if sampler == "pyinstrument":
        assert len(warnings) == 1
        assert seen["profile_after_handoffs"] is not None  # the orphaned profilers were still hooked in
    else:
        assert warnings == []  # the default sampler does not care which thread ends the span
    assert seen["profile_after_next"] is None  # ... and are gone once the thread started its next span
    (following,) = [s for s in spans if s.name == "GET /next"]
    assert [s.name for s in t.functions(following) if not s.attributes["pystrument.library"]] == ["medium_one"]


def test_a_root_span_inside_a_request_leaves_the_request_profile_alone(tracing: Any) -> None:
    t = tracing(min_span_ms=0)
    with t.tracer.start_as_current_span("GET /outer", kind=SpanKind.SERVER):
        medium_one()
        with t.tracer.start_as_current_span("audit", context=Context()):  # a new trace, started inside the request
            long_one()
        medium_one()
    spans = t.spans()
    (outer,) = [s for s in spans if s.name == "GET /outer"]
    (audit,) = [s for s in spans if s.name == "audit"]
    assert audit.parent is None and not any(k.startswith("pystrument.") for k in audit.attributes or {})
    user = [s.name for s in t.functions(outer) if not s.attributes["pystrument.library"]]
    assert user == ["medium_one", "long_one", "medium_one"]


class Held:
    """An object of the request's caller, to see who keeps it alive."""


def held_request_waits() -> None:
    time.sleep(0.03)


def test_the_callers_frames_are_let_go_when_the_request_ends_not_when_its_spans_are_built(tracing: Any) -> None:
    """The sampler holds the frames above the request's span (its anchors) while it samples the request; they go when
    the request ends, on its thread, so its caller's locals die with the caller, not whenever the span worker gets to
    the request (blocked here: its spans are built after the check)."""
    import gc
    import weakref

    t = tracing()
    gate = threading.Event()
    t.processor._worker.submit(lambda: gate.wait(10))  # the span worker is busy until the gate opens

    def handler() -> weakref.ref[Held]:
        held = Held()
        with t.tracer.start_as_current_span("GET /held", kind=SpanKind.SERVER):
            held_request_waits()  # sampled: the sampler takes the callers' frames as anchors
        return weakref.ref(held)

    try:
        ref = handler()
        gc.collect()
        assert ref() is None
    finally:
        gate.set()
    t.processor.force_flush()
    (request,) = t.requests()
    assert request.attributes["pystrument.profile.samples"] >= 4
    assert [span.name for span in t.functions(request)] == ["held_request_waits"]
