"""Fidelity invariants of one trace, as pure functions over a record-detail JSON (``data`` of
``GET /api/v1/performance/records/{trace_id}``): ``{"record": {...}, "spans": [...]}``.

Each check returns a list of :class:`Violation`; an empty list means the trace keeps that invariant. They rely on
the SDK's contract (docs/fidelity.md):

- the request span (SERVER) carries ``pystrument.profile.interval_ms``, ``pystrument.profile.samples``,
  ``pystrument.function_spans`` and, when it got too few samples, ``pystrument.profile.starved`` (the reason);
- function spans are INTERNAL with ``pystrument.synthetic`` true, ``code.function.name``, ``code.file.path``,
  ``pystrument.self_time_ms``, ``pystrument.library``; a template's span has ``pystrument.template``; a call that
  was the innermost visible call when real spans started lists their ids in ``pystrument.child_span_ids``;
- a garbage-collection pause is a function span ``garbage collection (generation N)`` in file ``<gc>`` with its
  own ``pystrument.gc.pause_ms``.

Times are compared with one sampling interval of slack (function span times are rebuilt from samples), plus
``EPSILON_MS`` for the microsecond rounding of stored timestamps.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

Span = dict[str, Any]
Detail = dict[str, Any]

SYNTHETIC = "pystrument.synthetic"
LIBRARY = "pystrument.library"
SELF_TIME_MS = "pystrument.self_time_ms"
AWAIT_TIME_MS = "pystrument.await_time_ms"
WAIT_TIME_MS = "pystrument.wait_time_ms"
CPU_WAIT_MS = "pystrument.cpu_wait_ms"
INTERVAL_MS = "pystrument.profile.interval_ms"
SAMPLES = "pystrument.profile.samples"
STARVED = "pystrument.profile.starved"
FUNCTION_SPANS = "pystrument.function_spans"
GC_PAUSE_MS = "pystrument.gc.pause_ms"
CHILD_SPAN_IDS = "pystrument.child_span_ids"
TEMPLATE = "pystrument.template"
CODE_FILE = "code.file.path"
CODE_FUNCTION = "code.function.name"

GC_FILE = "<gc>"
GC_NAME = re.compile(r"^garbage collection \(generation \d\)")
DEFAULT_INTERVAL_MS = 1.0  # what the server assumes when the request span does not say
EPSILON_MS = 0.01
SPAN_ID = re.compile(r"^[0-9a-f]{16}$")
#: Requests at least this many intervals long are judged on where their time went (wrappers, templates).
LONG_REQUEST_INTERVALS = 10
#: Requests at least this many intervals long must have samples, or say why not.
SAMPLED_REQUEST_INTERVALS = 4
#: A wrapper may hold at most this share of a long request as its own time.
WRAPPER_SHARE = 0.5
#: Code that only passes the request on (servers, handlers, middleware chains, routers, thread hand-offs): a span
#: in one of these files holding most of a request as its own time stands for work done in the code it called.
PLUMBING_FILES = re.compile(
    r"/(django/core/handlers/|django/utils/deprecation\.py|django/middleware/|django/contrib/[a-z_]+/middleware\.py"
    r"|django/views/generic/base\.py|django/views/decorators/|flask/app\.py|flask/views\.py|werkzeug/|starlette/"
    r"|fastapi/routing\.py|fastapi/applications\.py|gunicorn/|uvicorn/|asgiref/|anyio/|opentelemetry/"
    r"|whitenoise/)"
)
#: Names of wrapper calls wherever they live (middleware, dispatch, hand-offs to threads).
PLUMBING_NAMES = re.compile(
    r"(^|\.)(__call__|__acall__|wsgi_app|full_dispatch_request|dispatch_request|_get_response|get_response"
    r"|_get_response_async|get_response_async|inner|_view_wrapper|wrapped_view|_wrapper_view|view|dispatch"
    r"|handle|handle_request|run_endpoint_function|app|wrapper|middleware|process_request|__aenter__)$"
)
SITE_PACKAGES = ("/site-packages/", "/dist-packages/")


@dataclass(frozen=True)
class Violation:
    invariant: str
    message: str
    span_id: str | None = None

    def __str__(self) -> str:
        where = f" [span {self.span_id}]" if self.span_id else ""
        return f"{self.invariant}: {self.message}{where}"


# ---------------------------------------------------------------- reading a trace


def spans_of(detail: Detail) -> list[Span]:
    spans: list[Span] = detail["spans"]
    return spans


def attrs(span: Span) -> dict[str, Any]:
    a: dict[str, Any] = span.get("attributes") or {}
    return a


def is_function(span: Span) -> bool:
    return bool(attrs(span).get(SYNTHETIC))


def is_gc(span: Span) -> bool:
    return is_function(span) and (attrs(span).get(CODE_FILE) == GC_FILE or bool(GC_NAME.match(span["name"])))


def request_spans(detail: Detail) -> list[Span]:
    return [s for s in spans_of(detail) if s["kind"] == "SERVER"]


def request_span(detail: Detail) -> Span | None:
    found = request_spans(detail)
    return found[0] if len(found) == 1 else None


def real_spans(detail: Detail) -> list[Span]:
    """Spans the app's instrumentations made (DB, HTTP, templates, ASGI send/receive): not the request span, not
    function spans."""
    return [s for s in spans_of(detail) if not is_function(s) and s["kind"] != "SERVER"]


def is_server_plumbing(span: Span) -> bool:
    """A span the server instrumentation makes of its own request span's messages (ASGI's ``http send`` and ``http
    receive``, which carry ``asgi.event.type``): started by its wrapper from below the app's frames, not by a call of
    the app, so the SDK marks no stack for it and no function span claims it (the server nests it by time)."""
    return "asgi.event.type" in attrs(span)


def interval_ms(detail: Detail) -> float:
    request = request_span(detail)
    value = attrs(request).get(INTERVAL_MS) if request else None
    return float(value) if isinstance(value, int | float) and value > 0 else DEFAULT_INTERVAL_MS


def start_ms(span: Span) -> float:
    return float(span["offset"]) * 1000.0


def end_ms(span: Span) -> float:
    return (float(span["offset"]) + float(span["duration"])) * 1000.0


def duration_ms(span: Span) -> float:
    return float(span["duration"]) * 1000.0


def child_span_ids(span: Span) -> list[str]:
    """``pystrument.child_span_ids`` as a list (an OTLP array; a comma- or space-separated string is accepted)."""
    value = attrs(span).get(CHILD_SPAN_IDS)
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in re.split(r"[,\s]+", value) if v]
    return [str(v) for v in value]


def is_generated_file(path: str) -> bool:
    """Code compiled from a string (``<string>``, ``<attrs generated init ...>``): not a file; ``<gc>`` is not code."""
    return path.startswith("<") and path.endswith(">") and path != GC_FILE


def _by_id(detail: Detail) -> dict[str, Span]:
    return {s["span_id"]: s for s in spans_of(detail)}


# ---------------------------------------------------------------- the invariants


def one_request(detail: Detail, expected_path: str | None = None) -> list[Violation]:
    """Exactly one request span, every other span descends from it (no span of another trace), and the record is
    the request we sent for this trace."""
    name = "one-request"
    out: list[Violation] = []
    requests = request_spans(detail)
    if len(requests) != 1:
        names = [s["name"] for s in requests]
        return [Violation(name, f"{len(requests)} request (SERVER) spans: {names}")]
    (request,) = requests
    by_id = _by_id(detail)
    for span in spans_of(detail):
        if span is request:
            continue
        seen: set[str] = set()
        current = span
        while current is not request:
            parent = current.get("parent_span_id")
            if parent is None or parent not in by_id or parent in seen:
                out.append(Violation(name, f"{span['name']!r} does not descend from the request span", span["span_id"]))
                break
            seen.add(parent)
            current = by_id[parent]
    if expected_path is not None:
        path = (detail.get("record") or {}).get("request_path")
        if path != expected_path:
            out.append(Violation(name, f"record is for {path!r}, the request sent was {expected_path!r}"))
    return out


def gc_spans(detail: Detail) -> list[Violation]:
    """A GC span lasts no longer than its own pause plus one interval, and holds nothing (no span under it)."""
    name = "gc-span"
    out: list[Violation] = []
    interval = interval_ms(detail)
    parents: dict[str, list[str]] = {}
    for span in spans_of(detail):
        for key in ("parent_span_id", "display_parent_span_id"):
            if span.get(key):
                parents.setdefault(span[key], []).append(span["name"])
    for span in spans_of(detail):
        if not is_gc(span):
            continue
        pause = attrs(span).get(GC_PAUSE_MS)
        if not isinstance(pause, int | float):
            out.append(Violation(name, f"{span['name']!r} carries no {GC_PAUSE_MS} of its own", span["span_id"]))
        elif duration_ms(span) > pause + interval + EPSILON_MS:
            out.append(
                Violation(
                    name,
                    f"{span['name']!r} lasts {duration_ms(span):.1f} ms for a pause of {pause:.1f} ms "
                    f"(interval {interval:g} ms)",
                    span["span_id"],
                )
            )
        held = parents.get(span["span_id"])
        if held:
            out.append(Violation(name, f"{span['name']!r} contains {sorted(set(held))[:5]}", span["span_id"]))
    return out


def functions_nest(detail: Detail) -> list[Violation]:
    """Every function span lies within its parent (the request span or another call), within one interval."""
    name = "nesting"
    out: list[Violation] = []
    interval = interval_ms(detail)
    by_id = _by_id(detail)
    for span in spans_of(detail):
        if not is_function(span):
            continue
        parent = by_id.get(span.get("parent_span_id") or "")
        if parent is None:
            out.append(Violation(name, f"{span['name']!r} has no parent in the trace", span["span_id"]))
            continue
        early = start_ms(parent) - start_ms(span)
        late = end_ms(span) - end_ms(parent)
        if early > interval + EPSILON_MS or late > interval + EPSILON_MS:
            out.append(
                Violation(
                    name,
                    f"{span['name']!r} [{start_ms(span):.1f}, {end_ms(span):.1f}] ms lies outside its parent "
                    f"{parent['name']!r} [{start_ms(parent):.1f}, {end_ms(parent):.1f}] ms "
                    f"(interval {interval:g} ms)",
                    span["span_id"],
                )
            )
    return out


def children_placed(detail: Detail) -> list[Violation]:
    """Real child spans sit under the call that was innermost on the stack when they started.

    Each id a function span claims in ``pystrument.child_span_ids`` is a real span of the trace, displayed under
    that function span, within it (one interval of slack), and claimed once. When the request kept function spans,
    every real span that started while they cover the request (from the first call's start to the last call's end)
    is claimed by one of them.
    """
    name = "child-placement"
    out: list[Violation] = []
    interval = interval_ms(detail)
    by_id = _by_id(detail)
    functions = [s for s in spans_of(detail) if is_function(s)]
    claimed_by: dict[str, str] = {}
    for fn in functions:
        for child_id in child_span_ids(fn):
            child = by_id.get(child_id)
            if not SPAN_ID.match(child_id):
                out.append(Violation(name, f"{fn['name']!r} claims {child_id!r}, not a span id", fn["span_id"]))
                continue
            if child is None or is_function(child) or child["kind"] == "SERVER":
                out.append(
                    Violation(name, f"{fn['name']!r} claims {child_id}, not a real span of the trace", fn["span_id"])
                )
                continue
            if child_id in claimed_by:
                other = by_id[claimed_by[child_id]]["name"]
                out.append(Violation(name, f"{child['name']!r} is claimed by {other!r} and {fn['name']!r}", child_id))
                continue
            claimed_by[child_id] = fn["span_id"]
            shown = by_id.get(child.get("display_parent_span_id") or "")
            if child.get("display_parent_span_id") != fn["span_id"]:
                out.append(
                    Violation(
                        name,
                        f"{child['name']!r} claimed by {fn['name']!r} is displayed under "
                        f"{shown['name'] if shown else child.get('display_parent_span_id')!r}",
                        child_id,
                    )
                )
            if start_ms(child) < start_ms(fn) - interval - EPSILON_MS or end_ms(child) > end_ms(fn) + (
                interval + EPSILON_MS
            ):
                out.append(
                    Violation(
                        name,
                        f"{child['name']!r} [{start_ms(child):.1f}, {end_ms(child):.1f}] ms lies outside its claimer "
                        f"{fn['name']!r} [{start_ms(fn):.1f}, {end_ms(fn):.1f}] ms",
                        child_id,
                    )
                )
    request = request_span(detail)
    calls = [s for s in functions if not is_gc(s)]
    if request is None or not attrs(request).get(FUNCTION_SPANS) or not calls:
        return out
    first = min(start_ms(s) for s in calls)
    last = max(end_ms(s) for s in calls)
    for child in real_spans(detail):
        if child["span_id"] in claimed_by or not first <= start_ms(child) <= last or is_server_plumbing(child):
            continue
        shown = by_id.get(child.get("display_parent_span_id") or "")
        out.append(
            Violation(
                name,
                f"{child['name']!r} at {start_ms(child):.1f} ms is claimed by no function span "
                f"(displayed under {shown['name'] if shown else None!r})",
                child["span_id"],
            )
        )
    return out


def _descendants(span_id: str, children: dict[str, list[Span]]) -> Iterable[Span]:
    stack = list(children.get(span_id, ()))
    while stack:
        span = stack.pop()
        yield span
        stack.extend(children.get(span["span_id"], ()))


def is_plumbing(span: Span) -> bool:
    """A framework's pass-through call: a server, handler, middleware, router or thread hand-off."""
    path = str(attrs(span).get(CODE_FILE, ""))
    function = str(attrs(span).get(CODE_FUNCTION) or span["name"])
    return bool(PLUMBING_FILES.search(path)) or bool(PLUMBING_NAMES.search(function.split("<locals>.")[-1]))


