"""In-process ingest counters (per server process), served at ``GET /v1/stats``."""

from __future__ import annotations

import time
from typing import Any


class _Signal:
    """Counters of one stored signal (spans or log records)."""

    def __init__(self) -> None:
        self.accepted = 0
        self.duplicate = 0
        self.rejected: dict[str, int] = {}
        self.dropped: dict[str, dict[str, int]] = {}

    def snapshot(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "rejected": dict(self.rejected),
            "rejected_total": sum(self.rejected.values()),
            "dropped": {k: dict(v) for k, v in self.dropped.items()},
        }


class IngestStats:
    """Counts of spans and log records accepted, duplicate, rejected and dropped (by reason), metrics requests
    answered, and requests by HTTP status (gRPC calls by the HTTP status of the same outcome) and transport."""

    def __init__(self) -> None:
        self.started = time.time()
        self.requests: dict[str, int] = {}
        self.transports: dict[str, int] = {}
        self.signals = {"traces": _Signal(), "logs": _Signal()}
        self.records_accepted = 0
        self.metrics_requests = 0

    @property
    def spans_accepted(self) -> int:
        return self.signals["traces"].accepted

    def request(self, status: int, transport: str = "http") -> None:
        key = str(status)
        self.requests[key] = self.requests.get(key, 0) + 1
        self.transports[transport] = self.transports.get(transport, 0) + 1

    def accepted(self, inserted: int, duplicates: int, records: int, signal: str = "traces") -> None:
        if signal == "metrics":
            self.metrics_requests += 1
            return
        counters = self.signals[signal]
        counters.accepted += inserted
        counters.duplicate += duplicates
        self.records_accepted += records

    def reject(self, reasons: dict[str, int], signal: str = "traces") -> None:
        """Items refused individually (partial success): bad ids, missing times."""
        if signal not in self.signals:
            return
        rejected = self.signals[signal].rejected
        for reason, n in reasons.items():
            rejected[reason] = rejected.get(reason, 0) + n

    def drop(self, reason: str, items: int = 0, signal: str = "traces") -> None:
        """A whole request not stored (unauthorised, undecodable, too large, database down); items if known."""
        counters = self.signals.get(signal, self.signals["traces"])  # metrics requests count with the spans'
        unit = "records" if signal == "logs" else "spans"
        entry = counters.dropped.setdefault(reason, {"requests": 0, unit: 0})
        entry["requests"] += 1
        entry[unit] += items

    def snapshot(self) -> dict[str, Any]:
        return {
            "since": self.started,
            "requests": dict(self.requests),
            "transports": dict(self.transports),
            "spans": self.signals["traces"].snapshot(),
            "logs": self.signals["logs"].snapshot(),
            "records": {"accepted": self.records_accepted},
            "metrics": {"requests": self.metrics_requests, "stored": False},
        }
