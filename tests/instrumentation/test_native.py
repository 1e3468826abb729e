"""Issue #14, the compiled sampler helper (``pystrument/_native.c``): the ticks at which no profiled thread has run
since its stack was taken are spent in C without the GIL, and what they found reaches the lanes as if the Python
sampler had seen it (on the sampler's return, or on the request thread when its request ends first)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from pystrument import _lanes, _sampler
from pystrument._frames import WAIT
from pystrument._lanes import schedstat_fd, thread_cpu_clock
from pystrument._recording import Recording
from pystrument._sampler import StackSampler

native: Any = pytest.importorskip("pystrument._native", reason="built without the compiled helper")


def test_the_install_built_the_compiled_helper_and_each_sampler_has_its_own() -> None:
    """The editable install of the test environment compiled it (the build hook); a plain pip install from source is
    held to the same in tests/e2e/test_otlp_grpc_otel_range.py. Each sampler has a helper of its own (its pokes and
    park are not another's)."""
    assert native.__file__.endswith(".so")
    assert _sampler._native is native
    one, two = StackSampler().native, StackSampler().native
    assert isinstance(one, native.Helper) and isinstance(two, native.Helper) and one is not two
    assert StackSampler(native=False).native is None
    assert StackSampler(clock=lambda: 0.0).native is None  # its waits are on perf_counter's clock
    with pytest.raises(TypeError):
        native.Helper(1)


class Parked:
    """A thread blocked on an event (off its core) until released, then burning ``burn`` seconds of CPU."""

    def __init__(self, burn: float = 0.02) -> None:
        self.go, self.ready = threading.Event(), threading.Event()
        self.burn = burn
        self.thread = threading.Thread(target=self._run)
        self.thread.start()
        self.ready.wait(5)
        time.sleep(0.02)  # into the wait
        assert self.thread.ident is not None
        self.clock = thread_cpu_clock(self.thread.ident)
        self.fd = schedstat_fd(self.thread.ident)

    def _run(self) -> None:
        self.ready.set()
        self.go.wait(10)
        end = time.thread_time() + self.burn
        while time.thread_time() < end:
            pass

    def watch(self) -> tuple[list[int], list[int], list[int]]:
        return [self.clock], [time.clock_gettime_ns(self.clock)], [self.fd]


def test_a_blocked_thread_is_ticked_without_python_until_the_deadline() -> None:
    parked = Parked()
    helper = native.Helper()
    try:
        clocks, cpus, fds = parked.watch()
        now = time.perf_counter()
        n, last, why, at, stats = helper.still(clocks, cpus, fds, now + 0.005, 0.01, now + 0.1, 1, 0.005)
        assert why == 0 and n in range(9, 13)  # ticks at 5, 15, ..., 105 ms
        assert now + 0.1 <= last == at <= now + 0.12
        (stat,) = stats
        assert stat is not None and stat[0] == pytest.approx(cpus[0] / 1e9, abs=1e-6)  # off its core: exact
        assert helper.progress(1, 0) == (n, last, stat)  # kept after the call, for a lane closing late
        assert helper.progress(2, 0) is None and helper.progress(1, 1) is None
    finally:
        parked.go.set()
        parked.thread.join(5)


def test_it_returns_at_the_first_tick_after_the_thread_ran() -> None:
    parked = Parked()
    try:
        clocks, cpus, fds = parked.watch()
        now = time.perf_counter()
        threading.Timer(0.032, parked.go.set).start()
        n, last, why, at, _ = native.Helper().still(clocks, cpus, fds, now + 0.005, 0.005, now + 1.0, 2, 0.005)
        assert why == 1  # moved
        assert now + 0.0299 <= last < now + 0.037 and at == pytest.approx(last + 0.005)
        assert n == round((last - now - 0.005) / 0.005) + 1
    finally:
        parked.go.set()
        parked.thread.join(5)


def test_a_hooked_wait_wakes_once_when_the_thread_runs_python_again_and_says_when() -> None:
    """Hooked (``hook``: a profile function set on the blocked thread, fired by its first call or return), ``still``
    does not tick: it sleeps until the thread runs Python code again and returns ``wake`` after that, the ticks it
    skipped counted from the clock (each of them would have found the thread still); ``fire`` says when the wait
    ended, and the thread's CPU clock then."""
    parked = Parked()
    helper = native.Helper()
    released: list[float] = []

    def release() -> None:
        released.append(time.perf_counter())
        parked.go.set()

    try:
        clocks, cpus, fds = parked.watch()
        assert parked.thread.ident is not None
        assert helper.hook([parked.thread.ident], 7, 0.005)
        assert helper.fire(7, 0) is None  # not yet
        threading.Timer(0.06, release).start()
        now = time.perf_counter()
        before = helper.wakes()
        n, last, why, at, stats = helper.still(clocks, cpus, fds, now + 0.005, 0.005, now + 1.0, 7, 0.005, True)
        woken = helper.wakes() - before
        fired = helper.fire(7, 0)
    finally:
        parked.go.set()
        parked.thread.join(5)
    assert why == 1 and woken == 1  # moved; the 60 ms wait woke it once (ticking: a dozen times)
    assert fired is not None and released[0] <= fired[0] < released[0] + 0.005
    assert fired[1] >= cpus[0] / 1e9  # its CPU clock then, in seconds
    assert at == pytest.approx(fired[0] + 0.005, abs=0.004)
    assert last < fired[0] <= last + 0.005 and n == round((last - now - 0.005) / 0.005) + 1
    assert stats == (None,) and helper.progress(7, 0) == (n, last, None)
    assert helper.fire(8, 0) is None and helper.fire(7, 1) is None  # another call's, no such thread


def test_a_hooked_wait_that_parks_counts_no_tick_after_its_requests_ended() -> None:
    """Its requests ended (``retire``) 30 ms in, the hooked wait parks until the next request's poke 200 ms later: the
    ticks it reports stop at the retire (the park's time was no request's)."""
    parked = Parked()
    helper = native.Helper()
    try:
        clocks, cpus, fds = parked.watch()
        assert parked.thread.ident is not None
        assert helper.hook([parked.thread.ident], 9, 0.005)
        threading.Timer(0.03, helper.retire).start()
        threading.Timer(0.23, helper.poke).start()
        now = time.perf_counter()
        n, last, why, at, _ = helper.still(clocks, cpus, fds, now + 0.005, 0.005, now + 1.0, 9, 0.005, True)
    finally:
        parked.go.set()
        parked.thread.join(5)
    assert why == 2 and at >= now + 0.23
    assert n in range(4, 9) and last < now + 0.045  # ticks at 5..30 ms (a loaded machine: a few more), none after


def test_a_thread_someone_else_profiles_or_traces_is_not_hooked_and_keeps_its_function() -> None:
    """The hook is pystrument's only where no profile or trace function is set (a profiler, a debugger, coverage):
    ``hook`` then sets none (``still`` ticks instead), and theirs stays."""
    seen: list[Any] = []
    go, ready = threading.Event(), threading.Event()

    def theirs(frame: Any, event: str, arg: Any) -> None:
        return None

    def run(setter: Callable[[Any], None], getter: Callable[[], Any]) -> None:
        setter(theirs)
        ready.set()
        go.wait(5)
        seen.append(getter())
        setter(None)

    helper = native.Helper()
    for setter, getter in ((sys.setprofile, sys.getprofile), (sys.settrace, sys.gettrace)):
        go.clear()
        ready.clear()
        thread = threading.Thread(target=run, args=(setter, getter))
        thread.start()
        ready.wait(5)
        time.sleep(0.01)
        try:
            assert helper.hook([thread.ident], 1, 0.005) is False
        finally:
            go.set()
            thread.join(5)
    assert seen == [theirs, theirs]
    assert helper.hook([threading.get_ident()], 1, 0.005) is False  # the calling thread: it runs, nothing to wait for
    assert helper.hook([2**40 + 12345], 1, 0.005) is False  # no such thread
    # Another sampler's hook is someone else's too (its fire would not reach this helper).
    parked = Parked()
    try:
        assert helper.hook([parked.thread.ident], 2, 0.005) is True
        assert native.Helper().hook([parked.thread.ident], 1, 0.005) is False
        assert helper.hook([parked.thread.ident], 3, 0.005) is True  # its own, still set: kept
    finally:
        parked.go.set()
        parked.thread.join(5)


def test_a_request_starting_ends_the_wait_at_the_next_tick_and_unpoke_forgets_earlier_ones() -> None:
    helper, other = native.Helper(), native.Helper()
    helper.poke()
    helper.unpoke()  # the sampler read the active requests after this one started: not a reason to return
    now = time.perf_counter()
    threading.Timer(0.012, other.poke).start()  # another sampler's: not this one's
    threading.Timer(0.022, helper.poke).start()
    n, _, why, at, stats = helper.still([], [], [], now + 0.005, 0.01, now + 1.0, 3, 0.005)
    assert why == 2 and stats == ()
    assert now + 0.022 <= at < now + 0.04 and n in (2, 3)


def test_a_request_starting_between_far_apart_ticks_is_sampled_when_its_first_sample_is_due() -> None:
    """While every thread is blocked the ticks are intervals apart: a request starting in between gets its
    first sample an interval in (the poke's delay), not at the next tick (a 12 ms request got none)."""
    helper = native.Helper()
    now = time.perf_counter()
    threading.Timer(0.022, helper.poke, args=(0.005,)).start()
    n, _, why, at, _ = helper.still([], [], [], now + 0.005, 0.04, now + 1.0, 4, 0.005)
    assert why == 2 and n == 1  # the tick at 5 ms; the next would have been at 45
    assert now + 0.027 <= at < now + 0.04
    # A poke due after the next tick leaves the tick as it was.
    now = time.perf_counter()
    threading.Timer(0.01, helper.poke, args=(0.05,)).start()
    n, _, why, at, _ = helper.still([], [], [], now + 0.005, 0.02, now + 1.0, 5, 0.005)
    assert why == 2 and n == 1 and now + 0.025 <= at < now + 0.04


def test_the_last_request_ending_parks_a_ticking_helper_without_waking_it() -> None:
    """``retire`` while ``still`` waits for a tick disarms that tick: the helper sleeps on until the next request's
    poke (its first sample), instead of waking at the tick only to park (a wake-up per request in sparse traffic).
    Seen as the times the helper's thread was put on a core between a request's end and the next one's start."""
    parked = Parked()
    helper = native.Helper()
    clocks, cpus, fds = parked.watch()
    found: dict[Any, Any] = {}
    waiting = threading.Event()

    def sampler() -> None:
        found["fd"] = schedstat_fd(threading.get_ident())
        for call in range(5):
            now = time.perf_counter()
            waiting.set()
            found[call] = helper.still(clocks, cpus, fds, now + 0.005, 0.03, now + 5.0, call, 0.005)

    thread = threading.Thread(target=sampler)
    woken = []
    try:
        thread.start()
        for _ in range(5):
            assert waiting.wait(5)
            waiting.clear()
            time.sleep(0.012)  # the tick at 5 ms found the thread still; the next is due at 35
            helper.retire()
            time.sleep(0.001)
            before = native.schedstat(found["fd"])
            time.sleep(0.07)  # past the next two ticks
            woken.append(native.schedstat(found["fd"])[2] - before[2])
            helper.poke(0.005)
        thread.join(10)
        for call in range(5):
            n, _, why, _, _ = found[call]
            assert why == 2 and n in (1, 2)  # 2: the retire came after the tick at 35 ms (a loaded machine)
        assert woken == [0] * 5  # woke to park at the next tick: [1, 1, 1, 1, 1]
    finally:
        parked.go.set()
        parked.thread.join(5)


def test_parked_it_wakes_when_a_request_starts_and_returns_an_interval_later() -> None:
    helper = native.Helper()
    started = time.perf_counter()
    threading.Timer(0.03, helper.poke).start()
    helper.park(0.005)
    assert started + 0.035 <= time.perf_counter() < started + 0.08
    # Poked before it parks (a request added while the sampler decided to park): it does not wait for another.
    started = time.perf_counter()
    helper.park(0.005)
    assert time.perf_counter() - started < 0.03
    helper.unpoke()


def test_bad_arguments_raise_instead_of_waiting() -> None:
    helper = native.Helper()
    with pytest.raises(ValueError, match="equally long"):
        helper.still([1], [], [], 0.0, 0.01, 0.0, 4, 0.005)
    with pytest.raises(ValueError, match="step > 0"):
        helper.still([], [], [], 0.0, 0.0, 0.0, 4, 0.005)
    with pytest.raises(TypeError):
        helper.still(["x"], [0], [0], 0.0, 0.01, 0.0, 4, 0.005)


def waiting(seconds: float) -> None:
    time.sleep(seconds)


def burning(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def split(rec: Recording) -> tuple[float, float, float]:
    """Seconds of the request's lane in ``waiting`` (its wait part), in ``burning``, anywhere."""
    records = rec.lanes[0].records()
    waited = sum(dt for stack, dt in records if stack and stack[0].startswith("waiting") and stack[-1] == WAIT)
    burned = sum(dt for stack, dt in records if stack and stack[0].startswith("burning"))
    return waited, burned, sum(dt for _, dt in records)


def run_blocked_request(
    sampler: StackSampler, wait: float, burn: float, tick_times: Callable[[Any], list[float]]
) -> tuple[Recording, list[float]]:
    """A request on its own thread that waits ``wait`` seconds (blocked) then burns ``burn`` seconds of CPU, sampled
    by ``sampler``; returns the recording and the times of the Python sampler's ticks while it ran."""
    provider = TracerProvider()
    box: dict[str, Recording] = {}
    times = tick_times(sampler)

    def request() -> None:
        rec = box["rec"] = Recording(provider.get_tracer("t").start_span("req"), 0.005, False, sys._getframe())
        sampler.add(rec)
        waiting(wait)
        burning(burn)
        sampler.remove(rec)  # as the processor does: then the recording stops
        rec.stop()

    thread = threading.Thread(target=request)
    thread.start()
    thread.join(10)
    return box["rec"], times


@pytest.mark.parametrize("how", ["hooked", "ticking", "python"])
def test_a_wait_costs_the_python_sampler_two_ticks_and_keeps_its_time_and_samples(
    how: str, helpers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 100 ms wait then 20 ms of CPU: with the helper, the Python sampler ticks about twice for the wait (its first
    sample, the tick after the thread ran) rather than once or twice every two intervals; every way the wait counts
    its samples and ends where the thread resumed, and the CPU after it is its own stack's. Hooked, the helper itself
    wakes up about once for the wait, when it ends (ticking, every two intervals), which it places exactly."""
    compiled = how != "python"
    monkeypatch.setattr(_sampler, "HOOKS", how == "hooked")
    sampler = StackSampler(native=compiled)
    wakes = sampler.native.wakes() if sampler.native is not None else 0
    try:
        time.sleep(0.05)
        rec, times = run_blocked_request(sampler, 0.1, 0.02, helpers.tick_times)
    finally:
        sampler.stop()
    waited, busy, _ = split(rec)
    python_ticks = len([t for t in times if rec.start_perf <= t <= (rec.end_perf or 0)])
    print(
        f"{'compiled' if compiled else 'python'}: {python_ticks} Python ticks, {rec.sample_count()} samples, "
        f"waited {waited * 1000:.1f} ms, ran {busy * 1000:.1f} ms"
    )
    # Within two intervals: the wait's end is placed to within one (the stated precision), the burst is sampled.
    assert waited == pytest.approx(0.1, abs=0.01) and busy == pytest.approx(0.02, abs=0.01)
    assert rec.sample_count() in range(20, 27)  # 120 ms at 5 ms, whoever ticked
    if compiled:
        assert python_ticks <= 6  # the first sample, the burst's few (moving), not the wait's
    else:
        assert python_ticks >= 9
    if how == "hooked":
        assert sampler.native is not None and sampler.native.wakes() - wakes <= 4  # the wait's end, the burst's
        assert waited == pytest.approx(0.1, abs=0.003)


def test_a_lane_closing_before_the_helper_returns_takes_its_ticks(
    monkeypatch: pytest.MonkeyPatch, helpers: Any
) -> None:
    """The request ends on its thread 2 ms after a 60 ms wait, before the helper's next tick: the lane reads what the
    helper found so far (``progress``) rather than losing the wait's samples and its end."""
    sampler = StackSampler()
    monkeypatch.setattr(_sampler, "NATIVE_RETURN_S", 5.0)
    try:
        time.sleep(0.05)
        rec, _ = run_blocked_request(sampler, 0.06, 0.002, helpers.tick_times)
    finally:
        sampler.stop()
    assert isinstance(rec.lanes[0], _lanes.ThreadLane)
    waited, _, _ = split(rec)
    assert rec.sample_count() >= 11
    assert waited == pytest.approx(0.06, abs=0.006)


def test_after_the_last_request_the_helper_parks_without_python_and_wakes_for_the_next(helpers: Any) -> None:
    """The last request ends while the helper watches its thread: it parks at its next tick (``retire``) instead of
    handing back for a Python tick that would find nothing to sample (only a tick racing the request's end does); the
    next request wakes it and is sampled. The Python sampler ticks once after every request, to park."""
    sampler = StackSampler()
    after_end = 0
    try:
        time.sleep(0.05)
        for _ in range(6):
            rec, times = run_blocked_request(sampler, 0.03, 0.0, helpers.tick_times)
            time.sleep(0.05)
            assert rec.end_perf is not None
            after_end += len([t for t in times if t > rec.end_perf])
            assert rec.sample_count() >= 4  # 30 ms at 5 ms, the first sample an interval in
            assert split(rec)[0] == pytest.approx(0.03, abs=0.01)
    finally:
        sampler.stop()
    assert after_end <= 3  # six with the Python sampler


def _runs(thread: threading.Thread) -> int:
    """Times the kernel put ``thread`` on a core (its wake-ups)."""
    with open(f"/proc/self/task/{thread.native_id}/schedstat") as f:
        return int(f.read().split()[2])


@pytest.mark.parametrize("compiled", [True, False])
def test_requests_shorter_than_the_interval_wake_no_thread(compiled: bool) -> None:
    """A request starting arms the parked helper's timer for an interval later, its end disarms it: 60 requests of
    1 ms, 3 ms apart (dense: the pure-Python sampler ticks through the gaps) never wake the sampler thread. A longer
    one still gets its first sample an interval in."""
    provider = TracerProvider()
    tracer = provider.get_tracer("t")
    sampler = StackSampler(native=compiled)

    def request(seconds: float) -> Recording:
        rec = Recording(tracer.start_span("req"), 0.005, False, sys._getframe())
        sampler.add(rec)
        waiting(seconds)
        sampler.remove(rec)
        rec.stop()
        return rec

    try:
        request(0.02)  # the sampler thread starts, samples it, parks
        time.sleep(0.05)
        thread = sampler.thread
        assert thread is not None
        before = _runs(thread)
        for _ in range(60):
            request(0.001)
            time.sleep(0.003)
        woken = _runs(thread) - before
        long = request(0.03)
    finally:
        sampler.stop()
    assert woken <= 2 if compiled else woken >= 20, woken
    assert long.sample_count() >= 4


def test_schedstat_is_read_in_c_as_the_file_says() -> None:
    """The request thread reads its schedstat baseline at every request's start (``_lanes.queue_baseline``): the
    compiled reader gives what the file says (CPU and run-queue seconds, times put on a core), None for a bad file."""
    parked = Parked(burn=0.0)
    try:
        got = native.schedstat(parked.fd)
        with open(f"/proc/self/task/{parked.thread.native_id}/schedstat") as f:
            cpu_ns, delay_ns, runs = (int(x) for x in f.read().split())
        assert got == (cpu_ns / 1e9, delay_ns / 1e9, runs)  # blocked: the file does not move
        assert _lanes.read_schedstat(parked.fd) == got
    finally:
        parked.go.set()
        parked.thread.join(5)
    assert native.schedstat(-1) is None
    with open("/proc/self/status") as not_schedstat:
        assert native.schedstat(not_schedstat.fileno()) is None
    with pytest.raises(TypeError):
        native.schedstat("3")


def test_a_task_gets_its_first_sample_at_a_random_point_of_its_first_interval(helpers: Any) -> None:
    """Parked, the helper returns an interval after a request starts on a thread (its CPU clock says what it ran), but
    at a random point of the first interval for a task on an event loop, whose CPU time is estimated from the samples
    that catch it running: as a sampler ticking on would, it catches a request shorter than the interval as often as
    it is that long, rather than never."""
    import asyncio

    provider = TracerProvider()
    tracer = provider.get_tracer("t")
    sampler = StackSampler()
    times = helpers.tick_times(sampler)

    def first_tick(rec: Recording) -> float:
        return min(t for t in times if t >= rec.start_perf) - rec.start_perf

    async def request() -> Recording:
        rec = Recording(tracer.start_span("req"), 0.005, False, sys._getframe())
        assert rec.task is not None
        sampler.add(rec)
        await asyncio.sleep(0.012)
        sampler.remove(rec)
        rec.stop()
        return rec

    async def requests() -> list[Recording]:
        done = []
        for _ in range(30):
            done.append(await asyncio.create_task(request()))
            await asyncio.sleep(0.02)  # parked in between
        return done

    try:
        tasks = asyncio.run(requests())
        threads = []
        for _ in range(10):
            time.sleep(0.02)  # parked in between (a request starting while the helper ticks is sampled at its tick)
            threads.append(run_blocked_request(sampler, 0.012, 0.0, lambda s: [])[0])
    finally:
        sampler.stop()
    on_tasks = sorted(first_tick(rec) for rec in tasks)
    on_threads = [first_tick(rec) for rec in threads]
    # 30 uniform draws over 5 ms: the chance that none falls below 2 ms, or none above 3 ms, is under 1e-6.
    assert on_tasks[0] < 0.002 and on_tasks[-1] > 0.003, on_tasks
    assert min(on_threads) >= 0.0045, on_threads
