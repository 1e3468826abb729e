"""Rules on the time functions held: CPU hotspots, waits, blocking the event loop, library work by kind
(serialization, regex, locks), template rendering and deliberate costs (password hashing)."""

from __future__ import annotations

from collections import defaultdict

from pystrument_analysis.analysis.classify import frame_label
from pystrument_analysis.analysis.findings import Finding
from pystrument_analysis.analysis.model import TraceModel, real_calls_ms, union_ms
from pystrument_analysis.analysis.trace import TSpan

CPU_MIN_SHARE = 0.15
CPU_MIN_MS = 10.0
WAIT_MIN_MS = 20.0
WAIT_MIN_SHARE = 0.1
WAIT_ONLY = 0.75  # a function that waited this share of its own time was stopped, not slowed by the GIL
CATEGORY_MIN_SHARE = 0.05
CATEGORY_MIN_MS = 5.0
BLOCKING_MIN_MS = 5.0
BLOCKING_MIN_SHARE = 0.05
LOOP_CATEGORIES = (None, "blocking", "lock")  # library work that holds the loop as the function's own
SAVINGS = {"serialization": 0.6, "template": 0.5, "regex": 0.7, "lock": 0.8}
DETECTORS = {"serialization": "serialization", "template": "template_rendering", "regex": "regex", "lock": "lock_wait"}


def _has_io(span: TSpan) -> bool:
    return any(d.is_db or d.is_http_client for d in span.walk())


def _app_units(model: TraceModel, on_loop: bool) -> dict[str, list[TSpan]]:
    """Application functions by name (templates and deliberate costs have rules of their own)."""
    units: dict[str, list[TSpan]] = defaultdict(list)
    for span in model.trace.spans:
        if (
            model.owner.get(span) is span
            and span.template is None
            and model.category.get(span) != "deliberate"
            and model.on_loop.get(span, False) == on_loop
        ):
            units[span.label].append(span)
    return units


def detect_work(model: TraceModel) -> list[Finding]:
    """Off the event loop: a function's own time and the uncategorised library work it calls. Mostly waiting (a
    sleep, a lock or I/O in C code, no span to show for it): ``blocking_wait``; else ``cpu_hotspot``, its waits
    counted in (a thread that computes among other threads also waits for the GIL)."""
    findings: list[Finding] = []
    total = model.total_ms
    for name, spans in _app_units(model, on_loop=False).items():
        run = wait = 0.0
        libs: list[TSpan] = []
        for span in spans:
            real = real_calls_ms(span)
            run += max(0.0, span.self_ms - span.await_ms - span.loop_wait_ms - max(span.wait_ms, real))
            wait += max(0.0, span.wait_ms - real)
            for frame in model.owned_frames.get(span, []):
                category = model.category.get(frame)
                if (category is None or frame.is_comprehension) and not _has_io(frame):
                    run += max(0.0, frame.self_ms - frame.await_ms - frame.wait_ms - frame.loop_wait_ms)
                    wait += frame.wait_ms
                    libs.append(frame)
        main = max(spans, key=lambda s: s.self_ms)
        others = [s for s in spans if s is not main]
        heavy = max((f for f in libs if not f.is_comprehension), key=lambda f: f.self_ms, default=None)
        if wait >= WAIT_ONLY * (run + wait):
            if wait >= WAIT_MIN_MS and wait / total >= WAIT_MIN_SHARE:
                findings.append(_work(model, "blocking_wait", "blocking", name, wait, main, others + libs, heavy))
            if run >= CPU_MIN_MS and run / total >= CPU_MIN_SHARE:
                findings.append(_work(model, "cpu_hotspot", "cpu", name, run, main, others + libs, heavy))
        elif run + wait >= CPU_MIN_MS and (run + wait) / total >= CPU_MIN_SHARE:
            finding = _work(model, "cpu_hotspot", "cpu", name, run + wait, main, others + libs, heavy)
            if wait >= 0.2 * (run + wait):
                finding.detail["waited_ms"] = f"{wait:.0f}"
            findings.append(finding)
    return findings


