"""Export a trace's function spans as a speedscope file (evented profiles, one per request span).

Function span times are rebuilt from samples and may poke out of their parent by a sampling interval;
speedscope needs strictly nested open/close events, so each span is clamped into its parent, after its
previous sibling and before its next one. See https://www.speedscope.app/file-format-schema.json.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pystrument_collector.db.models import PerformanceRecord
from pystrument_collector.packs import StoredSpan as Span

SCHEMA_URL = "https://www.speedscope.app/file-format-schema.json"
MAX_DEPTH = 512
# Spans read for one export: beyond, the file holds the first ones and says it is truncated (name and
# ``pystrument.truncated``), so a huge trace cannot take the server's memory.
MAX_SPEEDSCOPE_SPANS = 20_000


class _Frames:
    """The shared frame table: one entry per (name, file, line)."""

    def __init__(self) -> None:
        self.index: dict[tuple[str, str, int | None], int] = {}
        self.frames: list[dict[str, Any]] = []

    def of(self, span: Span) -> int:
        attrs = span.attributes or {}
        file = attrs.get("code.file.path") or attrs.get("code.filepath") or ""
        line = attrs.get("code.line.number", attrs.get("code.lineno"))
        line_no = int(line) if isinstance(line, int | float) else None
        key = (span.name, str(file), line_no)
        if key not in self.index:
            frame: dict[str, Any] = {"name": span.name}
            if file:
                frame["file"] = str(file)
            if line_no is not None:
                frame["line"] = line_no
            self.index[key] = len(self.frames)
            self.frames.append(frame)
        return self.index[key]


def _ms(t: datetime, origin: datetime) -> float:
    return (t - origin).total_seconds() * 1000.0


def _profile(root: Span, children: dict[str, list[Span]], frames: _Frames, title: str) -> dict[str, Any]:
    origin = root.start_time
    end_value = root.duration * 1000.0
    events: list[dict[str, Any]] = []

    def emit(span: Span, lo: float, hi: float, depth: int) -> None:
        frame = frames.of(span)
        events.append({"type": "O", "frame": frame, "at": lo})
        cursor = lo
        if depth < MAX_DEPTH:
            kids = children.get(span.span_id, [])
            for i, child in enumerate(kids):
                start = max(_ms(child.start_time, origin), cursor)
                end = min(_ms(child.start_time, origin) + child.duration * 1000.0, hi)
                if i + 1 < len(kids):  # rounding overlap with the next call: cut here, keep both
                    next_start = _ms(kids[i + 1].start_time, origin)
                    if next_start > start:
                        end = min(end, next_start)
                if end <= start:
                    continue
                emit(child, start, end, depth + 1)
                cursor = end
        events.append({"type": "C", "frame": frame, "at": hi})

    emit(root, 0.0, end_value, 0)
    return {
        "type": "evented",
        "name": title,
        "unit": "milliseconds",
        "startValue": 0.0,
        "endValue": end_value,
        "events": events,
    }


def speedscope_document(
    trace_id: str, records: Sequence[PerformanceRecord], spans: Sequence[Span], total: int | None = None
) -> dict[str, Any]:
    """A speedscope file with one evented profile per request span of the trace that was stored; ``total``: the
    trace's span count when ``spans`` holds only the first of them."""
    by_id = {s.span_id: s for s in spans}
    children: dict[str, list[Span]] = {}
    for s in spans:
        if s.synthetic and s.parent_span_id:
            children.setdefault(s.parent_span_id, []).append(s)
    for group in children.values():
        group.sort(key=lambda s: (s.start_time, -s.duration))
    frames = _Frames()
    profiles = []
    for record in records:
        root = by_id.get(record.span_id)
        if root is None:
            continue
        label = " ".join(p for p in (record.method, record.route or record.path) if p) or root.name
        title = f"{record.service_name}: {label}" if record.service_name else label
        profiles.append(_profile(root, children, frames, title))
    truncated = total is not None and total > len(spans)
    name = f"pystrument trace {trace_id}"
    if truncated:
        name += f" (truncated: the first {len(spans)} of {total} spans)"
    return {
        "$schema": SCHEMA_URL,
        "shared": {"frames": frames.frames},
        "profiles": profiles,
        "name": name,
        "activeProfileIndex": 0,
        "exporter": "pystrument",
        "pystrument": {"truncated": truncated, "spans_included": len(spans), "spans_total": total or len(spans)},
    }