def own_time_ms(span: Span) -> float:
    """A call's self time less the time it waited (its thread off the CPU, or its task awaiting) and the time its
    thread was ready to run without a core (the machine's run queue)."""
    a = attrs(span)
    waited = sum(float(a.get(key) or 0.0) for key in (AWAIT_TIME_MS, WAIT_TIME_MS, CPU_WAIT_MS))
    return max(0.0, float(a.get(SELF_TIME_MS) or 0.0) - waited)


def templates_and_wrappers(detail: Detail, renders_template: bool = False) -> list[Violation]:
    """On a request of at least ``LONG_REQUEST_INTERVALS`` intervals that kept function spans:

    - when the page renders a template (``renders_template``), a function span names it (``pystrument.template``,
      and the template's name in the span's name);
    - no library call holds more than half the request as its own time (:func:`own_time_ms`: waiting excluded)
      while it only passes the request on: a framework pass-through (:func:`is_plumbing`), or a call under which
      app code or a template runs. A template's span, and the engine's call right under it, do the template's
      work: they may.

    The template rule needs evidence: at least ``LONG_REQUEST_INTERVALS`` samples (a request a garbage collection
    stopped for most of its time may have too few for a short render to become a span).
    """
    name = "templates-wrappers"
    out: list[Violation] = []
    request = request_span(detail)
    if request is None or not attrs(request).get(FUNCTION_SPANS):
        return out
    total = duration_ms(request)
    if total < LONG_REQUEST_INTERVALS * interval_ms(detail):
        return out
    functions = [s for s in spans_of(detail) if is_function(s)]
    samples = attrs(request).get(SAMPLES)
    if renders_template and isinstance(samples, int) and samples >= LONG_REQUEST_INTERVALS:
        named = [s for s in functions if attrs(s).get(TEMPLATE)]
        if not named:
            out.append(Violation(name, "the page renders a template but no span names one"))
        for span in named:
            template = str(attrs(span)[TEMPLATE])
            if template not in span["name"] and template.rsplit("/", 1)[-1] not in span["name"]:
                out.append(
                    Violation(name, f"{span['name']!r} does not name its template {template!r}", span["span_id"])
                )
    children: dict[str, list[Span]] = {}
    for span in functions:
        children.setdefault(span.get("parent_span_id") or "", []).append(span)
    by_id = _by_id(detail)
    for span in functions:
        a = attrs(span)
        if not a.get(LIBRARY) or is_gc(span) or a.get(TEMPLATE):
            continue
        parent = by_id.get(span.get("parent_span_id") or "")
        if parent is not None and attrs(parent).get(TEMPLATE):
            continue  # the engine rendering that template: its own time is the template's
        own = own_time_ms(span)
        if own <= WRAPPER_SHARE * total:
            continue
        below = list(_descendants(span["span_id"], children))
        calls_app = [
            s["name"] for s in below if (not attrs(s).get(LIBRARY) and not is_gc(s)) or attrs(s).get(TEMPLATE)
        ]  # a garbage-collection pause shown below it is the interpreter's, not app code it calls
        if is_plumbing(span) or calls_app:
            why = f"it calls {calls_app[:3]}" if calls_app else "a framework pass-through"
            out.append(
                Violation(
                    name,
                    f"{span['name']!r} holds {own:.1f} of {total:.1f} ms as its own time ({why})",
                    span["span_id"],
                )
            )
    return out