def _work(
    model: TraceModel,
    detector: str,
    kind: str,
    name: str,
    time_ms: float,
    main: TSpan,
    spans: list[TSpan],
    heavy: TSpan | None,
) -> Finding:
    detail = {"library": frame_label(heavy)} if heavy is not None and heavy.self_ms >= 0.3 * time_ms else {}
    return Finding(
        detector=detector,
        type=kind,
        function=name,
        impact=min(1.0, time_ms / model.total_ms),
        time_ms=time_ms,
        spans=spans,
        function_span=main,
        count=len(spans) + 1,
        saving=0.5,
        detail=detail,
    )


def detect_blocking_in_async(model: TraceModel) -> list[Finding]:
    """On the event loop: everything a function does without awaiting holds the loop, whether it sleeps, does
    sync I/O or computes, and every other request on that loop waits for it.

    One loop runs one thing at a time: what the request held is at most its duration less the time it waited
    for the loop (``pystrument.loop_wait_ms``) or other requests held it (``Trace.neighbours``), whatever the
    samples of a coroutine resuming after such a wait make its own time look like."""
    total = model.total_ms
    trace = model.trace
    cpu = trace.cpu_ms
    budget = max(0.0, total - max(trace.loop_wait_ms, sum(n.held_ms for n in trace.neighbours)))
    units: list[tuple[str, list[TSpan], float, float, list[TSpan]]] = []
    for name, spans in _app_units(model, on_loop=True).items():
        held = waited = 0.0
        frames: list[TSpan] = []
        for span in spans:
            held += max(0.0, span.self_ms - span.await_ms - span.loop_wait_ms)
            waited += span.wait_ms
            for frame in model.owned_frames.get(span, []):
                if model.on_loop.get(frame) and (
                    model.category.get(frame) in LOOP_CATEGORIES or frame.is_comprehension
                ):
                    held += max(0.0, frame.self_ms - frame.await_ms - frame.loop_wait_ms)
                    waited += frame.wait_ms
                    frames.append(frame)
        units.append((name, spans, held, waited, frames))
    claimed = sum(u[2] for u in units)
    scale = min(1.0, budget / claimed) if claimed > 0 else 1.0
    findings: list[Finding] = []
    for name, spans, held, waited, frames in units:
        held *= scale
        if held < BLOCKING_MIN_MS or held / total < BLOCKING_MIN_SHARE:
            continue
        heavy = max((f for f in frames if model.category.get(f) is not None), key=lambda f: f.ms, default=None)
        if heavy is not None and heavy.ms >= 0.3 * held:
            what = frame_label(heavy)
        elif waited >= 0.5 * held or (cpu is not None and cpu < 0.5 * held):
            what = "time.sleep / sync I/O"
        elif cpu is not None:
            what = "CPU-bound work"
        else:
            what = "a blocking call or CPU-bound work"
        main = max(spans, key=lambda s: s.self_ms)
        findings.append(
            Finding(
                detector="blocking_in_async",
                type="blocking",
                function=name,
                impact=min(1.0, held / total),
                time_ms=held,
                spans=[s for s in spans if s is not main] + frames,
                function_span=main,
                count=len(spans),
                saving=1.0,
                detail={"library": what},
                min_severity="high" if held >= 50 else "medium",
            )
        )
    return findings


def _endpoint(model: TraceModel) -> TSpan | None:
    """The request's first application function: what framework work after it (serialising its answer) is for."""
    return next((s for s in model.trace.spans if model.owner.get(s) is s and s.template is None), None)


