"""What an AI provider is shown: a compact, redacted summary of one trace within a token budget.

Hot paths by self and total time, repeated DB/HTTP calls, the route's p50/p95 baseline and the builtin
rules' findings; secrets and personal data are redacted; the whole prompt stays under the budget
(estimated at 4 characters per token).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from pystrument_collector.db.models import PerformanceRecord
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pystrument_analysis.analysis.classify import http_target, normalize_sql
from pystrument_analysis.analysis.findings import Finding
from pystrument_analysis.analysis.model import TraceModel
from pystrument_analysis.analysis.trace import Trace, TSpan

CHARS_PER_TOKEN = 4
BASELINE_DAYS = 7
TOP = 10

_SECRET_KEY = re.compile(
    r"(authorization|cookie|token|secret|passw(?:or)?d|pwd|api[-_]?key|session|credential|private[-_]?key|signature)",
    re.I,
)
_REDACTIONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 [REDACTED]"),
    (re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[TOKEN]"),
    (re.compile(r"(?i)(://)[^/\s:@]+:[^/\s@]+@"), r"\1[REDACTED]@"),
    (
        re.compile(
            r"(?i)\b((?:access_|refresh_|id_)?token|api_?key|apikey|key|secret|password|passwd|pwd|session(?:id)?|"
            r"sid|auth|signature|sig|code)=([^&\s'\"]+)"
        ),
        r"\1=[REDACTED]",
    ),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "[EMAIL]"),
    (re.compile(r"\b(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{32,}\b"), "[TOKEN]"),
    (re.compile(r"\b(?:\d[ -]?){12,18}\d\b"), "[NUMBER]"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), "[IP]"),
]


def redact_text(text: str) -> str:
    """Mask tokens, credentials, e-mail addresses, card-like numbers and IP addresses in one string."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any) -> Any:
    """Redact every string in a JSON-like structure; values under secret-looking keys are dropped."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: "[REDACTED]" if _SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


async def load_baseline(session: AsyncSession, trace: Trace) -> dict[str, Any] | None:
    """p50/p95 of the same route over the last days, from performance_records."""
    route = trace.route
    if not route:
        return None
    since = datetime.now(UTC) - timedelta(days=BASELINE_DAYS)
    d = PerformanceRecord.duration
    row = (
        await session.execute(
            select(
                func.count(),
                func.percentile_cont(0.5).within_group(d),
                func.percentile_cont(0.95).within_group(d),
            ).where(
                PerformanceRecord.project_id == trace.project_id,
                PerformanceRecord.route == route,
                PerformanceRecord.timestamp >= since,
            )
        )
    ).one()
    count, p50, p95 = row
    if not count:
        return None
    return {"route": route, "samples": int(count), "p50_ms": round(p50 * 1000, 2), "p95_ms": round(p95 * 1000, 2)}


def _short_path(path: str | None) -> str | None:
    if not path:
        return None
    parts = path.replace("\\", "/").split("/")
    return "/".join(parts[-3:])


def _function_rows(trace: Trace) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for span in trace.functions():
        row = rows.setdefault(
            span.function,
            {
                "function": span.function,
                "file": _short_path(span.file),
                "line": span.line,
                "self_ms": 0.0,
                "total_ms": 0.0,
                "calls": 0,
                "library": span.is_library,
            },
        )
        row["self_ms"] += span.self_ms
        if span.wait_ms > 0:  # part of the self time in which the thread did not run
            row["wait_ms"] = row.get("wait_ms", 0.0) + span.wait_ms
        # recursion: count the outermost frame's time only
        if not any(a.is_function and a.function == span.function for a in span.ancestors()):
            row["total_ms"] += span.ms
        row["calls"] += 1
    for row in rows.values():
        row["self_ms"] = round(row["self_ms"], 2)
        if "wait_ms" in row:
            row["wait_ms"] = round(row["wait_ms"], 2)
        row["total_ms"] = round(row["total_ms"], 2)
    return list(rows.values())


def _hot_path(trace: Trace) -> list[dict[str, Any]]:
    path: list[dict[str, Any]] = []
    node = trace.root
    while True:
        inner = [c for c in node.children if c.is_function]
        if not inner:
            return path
        node = max(inner, key=lambda c: c.duration)
        path.append({"function": node.function, "total_ms": round(node.ms, 2), "self_ms": round(node.self_ms, 2)})
        if len(path) >= 12:
            return path


def _owner_name(trace: Trace, span: TSpan) -> str | None:
    owner = _owners(trace).get(span)
    return owner.label if owner is not None else None


def _owners(trace: Trace) -> dict[TSpan, TSpan | None]:
    """Each span's owner, as the builtin rules see it (computed once per trace)."""
    model = getattr(trace, "_model", None)
    if model is None:
        model = TraceModel(trace)
        object.__setattr__(trace, "_model", model)
    return model.owner


def _repeated(trace: Trace, spans: list[TSpan], key: Any, label: str) -> list[dict[str, Any]]:
    groups: dict[str, list[TSpan]] = defaultdict(list)
    for s in spans:
        groups[key(s)].append(s)
    rows = [
        {label: k, "count": len(v), "total_ms": round(sum(s.ms for s in v), 2), "function": _owner_name(trace, v[0])}
        for k, v in groups.items()
        if len(v) >= 2
    ]
    return sorted(rows, key=lambda r: -r["total_ms"])