def generated_code_owner(detail: Detail) -> list[Violation]:
    """Code is classed by its owner: a file in site-packages is library code; generated code (``<string>``) that
    only library code called (its nearest caller from a real file is library, or there is none) is library."""
    name = "code-owner"
    out: list[Violation] = []
    by_id = _by_id(detail)
    for span in spans_of(detail):
        if not is_function(span) or is_gc(span):
            continue
        a = attrs(span)
        path = str(a.get(CODE_FILE, ""))
        if a.get(LIBRARY):
            continue
        if any(marker in path for marker in SITE_PACKAGES):
            out.append(Violation(name, f"{span['name']!r} in {path} is classed as app code", span["span_id"]))
        elif is_generated_file(path):
            caller = by_id.get(span.get("parent_span_id") or "")
            while caller is not None and is_function(caller) and is_generated_file(str(attrs(caller).get(CODE_FILE))):
                caller = by_id.get(caller.get("parent_span_id") or "")
            if caller is None or not is_function(caller) or attrs(caller).get(LIBRARY):
                called_by = caller["name"] if caller is not None else None
                out.append(
                    Violation(
                        name,
                        f"generated {span['name']!r} ({path}) called by {called_by!r} is classed as app code",
                        span["span_id"],
                    )
                )
    return out


def sampled_or_starved(detail: Detail) -> list[Violation]:
    """A request of at least ``SAMPLED_REQUEST_INTERVALS`` intervals has two samples or more, or says why not."""
    name = "samples"
    request = request_span(detail)
    if request is None:
        return []
    interval = interval_ms(detail)
    if duration_ms(request) < SAMPLED_REQUEST_INTERVALS * interval:
        return []
    a = attrs(request)
    samples = a.get(SAMPLES)
    if isinstance(samples, int) and samples >= 2:
        return []
    if a.get(STARVED):
        return []
    return [
        Violation(
            name,
            f"{duration_ms(request):.1f} ms request ({duration_ms(request) / interval:.0f} intervals) has "
            f"{samples!r} samples and no {STARVED}",
            request["span_id"],
        )
    ]


