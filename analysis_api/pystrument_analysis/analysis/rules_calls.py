"""Rules on real calls: N+1 queries and HTTP calls, single slow calls, and DEBUG-mode query artefacts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from pystrument_analysis.analysis.classify import http_target, is_debug_statement, normalize_sql
from pystrument_analysis.analysis.findings import Finding
from pystrument_analysis.analysis.model import TraceModel, union_ms
from pystrument_analysis.analysis.trace import TSpan

N_PLUS_ONE_MIN_QUERIES = 5
N_PLUS_ONE_MIN_HTTP = 3
REPEATED_MIN_SHARE = 0.03  # repeated calls this small a share are reported only when very many
REPEATED_ALWAYS = 25
MAJORITY = 0.8  # share of a group's calls one function must hold to be blamed alone
SLOW_QUERY_MS = 100.0
SLOW_HTTP_MS = 200.0
DEBUG_MIN_MS = 2.0


def _lowest_common(model: TraceModel, nodes: list[TSpan]) -> TSpan | None:
    """The deepest owner enclosing all ``nodes`` (None when only the request span does)."""
    if not nodes:
        return None
    paths = [[n, *n.ancestors()][::-1] for n in nodes]
    common: TSpan | None = None
    for level in zip(*paths, strict=False):
        if all(x is level[0] for x in level):
            common = level[0]
        else:
            break
    return model.owner_of(common) if common is not None else None


def responsible(model: TraceModel, spans: list[TSpan]) -> TSpan | None:
    """The owner behind a group of calls.

    One function span holding (nearly) all of them wins: function times are rebuilt from samples, so a call
    placed by time may land in its neighbour. Calls spread over several spans of one function (one span per
    call) are blamed on those spans' nearest common caller: the loop that makes them.
    """
    owners = [o for o in (model.owner_of(s) for s in spans) if o is not None]
    if not owners:
        return None
    by_span: dict[TSpan, int] = defaultdict(int)
    by_name: dict[str, list[TSpan]] = defaultdict(list)
    for o in owners:
        by_span[o] += 1
        by_name[o.label].append(o)
    top_span = max(by_span, key=lambda o: by_span[o])
    if by_span[top_span] >= MAJORITY * len(owners):
        return top_span
    name = max(by_name, key=lambda k: len(by_name[k]))
    group = by_name[name] if len(by_name[name]) >= MAJORITY * len(owners) else owners
    common = _lowest_common(model, list(dict.fromkeys(group)))
    return common if common is not None else top_span


def _group_calls(
    model: TraceModel,
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
    total = model.total_ms
    for text, spans in groups.items():
        time_ms = union_ms(spans)
        if len(spans) >= min_count and (time_ms / total >= REPEATED_MIN_SHARE or len(spans) >= REPEATED_ALWAYS):
            owner = responsible(model, spans)
            findings.append(
                Finding(
                    detector=repeated[0],
                    type=repeated[1],
                    function=model.name(owner, spans[0].parent),
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
                owner = model.owner_of(span)
                findings.append(
                    Finding(
                        detector=slow[0],
                        type=slow[1],
                        function=model.name(owner, span.parent),
                        impact=min(1.0, share),
                        time_ms=span.ms,
                        spans=[span],
                        function_span=owner,
                        saving=0.6,
                        detail={"statement": text},
                    )
                )
    return findings


def _db_key(span: TSpan) -> str:
    return f"{span.db_system}: {normalize_sql(span.db_statement or span.name)}"


def detect_database(model: TraceModel) -> list[Finding]:
    calls = [s for s in model.trace.spans if s.is_db and not is_debug_statement(s.db_statement or s.name)]
    return _group_calls(
        model,
        calls,
        _db_key,
        N_PLUS_ONE_MIN_QUERIES,
        ("n_plus_one_query", "database"),
        ("slow_query", "database"),
        SLOW_QUERY_MS,
    )


def detect_http(model: TraceModel) -> list[Finding]:
    calls = [s for s in model.trace.spans if s.is_http_client]
    return _group_calls(
        model,
        calls,
        http_target,
        N_PLUS_ONE_MIN_HTTP,
        ("n_plus_one_http", "http"),
        ("slow_http", "http"),
        SLOW_HTTP_MS,
    )


def detect_debug_mode(model: TraceModel) -> list[Finding]:
    """DEBUG-mode artefacts: Django's query log quoting each parameter on sqlite (``SELECT QUOTE(?)``), debug
    toolbars. One finding, "DEBUG mode is on", instead of an N+1 on queries the app never wrote."""
    queries = [s for s in model.trace.spans if s.is_db and is_debug_statement(s.db_statement or s.name)]
    frames = [s for s in model.trace.spans if s.is_function and model.category.get(s) == "debug"]
    chosen = set(frames)
    frames = [f for f in frames if not any(a in chosen for a in f.ancestors())]
    if not queries and not frames:
        return []
    time_ms = union_ms([*queries, *frames])
    if time_ms < DEBUG_MIN_MS and len(queries) < N_PLUS_ONE_MIN_QUERIES:
        return []
    anchor = max(frames, key=lambda f: f.duration) if frames else None
    owner = responsible(model, queries) if queries else model.owner_of(anchor) if anchor is not None else None
    what = anchor.function if anchor is not None else "SELECT QUOTE(?)"
    return [
        Finding(
            detector="debug_mode",
            type="config",
            function=anchor.label if anchor is not None else model.name(owner, queries[0].parent),
            impact=min(1.0, time_ms / model.total_ms),
            time_ms=time_ms,
            spans=[*queries, *frames],
            function_span=owner,
            count=max(1, len(queries)),
            saving=1.0,
            detail={"library": what},
            min_severity="medium",
        )
    ]
