"""The last two steps over the rules' findings: the dominant function is named first, and the request's time is
accounted for (the findings explain at least 80% of it, or an ``unexplained`` finding says where the rest went)."""

from __future__ import annotations

from typing import Any

from pystrument_analysis.analysis.findings import Finding
from pystrument_analysis.analysis.model import UNSAMPLED, TraceModel, Unit
from pystrument_analysis.analysis.trace import TSpan

DOMINANT_SHARE = 0.4
DOMINANT_MIN_MS = 10.0
COVERAGE_TARGET = 0.8
UNEXPLAINED_GATE_MS = 100.0  # a request without findings gets an account of its time from this long on
MAX_WHERE = 4


def dominant(model: TraceModel) -> Unit | None:
    """The unit holding the most of the request, when that is at least 40% (and 10 ms)."""
    best = max(model.units.values(), key=lambda u: u.held_ms, default=None)
    if best is None or best.held_ms < max(DOMINANT_MIN_MS, DOMINANT_SHARE * model.total_ms):
        return None
    return best


def _related(a: TSpan, b: TSpan) -> bool:
    return a is b or any(x is b for x in a.ancestors()) or any(x is a for x in b.ancestors())


def names(finding: Finding, unit: Unit) -> bool:
    """The finding is about the unit's time: it names the unit, a function it runs, or the function running it."""
    if finding.function == unit.label:
        return True
    anchors = [*([finding.function_span] if finding.function_span is not None else []), *finding.spans[:20]]
    return any(_related(anchor, span) for anchor in anchors for span in unit.spans)


def _dominant_finding(model: TraceModel, unit: Unit) -> Finding:
    """No rule spoke for the dominant unit: say what it held, as waiting or as work, and where it ran."""
    main = max(unit.spans, key=lambda s: s.ms)
    owned = [f for s in unit.spans for f in model.owned_frames[s]]
    waited = sum(s.wait_ms for s in unit.spans) + sum(f.wait_ms for f in owned)
    # A coroutine suspended in ``await`` holds nothing: the loop runs other requests meanwhile.
    awaited = sum(s.await_ms - s.loop_wait_ms for s in unit.spans) + sum(f.await_ms - f.loop_wait_ms for f in owned)
    on_loop = model.on_loop.get(main, False)
    if on_loop and awaited >= 0.75 * unit.held_ms:
        detector, kind = "async_wait", "io"
    elif on_loop:
        detector, kind = "blocking_in_async", "blocking"
    elif waited >= 0.75 * unit.held_ms:
        detector, kind = "blocking_wait", "blocking"
    else:
        detector, kind = "cpu_hotspot", "cpu"
    where = model.owner_of(main.parent) if main.parent is not None else None
    detail = {"library": f"in {where.label}" if where is not None else ""}
    if detector == "blocking_in_async":
        detail["library"] = "a blocking call or CPU-bound work"
    return Finding(
        detector=detector,
        type=kind,
        function=unit.label,
        impact=min(1.0, unit.held_ms / model.total_ms),
        time_ms=unit.held_ms,
        spans=[s for s in unit.spans if s is not main],
        function_span=main,
        count=len(unit.spans),
        saving=0.5,
        detail={k: v for k, v in detail.items() if v},
        min_severity="high",
    )


def lead_with_dominant(model: TraceModel, findings: list[Finding]) -> tuple[list[Finding], Unit | None]:
    """A unit holding 40% or more of the request is what the first finding is about."""
    unit = dominant(model)
    if unit is None:
        return findings, None
    about = [f for f in findings if names(f, unit)]
    lead = max(about, key=lambda f: f.impact) if about else _dominant_finding(model, unit)
    return [lead, *(f for f in findings if f is not lead)], unit


def _where(model: TraceModel, findings: list[Finding]) -> list[tuple[str, float]]:
    """The parts of the request's time no finding speaks for, biggest first."""
    parts: list[tuple[str, float]] = []
    for unit in model.units.values():
        if unit.held_ms >= 0.5 and not any(f.function == unit.label or f.function_span in unit.spans for f in findings):
            parts.append((unit.label, unit.held_ms))
    starved = model.trace.starved
    parts.append((f"{UNSAMPLED[:-1]}: {starved})" if starved else UNSAMPLED, model.unsampled_ms))
    detectors = {f.detector for f in findings}
    if "gc_pause" not in detectors:
        parts.append(("garbage collection", model.gc_ms))
    if "loop_blocked_by_other_request" not in detectors:
        parts.append(("waiting for the event loop", model.loop_wait_ms))
    return sorted(((what, ms) for what, ms in parts if ms >= 0.5), key=lambda p: -p[1])


def account(model: TraceModel, findings: list[Finding]) -> tuple[Finding | None, dict[str, Any]]:
    """The coverage of the findings, and the ``unexplained`` finding when they cover less than 80%."""
    total = model.total_ms
    explained = min(total, sum(f.time_ms for f in findings))
    where = _where(model, findings)
    coverage: dict[str, Any] = {
        "explained_pct": round(100.0 * explained / total, 1),
        "unexplained_ms": round(total - explained, 3),
        "where": [{"what": what, "ms": round(ms, 3)} for what, ms in where[:MAX_WHERE]],
    }
    if model.trace.starved:
        coverage["starved"] = model.trace.starved
    rest = total - explained
    wanted = findings or total >= UNEXPLAINED_GATE_MS or model.trace.starved
    if explained >= COVERAGE_TARGET * total or not wanted or rest < 1.0:
        return None, coverage
    text = ", ".join(f"{what} {ms:.0f} ms" if ms >= 10 else f"{what} {ms:.1f} ms" for what, ms in where[:MAX_WHERE])
    detail = {"where": text or UNSAMPLED}
    if model.trace.starved:
        detail["starved"] = model.trace.starved
    finding = Finding(
        detector="unexplained",
        type="unexplained",
        function=where[0][0] if where else UNSAMPLED,
        impact=min(1.0, rest / total),
        time_ms=rest,
        spans=[],
        saving=0.0,
        detail=detail,
    )
    return finding, coverage
