"""The sampler's alarm clock: one timer that request threads arm and disarm without waking the sampler thread.

A request starting while no other runs arms the alarm one interval ahead; the last request ending disarms it. The
sampler thread blocks on the alarm in between, so a request shorter than the interval, or an idle process, costs no
wake-up of it at all (a wake-up is 30-100 us of CPU on a VM, more than the sample it takes). On Linux the alarm is a
``timerfd``: arming is one system call on the request thread and the sampler blocks in ``read`` without the GIL. Where
there is none (other systems, no ``ctypes``), a ``Condition`` stands in: arming wakes the thread once, which then
sleeps until the time it was given.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading
import time
from collections.abc import Callable

CLOCK_MONOTONIC = 1
TFD_CLOEXEC = 0o2000000


class Alarm:
    """One-shot alarm: ``open()`` before use, ``arm(delay)`` (re-arming replaces the time), ``disarm()``, ``wait()``
    until it rings (blocks while disarmed). Callers serialize ``arm``/``disarm``; ``wait`` runs on one thread."""

    def open(self) -> None:
        pass

    def arm(self, delay: float) -> bool:
        """Ring in ``delay`` seconds; False if the alarm is broken (its file closed under it)."""
        raise NotImplementedError

    def disarm(self) -> None:
        raise NotImplementedError

    def wait(self, current: Callable[[], bool] = lambda: True) -> bool:
        """Block until the alarm rings; False (and nothing consumed) if by then ``current()`` says it is no longer
        the alarm in use."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class TimerFdAlarm(Alarm):
    """A Linux ``timerfd`` (``CLOCK_MONOTONIC``), set through libc with the GIL held (``ctypes.PyDLL``: the call
    does not block, and releasing the GIL there could hand it to another thread for a switch interval). Arming and
    disarming run on request threads: each is one call with a prepared argument (no ``argtypes`` conversion, the
    ``itimerspec`` of each delay made once), about a microsecond with the system call."""

    def __init__(self) -> None:
        import ctypes

        class Timespec(ctypes.Structure):
            _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

        class Itimerspec(ctypes.Structure):
            _fields_ = [("it_interval", Timespec), ("it_value", Timespec)]

        libc = ctypes.PyDLL(None)
        self._create = libc.timerfd_create
        self._settime = libc.timerfd_settime  # int fd, int flags, const itimerspec *new, itimerspec *old
        #: The timer's file, made by ``open`` (-1 before): when the sampler thread starts, in the process that samples,
        #: not when pystrument is configured (a server that then daemonizes and closes every file, or forks, would
        #: leave it a number that another file may take).
        self.fd = -1
        self._poller: select.poll | None = None
        self._polled = -1
        self._spec = Itimerspec
        self._byref = ctypes.byref
        #: Prepared ``itimerspec`` arguments by delay in microseconds (a request arms its interval; a few distinct).
        self._armed: dict[int, object] = {}
        self._disarmed = ctypes.byref(Itimerspec())

    def open(self) -> None:
        if self.fd < 0:
            fd = self._create(CLOCK_MONOTONIC, TFD_CLOEXEC)
            if fd < 0:
                raise OSError("timerfd_create failed")
            self.fd = fd

    def arm(self, delay: float) -> bool:
        us = int(delay * 1e6)
        spec = self._armed.get(us)
        if spec is None:
            if len(self._armed) > 64:  # slowed-down ticks arm many delays: keep the table small
                self._armed.clear()
            ns = max(1000, us * 1000)  # a zero time would disarm it
            value = self._spec()
            value.it_value.tv_sec, value.it_value.tv_nsec = divmod(ns, 1_000_000_000)
            spec = self._armed[us] = self._byref(value)
        return self._settime(self.fd, 0, spec, None) == 0

    def disarm(self) -> None:
        self._settime(self.fd, 0, self._disarmed, None)

    def wait(self, current: Callable[[], bool] = lambda: True) -> bool:
        # Poll, then read: a file number closed under the alarm and taken by another file is never read from once the
        # alarm was replaced. Both block without the GIL; poll until the timer expires (not while it is disarmed).
        poller = self._poller
        if poller is None or self._polled != self.fd:
            poller = self._poller = select.poll()
            poller.register(self.fd, select.POLLIN)
            self._polled = self.fd
        poller.poll()
        if not current():
            return False
        os.read(self.fd, 8)
        return True

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


class ConditionAlarm(Alarm):
    """The portable stand-in: arming notifies the waiting thread, which then sleeps until the deadline."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._deadline: float | None = None

    def arm(self, delay: float) -> bool:
        with self._cond:
            self._deadline = time.monotonic() + delay
            self._cond.notify()
        return True

    def disarm(self) -> None:
        with self._cond:
            self._deadline = None

    def wait(self, current: Callable[[], bool] = lambda: True) -> bool:
        with self._cond:
            while True:
                deadline = self._deadline
                if deadline is None:
                    self._cond.wait()
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    self._deadline = None
                    return True
                self._cond.wait(left)


def new_alarm() -> Alarm:
    """A ``timerfd`` alarm where the system has one, else the portable one."""
    if sys.platform == "linux":
        with contextlib.suppress(ImportError, OSError, AttributeError):
            return TimerFdAlarm()
    return ConditionAlarm()