def detect_library_work(model: TraceModel) -> list[Finding]:
    """Serialization, regular expressions, waits on locks and queues, and template rendering where the SDK gave
    no template span: per owner; framework work with no owner (a response serialised after the handler
    returned) is named by the handler."""
    findings: list[Finding] = []
    total = model.total_ms
    endpoint = _endpoint(model)
    owners: dict[TSpan | None, list[TSpan]] = defaultdict(list)
    for span in model.trace.spans:
        category = model.category.get(span)
        if category in DETECTORS and span.is_library:
            owners[model.owner.get(span)].append(span)
    for owner, frames in owners.items():
        for category, detector in DETECTORS.items():
            if category == "template" and (model.templates or (owner is not None and owner.template is not None)):
                continue  # template spans have their own rule
            picked = [f for f in frames if model.category.get(f) == category]
            chosen = set(picked)
            top = [f for f in picked if not any(a in chosen for a in f.ancestors())]
            if not top:
                continue
            time_ms = union_ms(top)
            if time_ms < CATEGORY_MIN_MS or time_ms / total < CATEGORY_MIN_SHARE:
                continue
            named = owner if owner is not None else endpoint
            heaviest = max(top, key=lambda f: f.duration)
            findings.append(
                Finding(
                    detector=detector,
                    type=category,
                    function=named.label if named is not None else heaviest.label,
                    impact=min(1.0, time_ms / total),
                    time_ms=time_ms,
                    spans=top,
                    function_span=named,
                    count=len(top),
                    saving=SAVINGS[category],
                    detail={"library": frame_label(heaviest)},
                    min_severity="medium" if category == "lock" and time_ms >= 50 else "low",
                )
            )
    return findings


def detect_templates(model: TraceModel) -> list[Finding]:
    """Template rendering, named by the template (``template admin/index.html``), library templates too."""
    by_name: dict[str, list[TSpan]] = defaultdict(list)
    for span in model.templates:
        by_name[span.label].append(span)
    findings: list[Finding] = []
    total = model.total_ms
    for name, spans in by_name.items():
        time_ms = sum(max(0.0, s.ms - model.gc_inside_ms(s)) for s in spans)
        if time_ms < CATEGORY_MIN_MS or time_ms / total < CATEGORY_MIN_SHARE:
            continue
        inner = [d for s in spans for d in s.walk() if d.is_function and d is not s and not d.is_gc_pause]
        heavy = max(inner, key=lambda d: d.self_ms, default=None)
        main = max(spans, key=lambda s: s.ms)
        findings.append(
            Finding(
                detector="template_rendering",
                type="template",
                function=name,
                impact=min(1.0, time_ms / total),
                time_ms=time_ms,
                spans=spans,
                function_span=main,
                count=len(spans),
                saving=0.5,
                detail={"library": frame_label(heavy) if heavy is not None else "the template engine"},
            )
        )
    return findings


def detect_deliberate(model: TraceModel) -> list[Finding]:
    """Password hashing and key derivation: slow on purpose. Said so, with what can be tuned, not "cache it"."""
    spans = [s for s in model.trace.spans if model.category.get(s) == "deliberate"]
    chosen = set(spans)
    top = [s for s in spans if not any(a in chosen for a in s.ancestors())]
    by_name: dict[str, list[TSpan]] = defaultdict(list)
    for span in top:
        by_name[span.label].append(span)
    findings: list[Finding] = []
    for name, group in by_name.items():
        time_ms = union_ms(group)
        if time_ms < CATEGORY_MIN_MS or time_ms / model.total_ms < CATEGORY_MIN_SHARE:
            continue
        main = max(group, key=lambda s: s.ms)
        caller = model.owner_of(main.parent) if main.parent is not None else None
        findings.append(
            Finding(
                detector="deliberate_cost",
                type="deliberate",
                function=name,
                impact=min(1.0, time_ms / model.total_ms),
                time_ms=time_ms,
                spans=group,
                function_span=main,
                count=len(group),
                saving=0.3,
                detail={"library": caller.label if caller is not None else "the request"},
            )
        )
    return findings
