"""The default sampler: ONE background thread that samples the stacks of running requests.

Every interval it reads ``sys._current_frames()`` once and asks each open lane of each active
request for the request's part of its thread's stack (on an event loop: the request's task, from
the loop thread's stack while the task runs, from its await chain while it waits). It starts
lazily with the first request and parks once no request is active, so an idle process pays nothing. Parked in the
compiled helper (below), it wakes for no request shorter than the interval: a request starting arms a timer for an
interval later (a ``poke``: one system call on the request thread), the last one ending disarms it. Parked on an
``Event`` (no helper), a request arriving wakes it (one ``Event.set`` on the request thread, whose wake-up then takes
the GIL as the request starts); while requests come less than ``IDLE_AFTER`` (30 ms) apart it ticks on (without
sampling) for that long after the last one, so that such requests do not each wake it; requests further apart than
that find it parked, since ticking 30 ms after each of them was most of the sampler's cost (six wake-ups of 40-100 us
of CPU each on a VM, per isolated request).

A waiting request costs little per tick: a thread blocked in the same call (same innermost frame, same instruction) or a
task awaiting the same future records nothing new (its previous sample is extended, run-length style, and its time
accounted when its stack next changes). While every request's threads are blocked as at the previous tick (tasks
excepted: an await's end is placed at the last tick that saw it) and the sampler got the GIL back at once (no thread
running Python code: under GIL contention threads waiting for it look blocked too), the ticks come ``STILL_STRETCH`` (2)
intervals apart until one moves: a 50 ms wait costs 6 wake-ups rather than 10 (the park after the request ends is free).
The lane places the end of the wait such a slower pace straddles (``ThreadLane._flush``): exactly when its own request
ends next (its thread, running then, was put on a core once since the last tick: it resumed its CPU time ago), else
midway between the last tick that saw it blocked and its CPU time before the next one, an error of at most half that
span: one interval at a 2-interval pace, so the spans' stated precision (``pystrument.time_precision_ms``, the interval)
holds. Four intervals apart halved the sampler thread's CPU per request on gthread at 8 in flight (69 -> 36 us) but
doubled that error, and under load a wait followed by 20 ms of CPU was placed 10 ms off (the pure-Python sampler,
test_native.py): not kept. Child spans' marks bound it too: a thread that marked its stack had resumed by then. The
thread pays for every tick (its CPU time, the wake-up included) from the cost budget (``_budget.py``) and samples up to
``BUDGET_STRETCH`` intervals apart while it is spent.

The compiled helper (``_native.c``, when the install built it). A thread's Python stack changes only while it runs, so
after each tick the sampler hands the wait to the helper with each open lane's CPU clock as read right after its stack
was taken (``ThreadLane.watch``): the helper ticks at the same pace without the GIL, and returns at the first tick at
which a thread ran, when a request starts (``poke``), or after ``NATIVE_RETURN_S``. Its ticks that found every thread
still are credited to the lanes as Python ticks that saw them blocked would have been (``ThreadLane.credit``; on the
request thread, from ``progress``, when the request ends first). With no request active the sampler parks in it
(``park``: it returns an interval after the poke of the request that starts next, for that request's first sample,
woken by the timer the poke armed), and the last request ending makes a wait park (``retire``) rather than hand back
for a tick with nothing to sample: at once, its pending tick disarmed, without a wake-up. A request starting while
the ticks are far apart (every thread blocked) brings the next forward to when its first sample is due. Between
requests the helper ticks no more: with parking costing no wake-up per request, ticking through the gaps
(``IDLE_AFTER``) was all cost (2-3 wake-ups of 36 us per request at 80 requests a second). Each sampler has a helper of
its own. Lanes of tasks have no such reading: their ticks stay Python's.

Resume hooks (the helper on CPython 3.11, ``HOOKS``). A thread's Python stack can change only when it calls or returns,
so rather than tick to learn that a blocked thread has not, the sampler sets a profile function on each watched thread
(``_native.hook``) that fires at its first call or return, notes when, asks the helper to return an interval later (the
thread's next sample, as a new request's first one) and takes itself off. The helper then sleeps through the wait: a
50 ms wait costs the sampler one wake-up (the request's first sample) instead of five, and its end is placed exactly
(the fire's time, its CPU clock then), not within half the ticks' spacing. The skipped ticks count as samples from the
clock, as the helper's would have. A thread someone else profiles or traces (a profiler, a debugger, coverage) is not
hooked, and ``sys.setprofile``'s audit event is raised at each set and removal; on other Pythons (from 3.12 a profile
function instruments every thread's code) the helper ticks as above.

Cost and the GIL switch interval. A sample needs the GIL. While the request threads wait on I/O
the sampler gets it at once; while a thread runs Python code, the sampler waits until that thread
drops the GIL, which CPython forces every ``sys.getswitchinterval()`` (5 ms by default). So under
CPU load the effective interval is max(``PYSTRUMENT_INTERVAL_MS``, switch interval), and each sample
causes one forced GIL hand-off. Durations stay correct (samples carry their real time) but become
coarser; lowering the switch interval (``sys.setswitchinterval(0.001)``) sharpens them at a small
throughput cost for every thread, so pystrument leaves it alone. The default interval, 5 ms, matches
the default switch interval. The sampler holds the GIL for a few microseconds per active request
and sample (stacks are walked only below the frame that started the request, and a blocked thread
or a waiting task whose stack has not moved is not walked again).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import types
from collections.abc import Callable
from random import random
from typing import Any, Protocol

from pystrument._budget import BURST_S, cost_budget
from pystrument._frames import TornStack
from pystrument._gc import gc_pauses
from pystrument._lanes import _native, read_schedstat, sampler_thread
from pystrument._safety import log_once

_logger = logging.getLogger("pystrument")
#: Seconds without any active request before the sampler thread parks, while requests come less than this apart;
#: further apart, it parks at the first tick that finds none active.
IDLE_AFTER = 0.03
#: While a tick finds every request's threads unchanged (blocked in the same call), the next tick comes up to this
#: many intervals later: a wait costs fewer ticks, and the run after it is still placed (its lane's CPU clock and
#: schedstat say when it resumed; ``ThreadLane._flush``; at most one interval off, the stated precision, at 2).
STILL_STRETCH = 2
#: A tick that got the GIL back this much later than asked keeps the full pace: some thread was running Python code,
#: and threads waiting for the GIL look as blocked (same frame, same instruction) as threads waiting on I/O.
LATE_S = 0.001
#: Seconds the compiled helper waits on blocked threads before handing back to the Python loop (which then samples).
NATIVE_RETURN_S = 0.5
#: Most threads the compiled helper watches at once (more: the Python ticks go on).
NATIVE_MAX_WATCH = 256
#: Whether the compiled helper sets resume hooks on blocked threads instead of ticking (``_native.hook``; CPython
#: 3.11). False: it ticks, ``STILL_STRETCH`` intervals apart while all are still (the tests' switch).
HOOKS = True
#: Most the cost budget stretches the interval (``_budget.py``): 8 x 5 ms = 25 samples a second.
BUDGET_STRETCH = 8


class Sampled(Protocol):
    """What the sampler needs from a request being recorded; once ``active`` is false the sampler drops it."""

    interval: float
    active: bool

    def sample(self, frames: dict[int, types.FrameType], now: float) -> bool: ...


class StackSampler:
    """Samples every registered request at the smallest interval any of them asked for."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter, native: bool = True) -> None:
        self.clock = clock
        #: This sampler's compiled helper (``_native.c``) doing the ticks at which nothing can move, and its parking;
        #: None: every tick in Python (``native=False``, built without it, or another clock than ``perf_counter``,
        #: CLOCK_MONOTONIC on Linux, the helper's).
        usable = native and _native is not None and clock is time.perf_counter
        self.native = _native.Helper() if usable else None
        self._active: dict[int, Sampled] = {}
        self._last: dict[int, float] = {}
        self._wake = threading.Event()
        self._idle = True
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._running = False
        self._lock = threading.Lock()
        #: When the latest request was added, and whether it came less than ``IDLE_AFTER`` after the one before.
        self._added = -1e9
        self._dense = False
        self.ticks = 0
        #: Whether the last tick found any lane moved (False: all blocked or awaiting as before, or nothing sampled).
        self.moved = True
        #: How many times the cost budget made the interval longer (a request running meanwhile was degraded).
        self.stretched = 0
        #: The interval multiplier the cost budget imposes now (1: none).
        self.stretch = 1
        self._call = 0  # numbers the compiled helper's waits

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def add(self, recording: Sampled) -> None:
        """Sample ``recording`` until it is removed or no longer active."""
        self._active[id(recording)] = recording
        now = time.perf_counter()
        self._dense = now - self._added < IDLE_AFTER  # read and written without a lock: a lost update is harmless
        self._added = now
        if not self._running:  # a flag, not Thread.is_alive(): this runs for every request
            self._ensure_thread()
        if self.native is not None:
            # The compiled helper's wait ends at its next tick; parked, it returns when the request's first sample is
            # due: an interval in, or for a task on an event loop at a random point of its first interval, as a
            # sampler ticking on would catch it. A task's CPU time is estimated from the samples that catch it running
            # (``TaskLane``): a request shorter than the interval must be caught as often as it is that long.
            interval = recording.interval
            self.native.poke(interval * random() if getattr(recording, "task", None) is not None else interval)
        elif self._idle:
            self._wake.set()

    def remove(self, recording: Sampled) -> None:
        """Stop sampling ``recording`` (on the request thread: its sample time is forgotten by the sampler thread)."""
        active = self._active
        active.pop(id(recording), None)
        native = self.native
        if native is not None and not active:
            # No request left to sample: the compiled helper parks (now, or at its next tick) rather than hand back (nor
            # ends its wait for a request that started since its last tick and has ended already). Re-checked after: one
            # added meanwhile pokes again (which also undoes the retiring).
            native.retire()
            if active:
                native.poke()

    def active(self) -> list[Sampled]:
        """The requests being sampled; drops those that ended, and the sample times of those removed."""
        active: list[Sampled] = []
        for key, recording in list(self._active.items()):
            if recording.active:
                active.append(recording)
            else:
                self._active.pop(key, None)
        if len(self._last) > len(active):
            keep = {id(recording) for recording in active}
            self._last = {key: t for key, t in self._last.items() if key in keep}
        return active

    def sample_once(self, now: float | None = None) -> None:
        """Take one sample of every active request that is due (also the unit tests' entry point)."""
        active = self.active()
        if not active:
            self.moved = False  # nothing to sample: the next tick may come later too
            return
        now = self.clock() if now is None else now
        gc_pauses.observe(now)
        if gc_pauses.open_start and gc_pauses.collecting_thread != threading.get_ident():
            # A collection under way on another thread handed the GIL over from Python code it runs (its callbacks,
            # finalizers): that thread's frames may be half made (a frame being set up allocated and collected).
            # Reading them gave objects that are not frames; the pause is shown as such instead.
            return
        frames = sys._current_frames()
        moved = False
        try:
            for recording in active:
                key = id(recording)
                last = self._last.get(key)
                if last is not None and now - last < 0.5 * recording.interval:
                    continue
                self._last[key] = now
                try:
                    if recording.sample(frames, now):
                        moved = True
                except TornStack:  # a thread's frames read mid-teardown: no sample of it this tick
                    continue
                except Exception:
                    log_once("sampler.sample", "pystrument: sampling a request failed; carrying on")
        finally:
            del frames
        self.moved = moved
        self.ticks += 1

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        if self.native is not None:
            self.native.poke()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2)

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._running:
                return
            self._stopped = False
            self._running = True
            self._thread = threading.Thread(target=self._run, name="pystrument-sampler", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        sampler_thread[0] = threading.get_ident()
        try:
            read_schedstat(-1)  # looks libc's pread up now (ctypes' import), not in the first sample that needs it
            self._loop()
        except Exception:
            log_once("sampler.thread", "pystrument: the sampler thread stopped on an error; restarting it")
        finally:
            self._running = False

    def _loop(self) -> None:
        # ``lateness`` estimates how long getting the GIL back after a sleep takes (up to the switch interval
        # while a thread runs Python code); sleeping that much less keeps samples one interval apart.
        # ``still`` stretches the interval while nothing moves; ``self.stretch`` while the cost budget is spent. The
        # sampler pays for every tick (its thread's CPU time, the wake-up included) from the budget.
        self._idle = False
        lateness = 0.0
        last = busy = self.clock()
        interval = 0.005
        still = 1
        cpu = time.thread_time()
        native = self.native
        while not self._stopped:
            active = list(self._active.values())  # ended requests too, until the next sample drops them
            if active:
                busy = last
                interval = min(r.interval for r in active) if len(active) > 1 else active[0].interval
            elif native is not None or not self._dense or last - busy > IDLE_AFTER:
                self._idle = True
                if native is not None:
                    # Parked in the helper: a request starting pokes it, which arms a timer for an interval later, the
                    # request's first sample; the request ending first disarms it (no thread wakes for a request
                    # shorter than the interval, no Python code runs in between; an add() meanwhile leaves the poke
                    # set).
                    native.park(interval)
                    self._idle = False
                    last = busy = self.clock()
                    native.unpoke()
                    self.sample_once(last)
                    still = 1
                    spent = time.thread_time()
                    self._pay(spent - cpu, last)
                    cpu = spent
                    continue
                if not self._active:  # re-checked after raising the flag: an add() in between sets the event
                    self._wake.wait()
                self._wake.clear()
                self._idle = False
                last = busy = self.clock()
                cpu = time.thread_time()
                continue
            step = interval * max(still, self.stretch)
            watched = self._watch(active) if native is not None else None
            if watched is not None and native is not None:
                # The ticks at which no profiled thread has run since its stack was taken are the compiled helper's;
                # it returns at the first other one.
                lanes, clocks, cpus, fds = watched
                deadline = last + NATIVE_RETURN_S
                self._call += 1
                call = self._call
                paced = interval * self.stretch
                # Hooked (every thread's resume hook set): no tick until a thread runs Python code again, its ticks
                # counted at the full pace; else ticks, slower while all are still.
                hooked = HOOKS and native.hook([lane.thread_id for lane in lanes], call, paced)
                later = paced if hooked else interval * max(STILL_STRETCH, self.stretch)
                for i, lane in enumerate(lanes):
                    lane.watch_slot = (native, call, i)
                n, seen, _why, at, stats = native.still(
                    clocks, cpus, fds, last + (paced if hooked else step), later, deadline, call, interval, hooked
                )
                now = self.clock()
                if n:  # none: no lane has a run to credit (a fire before the first tick is a moved sample's)
                    self.ticks += n
                    for i, (lane, stat) in enumerate(zip(lanes, stats, strict=True)):
                        lane.credit(seen, stat, native.fire(call, i) if hooked else None)
                late = max(0.0, now - at)  # waited that long for the GIL after the tick
            else:
                delay = max(0.0, last + step - self.clock() - lateness)
                before = self.clock()
                time.sleep(delay)  # always sleep, even 0: it releases the GIL
                now = self.clock()
                late = max(0.0, now - before - delay)
                lateness = 0.5 * lateness + 0.5 * late
            last = now
            if native is not None:
                native.unpoke()  # requests added from here on are the next wait's to notice
            self.sample_once(now)
            # Idle ticks (no request active) keep the full pace: a request starting meanwhile is sampled an interval in.
            # A late wake-up keeps it too: a thread held the GIL (one waiting for it looks blocked at its instruction).
            still = 1 if self.moved or not active or late > LATE_S else min(STILL_STRETCH, 2 * still)
            spent = time.thread_time()
            self._pay(spent - cpu, now)
            cpu = spent

    def _watch(self, active: list[Sampled]) -> tuple[list[Any], list[int], list[int], list[int]] | None:
        """The open lanes of the active requests, and for each what the compiled helper watches (``ThreadLane.watch``);
        None when a lane has nothing to watch (a task, no CPU clock, not sampled yet): the next tick is Python's."""
        lanes: list[Any] = []
        clocks: list[int] = []
        cpus: list[int] = []
        fds: list[int] = []
        for recording in active:
            for lane in getattr(recording, "lanes", None) or ():
                if lane.end is not None:
                    continue
                watch = getattr(lane, "watch", None)
                got = watch() if watch is not None else None
                if got is None or len(lanes) >= NATIVE_MAX_WATCH:
                    return None
                lanes.append(lane)
                clocks.append(got[0])
                cpus.append(got[1])
                fds.append(got[2])
        if active and not lanes:
            return None
        return lanes, clocks, cpus, fds

    def _pay(self, seconds: float, now: float) -> None:
        """Take a tick's CPU time from the cost budget; stretch the interval while it is spent, relax it after."""
        if cost_budget.unlimited:
            self.stretch = 1
            return
        left = cost_budget.spend(seconds, now)
        if left < 0:
            if self.stretch < BUDGET_STRETCH:
                self.stretch *= 2
                log_once(
                    "cpu_budget.sampler",
                    f"pystrument: sampling would take more than PYSTRUMENT_SPAN_BUDGET={cost_budget.share:g} of a "
                    "CPU core; sampling less often while it is spent (requests say pystrument.profile.degraded)",
                    exc_info=False,
                    level=logging.INFO,
                )
        elif self.stretch > 1 and left > 0.5 * cost_budget.share * BURST_S:
            self.stretch = 1
        if self.stretch > 1:
            self.stretched += 1


_sampler: StackSampler | None = None
_sampler_lock = threading.Lock()


def get_sampler() -> StackSampler:
    """The process-wide sampler (one thread for all processors)."""
    global _sampler
    if _sampler is None:
        with _sampler_lock:
            if _sampler is None:
                _sampler = StackSampler()
    return _sampler


def _reset_after_fork() -> None:
    global _sampler
    _sampler = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
