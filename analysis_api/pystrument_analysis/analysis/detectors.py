"""Deterministic bottleneck detectors over one trace (the builtin analyzer's rules).

Every finding names the application's own function responsible (the nearest non-library function span),
the spans it rests on, and its impact as a share of the request's duration.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pystrument_analysis.analysis.trace import Trace, TSpan

N_PLUS_ONE_MIN_QUERIES = 5
N_PLUS_ONE_MIN_HTTP = 3
REPEATED_MIN_SHARE = 0.03  # repeated calls this small a share are reported only when very many
REPEATED_ALWAYS = 25
MAJORITY = 0.8  # share of a group's calls one function must hold to be blamed alone
SLOW_QUERY_MS = 100.0
SLOW_HTTP_MS = 200.0
CPU_MIN_SHARE = 0.15
CPU_MIN_MS = 10.0
CATEGORY_MIN_SHARE = 0.05
CATEGORY_MIN_MS = 5.0
BLOCKING_MIN_MS = 5.0
GC_MIN_MS = 10.0
GC_MIN_SHARE = 0.1
WAIT_MIN_MS = 20.0
WAIT_MIN_SHARE = 0.1
MAX_SPAN_IDS = 100

# Library frames by what they do. The SDK names a frame by its ``co_qualname`` and collapses a chain of
# library calls into the first library function entered, so the file path is the reliable clue; module-
# qualified names (``json.dumps``) from other SDKs match too.
BLOCKING_NAMES = (
    "time.sleep",
    "socket.",
    "ssl.",
    "select.",
    "selectors.",
    "requests.",
    "urllib3.",
    "urllib.request.",
    "http.client.",
    "subprocess.",
    "psycopg2.",
    "pymysql.",
    "MySQLdb.",
    "sqlite3.",
    "redis.client.",
    "smtplib.",
)
BLOCKING_PATHS = (
    "/socket.py",
    "/ssl.py",
    "/selectors.py",
    "/subprocess.py",
    "/http/client.py",
    "/urllib/request.py",
    "/requests/",
    "/urllib3/",
    "/psycopg2/",
    "/pymysql/",
    "/MySQLdb/",
    "/sqlite3/",
    "/redis/client.py",
    "/smtplib.py",
)
# built-in (C) functions as the precise profiler shows them: file "<built-in>", bare name
BLOCKING_BUILTINS = (
    "sleep",
    "recv",
    "recv_into",
    "recvfrom",
    "send",
    "sendall",
    "connect",
    "accept",
    "select",
    "poll",
    "getaddrinfo",
    "do_handshake",
)
SERIALIZATION_NAMES = (
    "json.",
    "simplejson.",
    "ujson.",
    "orjson.",
    "pickle.",
    "_pickle.",
    "copyreg.",
    "marshal.",
    "yaml.",
    "msgpack.",
    "marshmallow.",
    "xml.etree.",
    "xml.dom.",
    "rest_framework.serializers.",
    "jsonable_encoder",
)
SERIALIZATION_PATHS = (
    "/json/",
    "/pickle.py",
    "/copyreg.py",
    "/simplejson/",
    "/yaml/",
    "/marshmallow/",
    "/xml/etree/",
    "/xml/dom/",
    "/rest_framework/serializers.py",
    "/rest_framework/renderers.py",
    "/fastapi/encoders.py",
    "/msgpack/",
)
TEMPLATE_NAMES = ("jinja2.", "django.template.", "mako.", "chameleon.", "genshi.", "flask.templating.")
TEMPLATE_PATHS = (
    "/jinja2/",
    "/django/template/",
    "/django/shortcuts.py",
    "/flask/templating.py",
    "/starlette/templating.py",
    "/mako/",
    "/chameleon/",
)
REGEX_NAMES = ("re.", "sre_compile.", "sre_parse.", "regex.")
REGEX_PATHS = ("/re/", "/re.py", "/sre_compile.py", "/sre_parse.py", "/regex/")

SEVERITY_ORDER = ("low", "medium", "high", "critical")


@dataclass
class Finding:
    """One bottleneck found by a detector, before it is worded."""

    detector: str
    type: str
    function: str
    impact: float
    time_ms: float
    spans: list[TSpan]
    function_span: TSpan | None = None
    count: int = 1
    saving: float = 0.5  # share of time_ms the suggested fix can be expected to save
    detail: dict[str, str] = field(default_factory=dict)
    min_severity: str = "low"

    @property
    def severity(self) -> str:
        by_impact = (
            "critical"
            if self.impact >= 0.6
            else "high"
            if self.impact >= 0.3
            else "medium"
            if self.impact >= 0.1
            else "low"
        )
        return max(by_impact, self.min_severity, key=SEVERITY_ORDER.index)

    @property
    def span_ids(self) -> list[str]:
        ids = [self.function_span.span_id] if self.function_span is not None else []
        ids += [s.span_id for s in self.spans if s is not self.function_span]
        return ids[:MAX_SPAN_IDS]


def _matches(span: TSpan, names: tuple[str, ...], paths: tuple[str, ...]) -> bool:
    name = span.function
    if any(name == n.rstrip(".") or name.startswith(n) for n in names):
        return True
    file = (span.file or "").replace("\\", "/")
    return bool(file) and any(p in file for p in paths)


def frame_label(span: TSpan) -> str:
    """``Session.request (requests/sessions.py)``: the frame's name and where it lives, without the prefix."""
    file = (span.file or "").replace("\\", "/")
    for marker in ("site-packages/", "dist-packages/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    else:
        parts = file.split("/")
        file = "/".join(parts[-2:]) if len(parts) > 1 else file
    return f"{span.function} ({file})" if file else span.function


def frame_category(span: TSpan) -> str | None:
    """What a library frame does: blocking, serialization, template or regex (None: anything else)."""
    if not span.is_library:
        return None
    builtin = (span.file or "").startswith("<") or span.file is None
    if _matches(span, BLOCKING_NAMES, BLOCKING_PATHS) or (
        builtin and span.function.rsplit(".", 1)[-1] in BLOCKING_BUILTINS
    ):
        return "blocking"
    if _matches(span, SERIALIZATION_NAMES, SERIALIZATION_PATHS):
        return "serialization"
    if _matches(span, TEMPLATE_NAMES, TEMPLATE_PATHS):
        return "template"
    if _matches(span, REGEX_NAMES, REGEX_PATHS):
        return "regex"
    return None


def normalize_sql(statement: str) -> str:
    """Literals and placeholders to ``?`` so the same query with other parameters compares equal."""
    s = re.sub(r"'(?:[^']|'')*'", "?", statement)
    s = re.sub(r"\$\d+|%s|%\(\w+\)s|(?<!:):\w+", "?", s)
    s = re.sub(r"(?<![\w.])-?\d+(?:\.\d+)?\b", "?", s)
    s = re.sub(r"\(\s*\?(?:\s*,\s*\?)*\s*\)", "(?)", s)
    return re.sub(r"\s+", " ", s).strip()


_ID_SEGMENT = re.compile(r"^(?:\d+|[0-9a-fA-F-]{8,}|[0-9a-fA-F]{16,}|.*\d.*\d.*\d.*)$")


def http_target(span: TSpan) -> str:
    """``METHOD host/path`` with id-like path segments as ``{id}`` and no query string."""
    attrs = span.attributes
    url = str(attrs.get("url.full") or attrs.get("http.url") or "")
    parts = urlsplit(url) if url else None
    host = str(attrs.get("server.address") or attrs.get("net.peer.name") or (parts.hostname if parts else "") or "")
    port = attrs.get("server.port") or (parts.port if parts else None)
    path = (parts.path if parts else "") or str(attrs.get("url.path") or attrs.get("url.template") or "")
    segments = ["{id}" if _ID_SEGMENT.match(seg) else seg for seg in path.split("/")]
    where = f"{host}:{port}" if port else host
    return f"{(span.http_method or 'GET').upper()} {where}{'/'.join(segments) or '/'}"


def _union_ms(spans: Iterable[TSpan]) -> float:
    """Wall time covered by the spans (overlapping calls count once)."""
    total, cur_start, cur_end = 0.0, None, None
    for s in sorted(spans, key=lambda x: x.start):
        if cur_end is None or s.start > cur_end:
            if cur_end is not None and cur_start is not None:
                total += cur_end - cur_start
            cur_start, cur_end = s.start, s.end
        else:
            cur_end = max(cur_end, s.end)
    if cur_end is not None and cur_start is not None:
        total += cur_end - cur_start
    return total * 1000.0


def _lowest_common(trace: Trace, nodes: list[TSpan]) -> TSpan | None:
    """The deepest user function enclosing all ``nodes`` (None when only the request span does)."""
    if not nodes:
        return None
    paths = [[n, *n.ancestors()][::-1] for n in nodes]
    common: TSpan | None = None
    for level in zip(*paths, strict=False):
        if all(x is level[0] for x in level):
            common = level[0]
        else:
            break
    return trace.user_function(common) if common is not None else None


def _responsible(trace: Trace, spans: list[TSpan]) -> TSpan | None:
    """The user function behind a group of calls.

    One function span holding (nearly) all of them wins: function times are rebuilt from samples, so a
    call at the edge of a span may land in its neighbour. Calls spread over several spans of one function
    (one span per call) are blamed on those spans' nearest common caller: the loop that makes them.
    """
    owners = [o for o in (trace.user_function(s) for s in spans) if o is not None]
    if not owners:
        return None
    by_span: dict[TSpan, int] = defaultdict(int)
    by_name: dict[str, list[TSpan]] = defaultdict(list)
    for o in owners:
        by_span[o] += 1
        by_name[o.function].append(o)
    top_span = max(by_span, key=lambda o: by_span[o])
    if by_span[top_span] >= MAJORITY * len(owners):
        return top_span
    name = max(by_name, key=lambda k: len(by_name[k]))
    group = by_name[name] if len(by_name[name]) >= MAJORITY * len(owners) else owners
    common = _lowest_common(trace, list(dict.fromkeys(group)))
    if common is not None:
        return common
    return top_span


def _name(trace: Trace, owner: TSpan | None) -> str:
    if owner is not None:
        return owner.function
    root = trace.root
    return str(root.attributes.get("code.function.name") or trace.route or root.name)


def _group_calls(
    trace: Trace,
    calls: list[TSpan],
    key: Callable[[TSpan], str],
    min_count: int,
    repeated: tuple[str, str],
    slow: tuple[str, str],
    slow_ms: float,
) -> list[Finding]:
    """N+1 groups (same normalized call ``min_count``+ times) and single slow calls outside such groups."""
    findings: list[Finding] = []
    groups: dict[str, list[TSpan]] = defaultdict(list)
    for span in calls:
        groups[key(span)].append(span)
    total = trace.duration_ms
    for text, spans in groups.items():
        time_ms = _union_ms(spans)
        if len(spans) >= min_count and (time_ms / total >= REPEATED_MIN_SHARE or len(spans) >= REPEATED_ALWAYS):
            owner = _responsible(trace, spans)
            findings.append(
                Finding(
                    detector=repeated[0],
                    type=repeated[1],
                    function=_name(trace, owner),
                    impact=min(1.0, time_ms / total),
                    time_ms=time_ms,
                    spans=spans,
                    function_span=owner,
                    count=len(spans),
                    saving=(len(spans) - 1) / len(spans),
                    detail={"statement": text},
                    min_severity="medium" if len(spans) >= 10 else "low",
                )
            )
            continue
        for span in spans:
            share = span.ms / total
            if span.ms >= slow_ms or (share >= 0.3 and span.ms >= slow_ms / 5):
                owner = trace.user_function(span)
                findings.append(
                    Finding(
                        detector=slow[0],
                        type=slow[1],
                        function=_name(trace, owner),
                        impact=min(1.0, share),
                        time_ms=span.ms,
                        spans=[span],
                        function_span=owner,
                        saving=0.6,
                        detail={"statement": text},
                    )
                )
    return findings


def detect_database(trace: Trace) -> list[Finding]:
    def key(s: TSpan) -> str:
        return f"{s.db_system}: {normalize_sql(s.db_statement or s.name)}"

    calls = [s for s in trace.spans if s.is_db]
    return _group_calls(
        trace,
        calls,
        key,
        N_PLUS_ONE_MIN_QUERIES,
        ("n_plus_one_query", "database"),
        ("slow_query", "database"),
        SLOW_QUERY_MS,
    )


def detect_http(trace: Trace) -> list[Finding]:
    calls = [s for s in trace.spans if s.is_http_client]
    return _group_calls(
        trace, calls, http_target, N_PLUS_ONE_MIN_HTTP, ("n_plus_one_http", "http"), ("slow_http", "http"), SLOW_HTTP_MS
    )


def _owned_library_frames(trace: Trace) -> dict[TSpan, list[TSpan]]:
    owned: dict[TSpan, list[TSpan]] = defaultdict(list)
    for span in trace.spans:
        if span.is_library:
            owner = trace.user_function(span)
            if owner is not None:
                owned[owner].append(span)
    return owned


def _topmost(frames: list[TSpan], category: str, owner: TSpan) -> list[TSpan]:
    picked = []
    for f in frames:
        if frame_category(f) != category:
            continue
        above = []
        for a in f.ancestors():
            if a is owner:
                break
            above.append(a)
        if not any(frame_category(a) == category for a in above):
            picked.append(f)
    return picked


def _in_coroutine(trace: Trace, span: TSpan) -> bool:
    """On the event loop: an async request, and not inside a worker-thread lane."""
    if not trace.is_async:
        return False
    return not any(a.is_function and a.in_worker_thread for a in [span, *span.ancestors()])


def _real_calls_ms(span: TSpan) -> float:
    return sum(c.ms for c in span.children if not c.is_function)


def _holds_loop_ms(span: TSpan) -> float:
    """Time a function held the thread itself: self time less awaits, the time its thread did not run, and the real
    calls directly under it (a wait inside such a call is part of it)."""
    real = _real_calls_ms(span)
    return max(0.0, span.self_ms - span.await_ms - max(span.wait_ms, real))


def blocked_by_function(trace: Trace) -> dict[TSpan, float]:
    """In an async request whose CPU time is known: wall time that user functions held the event loop
    beyond the request's CPU time is blocking (``time.sleep``, sync I/O), attributed to the biggest holders."""
    cpu = trace.cpu_ms
    if cpu is None or not trace.is_async:
        return {}
    holders = [
        (s, _holds_loop_ms(s)) for s in trace.spans if s.is_function and not s.is_library and _in_coroutine(trace, s)
    ]
    excess = sum(h for _, h in holders) - cpu
    if excess < BLOCKING_MIN_MS:
        return {}
    blocked: dict[TSpan, float] = {}
    for span, held in sorted(holders, key=lambda x: -x[1]):
        if excess <= 0:
            break
        take = min(held, excess)
        if take > 0:
            blocked[span] = take
            excess -= take
    return blocked


def detect_library_work(trace: Trace) -> list[Finding]:
    """Serialization, template rendering, regular expressions, and blocking calls under a coroutine."""
    findings: list[Finding] = []
    total = trace.duration_ms
    savings = {"serialization": 0.6, "template": 0.5, "regex": 0.7, "blocking": 1.0}
    detectors = {
        "serialization": "serialization",
        "template": "template_rendering",
        "regex": "regex",
        "blocking": "blocking_in_async",
    }
    for owner, held in blocked_by_function(trace).items():
        if held >= BLOCKING_MIN_MS and held / total >= CATEGORY_MIN_SHARE:
            findings.append(
                Finding(
                    detector="blocking_in_async",
                    type="blocking",
                    function=owner.function,
                    impact=min(1.0, held / total),
                    time_ms=held,
                    spans=[],
                    function_span=owner,
                    saving=1.0,
                    detail={"library": "time.sleep / sync I/O"},
                    min_severity="high" if held >= 50 else "medium",
                )
            )
    for owner, frames in _owned_library_frames(trace).items():
        for category in ("blocking", "serialization", "template", "regex"):
            top = _topmost(frames, category, owner)
            if category == "blocking":
                top = [f for f in top if _in_coroutine(trace, f)]
            if not top:
                continue
            time_ms = _union_ms(top)
            share = time_ms / total
            if category == "blocking":
                if time_ms < BLOCKING_MIN_MS:
                    continue
            elif time_ms < CATEGORY_MIN_MS or share < CATEGORY_MIN_SHARE:
                continue
            heaviest = max(top, key=lambda f: f.duration)
            findings.append(
                Finding(
                    detector=detectors[category],
                    type=category,
                    function=owner.function,
                    impact=min(1.0, share),
                    time_ms=time_ms,
                    spans=top,
                    function_span=owner,
                    count=len(top),
                    saving=savings[category],
                    detail={"library": frame_label(heaviest)},
                    min_severity=("high" if time_ms >= 50 else "medium") if category == "blocking" else "low",
                )
            )
    return findings


def detect_gc(trace: Trace) -> list[Finding]:
    """Garbage collections that stopped the process for a large share of the request (every thread waits for one,
    so the requests running alongside were stopped too)."""
    pause_ms = trace.gc_pause_ms
    total = trace.duration_ms
    if pause_ms < GC_MIN_MS or pause_ms / total < GC_MIN_SHARE:
        return []
    pauses = [s for s in trace.spans if s.is_gc_pause]
    longest = max(pauses, key=lambda s: s.duration, default=None)
    owner = trace.user_function(longest.parent) if longest is not None and longest.parent is not None else None
    collections = trace.root.attributes.get("pystrument.gc.collections")
    generation = longest.function.rsplit(" ", 1)[-1].strip("()") if longest is not None else "2"
    return [
        Finding(
            detector="gc_pause",
            type="gc",
            function=_name(trace, owner),
            impact=min(1.0, pause_ms / total),
            time_ms=pause_ms,
            spans=pauses,
            function_span=owner,
            count=collections if isinstance(collections, int) and collections > 0 else max(1, len(pauses)),
            saving=0.8,
            detail={"library": f"generation {generation}"},
            min_severity="medium" if pause_ms >= 50 else "low",
        )
    ]


def detect_waits(trace: Trace) -> list[Finding]:
    """Time a function's thread stood still with no span to show for it: a C call made from the function's own code
    or a library it calls (sleep, a lock, I/O in an extension with no instrumentation), or the GIL. Outside
    coroutines (in a coroutine, ``blocking_in_async`` covers it)."""
    owned = _owned_library_frames(trace)
    by_name: dict[str, list[TSpan]] = defaultdict(list)
    for span in trace.spans:
        if span.is_function and not span.is_library and not _in_coroutine(trace, span):
            by_name[span.function].append(span)
    findings: list[Finding] = []
    total = trace.duration_ms
    for name, spans in by_name.items():
        waited = 0.0
        frames: list[tuple[TSpan, float]] = []
        own: dict[TSpan, float] = {}
        for span in spans:
            own[span] = max(0.0, span.wait_ms - _real_calls_ms(span))
            waited += own[span]
            for frame in owned.get(span, []):
                if frame.wait_ms > 0 and not frame.is_gc_pause and not _has_io(frame):
                    frames.append((frame, frame.wait_ms))
                    waited += frame.wait_ms
        if waited < WAIT_MIN_MS or waited / total < WAIT_MIN_SHARE:
            continue
        main = max(spans, key=lambda s: own[s])
        top = max(frames, key=lambda f: f[1], default=None)
        detail = {"library": frame_label(top[0])} if top is not None and top[1] >= 0.5 * waited else {}
        findings.append(
            Finding(
                detector="blocking_wait",
                type="blocking",
                function=name,
                impact=min(1.0, waited / total),
                time_ms=waited,
                spans=[s for s in spans if s is not main] + [f for f, _ in frames],
                function_span=main,
                count=len(spans),
                saving=0.5,
                detail=detail,
            )
        )
    return findings


def _has_io(span: TSpan) -> bool:
    return any(d.is_db or d.is_http_client for d in span.walk())


def detect_cpu(trace: Trace) -> list[Finding]:
    """User functions whose own time (plus uncategorised library work they call) is a large share."""
    owned = _owned_library_frames(trace)
    blocked = blocked_by_function(trace)
    by_name: dict[str, list[TSpan]] = defaultdict(list)
    for span in trace.spans:
        if span.is_function and not span.is_library:
            by_name[span.function].append(span)
    findings: list[Finding] = []
    total = trace.duration_ms
    for name, spans in by_name.items():
        cpu = 0.0
        libs: list[TSpan] = []
        for span in spans:
            cpu += max(0.0, _holds_loop_ms(span) - blocked.get(span, 0.0))
            for frame in owned.get(span, []):
                if frame_category(frame) is None and not frame.is_gc_pause and not _has_io(frame):
                    cpu += max(0.0, frame.self_ms - frame.await_ms - frame.wait_ms)
                    libs.append(frame)
        share = cpu / total
        if cpu >= CPU_MIN_MS and share >= CPU_MIN_SHARE:
            main = max(spans, key=lambda s: s.self_ms)
            top_lib = max(libs, key=lambda f: f.self_ms) if libs else None
            detail = {"library": frame_label(top_lib)} if top_lib is not None and top_lib.self_ms >= 0.3 * cpu else {}
            findings.append(
                Finding(
                    detector="cpu_hotspot",
                    type="cpu",
                    function=name,
                    impact=min(1.0, share),
                    time_ms=cpu,
                    spans=[s for s in spans if s is not main] + libs,
                    function_span=main,
                    count=len(spans),
                    saving=0.5,
                    detail=detail,
                )
            )
    return findings


def _merge_loop_work(trace: Trace, repeated: list[Finding], work: list[Finding]) -> list[Finding]:
    """A function that runs an N+1 loop and is also a CPU hotspot or waits: its own time is mostly the loop's per-item
    work (fetching rows, ORM hydration, building requests; with sqlite, the scan runs in ``fetchall`` outside the
    query's span, and under load that shows partly as waiting for the GIL), which batching removes too."""
    merged: set[int] = set()
    for finding in repeated:
        if not finding.detector.startswith("n_plus_one"):
            continue
        mine = [w for w in work if w.function == finding.function and id(w) not in merged]
        if not mine:
            continue
        finding.detail["calls_ms"] = f"{finding.time_ms:.0f}"
        for w in mine:
            finding.time_ms += w.time_ms
            merged.add(id(w))
        finding.impact = min(1.0, finding.time_ms / trace.duration_ms)
    return [w for w in work if id(w) not in merged]


def detect_all(trace: Trace) -> list[Finding]:
    """Run every detector; biggest impact first."""
    repeated = [*detect_database(trace), *detect_http(trace)]
    work = _merge_loop_work(trace, repeated, [*detect_cpu(trace), *detect_waits(trace)])
    findings = [*repeated, *detect_library_work(trace), *work, *detect_gc(trace)]
    findings.sort(key=lambda f: (-f.impact, f.detector, f.function))
    return findings
