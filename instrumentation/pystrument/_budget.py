"""One CPU budget for everything pystrument adds: sampling, building function spans and exporting them.

A bucket of CPU seconds, filled at ``share`` seconds per second (``PYSTRUMENT_SPAN_BUDGET``, a share of one core) up
to ``BURST_S`` seconds' worth. The sampler thread pays for its ticks (its own measured thread CPU time, wake-ups
included); a request pays as it starts for what it is expected to cost: its hooks, and building its function spans
(the span worker's measured CPU per request) and exporting them (an estimate per span: encoding runs on the exporter's
thread, which pystrument does not own). When the bucket is empty the sampler samples less often and requests starting
then are not profiled, so pystrument never takes more than the share for long; the request span says so
(``pystrument.profile.degraded``).
"""

from __future__ import annotations

import time

#: Seconds of budget that may build up while little is spent (a burst allowance).
BURST_S = 1.0
#: Estimated CPU seconds the exporter spends per function span (OTLP protobuf encoding and the HTTP post: 30-80 us
#: measured on the development machine); added to the span worker's measured cost of a request.
EXPORT_S_PER_SPAN = 60e-6


class CostBudget:
    """The process-wide bucket (read and written without a lock: a lost update only makes it a little off)."""

    def __init__(self, share: float = 0.01) -> None:
        self.share = share
        self.tokens = share * BURST_S
        self.at = time.perf_counter()

    def configure(self, share: float) -> None:
        """Set the share (the latest configured processor's; 1 = no limit)."""
        if share != self.share:
            self.share = share
            self.tokens = share * BURST_S
            self.at = time.perf_counter()

    @property
    def unlimited(self) -> bool:
        return self.share >= 1

    #: The most the bucket holds beyond one burst: one request's estimated cost, if more (else it never fits).
    ceiling = 0.0

    def left(self, now: float, floor: float = 0.0) -> float:
        """Seconds in the bucket at ``now`` (refilled since last time); at least ``floor`` may be kept."""
        share = self.share
        tokens = min(max(share * BURST_S, floor, self.ceiling), self.tokens + (now - self.at) * share)
        self.tokens, self.at = tokens, now
        return tokens

    def take(self, seconds: float, now: float) -> bool:
        """Take ``seconds`` unless the bucket is in debt (False, nothing taken); it may go into debt by taking them."""
        if self.share >= 1:
            return True
        tokens = self.left(now)
        if tokens < 0:
            return False
        self.tokens = max(-self.share * BURST_S, tokens - seconds)
        return True

    def spend(self, seconds: float, now: float, floor: float = 0.0) -> float:
        """Take ``seconds`` (the bucket may go into debt, of one burst's worth at most, so that it recovers within
        about two bursts once spending stops); returns what is left."""
        if self.share >= 1:
            return 1.0
        tokens = max(-self.share * BURST_S, self.left(now, floor) - seconds)
        self.tokens = tokens
        return tokens


cost_budget = CostBudget()