#: Lines an instrumented app writes that report a fault of pystrument's.
SDK_FAULT = re.compile(r"pystrument[:\]]|pystrument/\w+\.py", re.IGNORECASE)


def sampler_errors(log: str) -> list[Violation]:
    """The app's output holds no error or warning of pystrument's (``pystrument: ...``, or a traceback through
    the SDK's files)."""
    return [Violation("sdk-errors", line.strip()) for line in log.splitlines() if SDK_FAULT.search(line)]


TRACE_CHECKS: dict[str, Callable[..., list[Violation]]] = {
    "one-request": one_request,
    "gc-span": gc_spans,
    "nesting": functions_nest,
    "child-placement": children_placed,
    "templates-wrappers": templates_and_wrappers,
    "code-owner": generated_code_owner,
    "samples": sampled_or_starved,
}


def check_trace(detail: Detail, expected_path: str | None = None, renders_template: bool = False) -> list[Violation]:
    """Every trace invariant on one trace."""
    return [
        *one_request(detail, expected_path),
        *gc_spans(detail),
        *functions_nest(detail),
        *children_placed(detail),
        *templates_and_wrappers(detail, renders_template),
        *generated_code_owner(detail),
        *sampled_or_starved(detail),
    ]


# ---------------------------------------------------------------- showing a trace

