"""The span worker: one daemon thread that builds function spans off the request path, in batches.

A request hands its recording over with a deque append; it never wakes the thread itself unless the thread is
parked (nothing was queued) or the queue is half full. Woken from its park it runs what is queued at once (the
function spans of an isolated request then reach the exporter's queue within milliseconds of its request span, so
that both go out in one export rather than two). After a batch of more than one job it collects jobs for ``period``
seconds and runs them together, so a busy server pays one thread wake-up and GIL hand-off per batch rather than per
request, and all but the batch's first job find their code and data in the caches (their function spans reach the
exporter's queue up to a period after their request span: most go out in the same export). After a
single job, with the previous batch more than two periods back, it parks again (a quiet server's request costs one
wake-up, not two). The queue is bounded: beyond ``maxsize`` waiting jobs, a request's function spans are dropped
(logged once).
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Callable

from pystrument._safety import log_once

#: Seconds the worker collects jobs before running them (while busy): a batch's first job runs with its code and data
#: out of the caches, the rest in them (a 50 ms request's spans: 370 us of CPU each at 20 a second in 50 ms batches,
#: 190 us in 0.5 s batches, 150 us in 1 s batches). Longer makes more requests' function spans miss their request
#: span's export (the exporter's 5 s batches by default: one in ten at 0.5 s) and reach the backend one export later;
#: the processor shortens it to a tenth of the exporter's delay (``PystrumentSpanProcessor._pace_worker``).
PERIOD = 0.5
_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class SpanWorker:
    """Runs submitted jobs on its own thread, a batch at a time; ``flush`` waits until everything queued ran."""

    def __init__(self, maxsize: int = 256, period: float = PERIOD) -> None:
        self.maxsize = maxsize
        self.period = period
        self.dropped = 0
        self._jobs: collections.deque[Callable[[], None]] = collections.deque()
        self._wake = threading.Event()
        self._parked = False
        self._stopping = False
        self._urgent = False
        self._working = False  # True while the thread runs a batch (jobs it took off the queue may be running)
        self._thread: threading.Thread | None = None
        #: The worker thread's id (0 before it runs): spans it starts are never requests.
        self.thread_id = 0
        self._pid = 0  # the process whose thread runs the jobs (0: none)
        self._lock = threading.Lock()

    @property
    def ident(self) -> int | None:
        thread = self._thread
        return thread.ident if thread is not None else None

    def submit(self, job: Callable[[], None]) -> bool:
        """Queue ``job``; False (and dropped) when ``maxsize`` jobs are waiting already."""
        jobs = self._jobs
        if len(jobs) >= self.maxsize:
            self.dropped += 1
            log_once(
                "worker.full",
                "pystrument: span worker queue full; dropping function spans of a request "
                "(further drops are logged at debug level)",
                exc_info=False,
            )
            return False
        jobs.append(job)  # deque.append is atomic: no lock on the request thread
        if self._pid != _pid:  # not started in this process (or forked since): start the thread
            self._ensure_thread()
        elif self._parked or len(jobs) >= self.maxsize // 2:
            self._wake.set()  # the flag is raised before the thread re-checks the queue: no lost wake-up
        return True

    def flush(self, timeout: float) -> bool:
        """Run everything queued so far now; False if it did not finish within ``timeout`` seconds. Jobs run in
        order on one thread, so a marker queued behind them runs once they all have."""
        if not self._jobs and not self._working:
            return True
        done = threading.Event()
        self._jobs.append(done.set)  # past the size limit if need be: a flush is never dropped
        if self._pid != _pid:
            self._ensure_thread()
        self._urgent = True
        self._wake.set()
        return done.wait(timeout)

    def shutdown(self, timeout: float) -> None:
        self.flush(timeout)
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._pid != _pid:
                self._stopping = False
                self._parked = False
                self._pid = _pid
                self._thread = threading.Thread(target=self._run, name="pystrument-spans", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        self.thread_id = threading.get_ident()
        try:
            self._loop()
        finally:
            self._working = False
            self._pid = 0  # the next submit starts a new thread

    def _loop(self) -> None:
        jobs = self._jobs
        batch_at = -1e9  # when the previous batch started
        while not self._stopping:
            if not jobs:
                self._parked = True
                if not jobs:
                    self._wake.wait()
                self._wake.clear()
                self._parked = False
            self._urgent = False
            self._working = True
            now = time.monotonic()
            busy, batch_at = now - batch_at < 2 * self.period, now
            ran = 0
            while jobs:
                ran += 1
                job = jobs.popleft()
                try:
                    job()
                except Exception:
                    log_once("worker.job", "pystrument: building function spans failed; carrying on")
            self._working = False
            if (busy or ran > 1) and not jobs and not self._urgent:  # collect the next batch (else park)
                self._wake.wait(self.period)
                self._wake.clear()