#: Log lines handed to an AI provider with a trace: warnings and errors first, then the rest, in time order.
MAX_LOG_LINES = 30
LOG_BODY_CHARS = 300


def log_context(trace: Trace, logs: list[Any]) -> list[dict[str, Any]]:
    """The trace's log lines as context: offset from the request's start, severity, body, and the function span
    (or request) that wrote them; the most severe first when there are too many."""
    owners = {s.span_id: s for s in trace.spans}
    start = trace.root.start
    chosen = sorted(logs, key=lambda line: -int(line.severity_number or 0))[:MAX_LOG_LINES]
    chosen.sort(key=lambda line: line.timestamp)
    out = []
    for line in chosen:
        span = owners.get(line.span_id or "")
        body = line.body if isinstance(line.body, str) else str(line.body)
        out.append(
            {
                "at_ms": round((line.timestamp.timestamp() - start) * 1000, 1),
                "severity": line.severity_text or str(line.severity_number or ""),
                "body": body[:LOG_BODY_CHARS],
                "span": span.function if span is not None and span.is_function else (span.name if span else None),
            }
        )
    return out


def build_summary(
    trace: Trace, findings: list[Finding], baseline: dict[str, Any] | None, logs: list[Any] | None = None
) -> dict[str, Any]:
    """The trace as compact facts (not yet redacted or trimmed); ``logs``: its log lines (``trace_logs``)."""
    root, record = trace.root, trace.record
    db = [s for s in trace.spans if s.is_db]
    http = [s for s in trace.spans if s.is_http_client]
    path = (record.path if record is not None else str(root.attributes.get("url.path") or "")).split("?")[0]
    functions = _function_rows(trace)
    calls = [
        {
            "kind": "db" if s.is_db else "http",
            "what": normalize_sql(s.db_statement or s.name) if s.is_db else http_target(s),
            "ms": round(s.ms, 2),
            "function": _owner_name(trace, s),
        }
        for s in sorted(db + http, key=lambda s: -s.duration)[:TOP]
    ]
    status = record.status_code if record is not None else root.attributes.get("http.response.status_code")
    cpu = (
        record.cpu_time * 1000
        if record is not None and record.cpu_time is not None
        else root.attributes.get("pystrument.cpu_time_ms")
    )
    return {
        "request": {
            "method": record.method if record is not None else root.http_method,
            "route": trace.route or root.name,
            "path": path,
            "status_code": status,
            "duration_ms": round(root.ms, 2),
            "cpu_time_ms": round(float(cpu), 2) if isinstance(cpu, int | float) else None,
            "async": trace.is_async,
            **({"gc_pause_ms": round(trace.gc_pause_ms, 2)} if trace.gc_pause_ms > 0 else {}),
        },
        "baseline": baseline,
        "totals": {
            "spans": len(trace.spans),
            "function_spans": len(functions),
            "db_calls": len(db),
            "db_ms": round(sum(s.ms for s in db), 2),
            "http_calls": len(http),
            "http_ms": round(sum(s.ms for s in http), 2),
        },
        "rule_findings": [
            {
                "type": f.type,
                "detector": f.detector,
                "function": f.function,
                "impact": round(f.impact, 3),
                "count": f.count,
            }
            for f in findings
        ],
        "repeated_db_calls": _repeated(
            trace, db, lambda s: f"{s.db_system}: {normalize_sql(s.db_statement or s.name)}", "statement"
        ),
        "repeated_http_calls": _repeated(trace, http, http_target, "target"),
        "hot_functions_by_self_time": sorted(functions, key=lambda r: -r["self_ms"])[:TOP],
        "hot_functions_by_total_time": sorted(functions, key=lambda r: -r["total_ms"])[:TOP],
        "hot_path": _hot_path(trace),
        "slowest_calls": calls,
        **({"logs": log_context(trace, logs)} if logs else {}),
    }


# Lists trimmed first are the least useful to the model.
_TRIM_ORDER = (
    "logs",
    "hot_functions_by_total_time",
    "slowest_calls",
    "hot_path",
    "hot_functions_by_self_time",
    "repeated_http_calls",
    "repeated_db_calls",
    "rule_findings",
)


def data_text(summary: dict[str, Any]) -> str:
    """JSON with ``<`` and ``>`` escaped, so the data cannot close its delimiters."""
    text = json.dumps(summary, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e")


def _truncate_strings(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= limit else value[: limit - 1] + "…"
    if isinstance(value, dict):
        return {k: _truncate_strings(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_truncate_strings(v, limit) for v in value]
    return value


def fit_budget(summary: dict[str, Any], max_chars: int) -> dict[str, Any]:
    """Shrink the summary until its JSON fits ``max_chars``: shorter strings, then fewer list items."""
    if len(data_text(summary)) <= max_chars:
        return summary
    summary = _truncate_strings(summary, 160)
    lists = [k for k in _TRIM_ORDER if isinstance(summary.get(k), list)]
    while len(data_text(summary)) > max_chars:
        candidates = [k for k in lists if summary[k]]
        if not candidates:
            break
        # drop from the least useful list that still has more items than the more useful ones
        key = max(candidates, key=lambda k: (len(summary[k]), -_TRIM_ORDER.index(k)))
        summary[key] = summary[key][:-1]
    if len(data_text(summary)) > max_chars:
        summary = _truncate_strings(summary, 40)
    return summary


def prepare(summary: dict[str, Any], max_chars: int) -> dict[str, Any]:
    """Redact, then fit the budget."""
    return fit_budget(redact(summary), max_chars)