KEY_ATTRIBUTES = (
    SELF_TIME_MS,
    LIBRARY,
    "pystrument.samples",
    TEMPLATE,
    GC_PAUSE_MS,
    SAMPLES,
    INTERVAL_MS,
    STARVED,
    FUNCTION_SPANS,
    "pystrument.thread",
    "db.statement",
    "db.query.text",
)


def format_trace(detail: Detail, max_lines: int = 250, mark: Iterable[str] = ()) -> str:
    """The trace as an indented tree (by display parent): name, kind, start offset and duration in ms, the
    received parent, file and key attributes; spans in ``mark`` are flagged with ``>>``."""
    marked = set(mark)
    spans = spans_of(detail)
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[Span]] = {}
    for span in spans:
        parent = span.get("display_parent_span_id") or span.get("parent_span_id")
        children.setdefault(parent if parent in ids else None, []).append(span)
    record = detail.get("record") or {}
    lines = [
        f"trace {record.get('trace_id')} {record.get('method')} {record.get('request_path')} "
        f"{(record.get('duration') or 0) * 1000:.1f} ms, {len(spans)} spans"
    ]
    stack: list[tuple[Span, int]] = [(s, 0) for s in reversed(sorted(children.get(None, []), key=start_ms))]
    while stack and len(lines) < max_lines:
        span, depth = stack.pop()
        a = attrs(span)
        keys = {k.removeprefix("pystrument."): a[k] for k in KEY_ATTRIBUTES if k in a}
        if a.get(CHILD_SPAN_IDS):
            keys["child_span_ids"] = child_span_ids(span)
        where = str(a.get(CODE_FILE, ""))
        if where:
            keys["file"] = where if len(where) < 60 else "..." + where[-57:]
        flag = ">>" if span["span_id"] in marked else "  "
        lines.append(
            f"{flag}{'  ' * depth}{span['name'][:90]} [{span['kind']}] +{start_ms(span):.1f} {duration_ms(span):.1f}ms "
            f"id={span['span_id']} parent={span.get('parent_span_id')} {keys}"
        )
        stack.extend((c, depth + 1) for c in reversed(sorted(children.get(span["span_id"], []), key=start_ms)))
    if stack:
        lines.append(f"... ({len(spans) - len(lines) + 1} more spans)")
    return "\n".join(lines)
