"""Bounded demo traffic: a weighted mix of the sample apps' endpoints, a few at a time, with a progress bar."""

from __future__ import annotations

import contextlib
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

import httpx

WORKERS = 4

# (service, path template, weight): {n} becomes a small random number.
MIX: list[tuple[str, str, int]] = [
    ("shop-web", "/orders", 18),
    ("shop-web", "/reports/sales", 12),
    ("shop-web", "/recommendations/{n}", 14),
    ("shop-web", "/products/{n}", 16),
    ("shop-web", "/stock/{n}/reserve", 10),
    ("catalog-api", "/inventory", 12),
    ("catalog-api", "/quote/SKU-{n:05d}", 14),
    ("catalog-api", "/catalog?page={page}", 14),
]


@dataclass
class TrafficResult:
    sent: int = 0
    failed: int = 0
    elapsed: float = 0.0
    by_service: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)


def plan(total: int, seed: int = 42) -> list[tuple[str, str]]:
    """The (service, path) of every request, in order; every endpoint appears when ``total`` allows."""
    rng = random.Random(seed)
    weights = [w for _, _, w in MIX]
    chosen = list(MIX) if total >= len(MIX) else []
    chosen += rng.choices(MIX, weights=weights, k=total - len(chosen))
    rng.shuffle(chosen)
    return [(svc, path.format(n=rng.randint(1, 300), page=rng.randint(1, 10))) for svc, path, _ in chosen]


class Progress:
    """A plain-text progress bar: redrawn in place on a terminal, a line per 10 % otherwise."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total = max(total, 1)
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self._done_printed = -self.total

    def update(self, done: int, failed: int, elapsed: float, final: bool = False) -> None:
        with contextlib.suppress(OSError):  # a closed terminal must not stop the traffic or the shutdown
            self._draw(done, failed, elapsed, final)

    def _draw(self, done: int, failed: int, elapsed: float, final: bool) -> None:
        filled = int(self.width * done / self.total)
        line = (
            f"traffic [{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} requests"
            f"  {elapsed:5.1f} s" + (f"  {failed} failed" if failed else "")
        )
        if self.tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        else:
            # Off a terminal, one line per tenth of the requests (and the last one), not one per redraw.
            if (done * 10 // self.total) == (self._done_printed * 10 // self.total) and not final:
                return
            if final and done == self._done_printed:
                return
            self._done_printed = done
            self.stream.write(line + "\n")
        self.stream.flush()


def drive(
    urls: dict[str, str],
    total: int,
    duration: float,
    cancelled: Callable[[], bool],
    progress: Progress | None = None,
) -> TrafficResult:
    """Send up to ``total`` requests within ``duration`` seconds; stop early when ``cancelled()``."""
    requests = plan(total)
    result = TrafficResult()
    lock = threading.Lock()
    cursor = iter(requests)
    start = time.monotonic()
    deadline = start + duration

    def worker() -> None:
        with httpx.Client(timeout=30) as client:
            while not cancelled() and time.monotonic() < deadline:
                with lock:
                    item = next(cursor, None)
                if item is None:
                    return
                service, path = item
                try:
                    status = client.get(urls[service] + path).status_code
                except httpx.HTTPError:
                    status = 0
                with lock:
                    result.sent += 1
                    result.by_service[service] += 1
                    result.statuses[status] += 1
                    if status == 0 or status >= 500:
                        result.failed += 1

    threads = [threading.Thread(target=worker, name=f"demo-traffic-{i}", daemon=True) for i in range(WORKERS)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(0.2)
        if progress is not None:
            progress.update(result.sent, result.failed, time.monotonic() - start)
    result.elapsed = time.monotonic() - start
    if progress is not None:
        progress.update(result.sent, result.failed, result.elapsed, final=True)
    return result
