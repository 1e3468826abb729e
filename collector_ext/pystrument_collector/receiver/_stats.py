"""In-process ingest counters (per server process), served at ``GET /v1/stats``."""

from __future__ import annotations

import time
from typing import Any


class IngestStats:
    """Counts of spans accepted, duplicate, rejected and dropped (by reason), and requests by HTTP status."""

    def __init__(self) -> None:
        self.started = time.time()
        self.requests: dict[str, int] = {}
        self.spans_accepted = 0
        self.spans_duplicate = 0
        self.records_accepted = 0
        self.rejected: dict[str, int] = {}
        self.dropped: dict[str, dict[str, int]] = {}

    def request(self, status: int) -> None:
        key = str(status)
        self.requests[key] = self.requests.get(key, 0) + 1

    def accepted(self, inserted: int, duplicates: int, records: int) -> None:
        self.spans_accepted += inserted
        self.spans_duplicate += duplicates
        self.records_accepted += records

    def reject(self, reasons: dict[str, int]) -> None:
        """Spans refused individually (partial success): bad ids, missing times."""
        for reason, n in reasons.items():
            self.rejected[reason] = self.rejected.get(reason, 0) + n

    def drop(self, reason: str, spans: int = 0) -> None:
        """A whole request not stored (unauthorised, undecodable, too large, database down); spans if known."""
        entry = self.dropped.setdefault(reason, {"requests": 0, "spans": 0})
        entry["requests"] += 1
        entry["spans"] += spans

    def snapshot(self) -> dict[str, Any]:
        return {
            "since": self.started,
            "requests": dict(self.requests),
            "spans": {
                "accepted": self.spans_accepted,
                "duplicate": self.spans_duplicate,
                "rejected": dict(self.rejected),
                "rejected_total": sum(self.rejected.values()),
                "dropped": {k: dict(v) for k, v in self.dropped.items()},
            },
            "records": {"accepted": self.records_accepted},
        }
