"""The seed's legacy JSON report (``POST /api/v1/performance/collect``, seed 5.2.1) → the same span rows.

The request becomes a SERVER span with a performance record; ``function_calls`` become synthetic INTERNAL
function spans nested as given (``children``) or, without timing, laid out one after another. Span ids
are derived from the trace id and the call's position, so sending a report twice stores it once.
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import msgspec

from pystrument_collector.ingest._batch import Batch
from pystrument_collector.ingest._errors import PayloadError

MAX_TRACE_ID = 32
MAX_FUNCTION_SPANS = 10_000
MAX_DEPTH = 64
MAX_SECONDS = 86_400.0  # a duration or offset longer than a day is not a request's
FUTURE_TOLERANCE_SECONDS = 86_400.0  # as for OTLP spans: times more than a day ahead are refused
_decoder = msgspec.json.Decoder()


def _span_id(trace_id: str, path: str) -> str:
    return hashlib.blake2b(f"{trace_id}/{path}".encode(), digest_size=8).hexdigest()


def _number(value: Any, field: str, *, required: bool = False) -> float | None:
    if value is None:
        if required:
            raise PayloadError(f"{field} is required (seconds, a number)")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"{field} must be a number, not {type(value).__name__}")
    if value < 0:
        raise PayloadError(f"{field} must not be negative")
    if not value <= MAX_SECONDS:  # also NaN and infinity
        raise PayloadError(f"{field} must be at most {MAX_SECONDS:g} seconds")
    return float(value)


def _epoch_seconds(value: Any, field: str) -> float | None:
    """An absolute time given as epoch seconds or ISO 8601 text."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise PayloadError(f"{field} must be ISO 8601 text or epoch seconds, got {value!r}") from None
        if parsed.tzinfo is None:
            raise PayloadError(f"{field} needs a timezone (e.g. a trailing Z)")
        seconds = parsed.timestamp()
    else:
        raise PayloadError(f"{field} must be ISO 8601 text or epoch seconds")
    if not 0 < seconds <= time.time() + FUTURE_TOLERANCE_SECONDS:  # also NaN
        raise PayloadError(f"{field} must be after 1970 and at most a day ahead of the server's clock")
    return seconds


class LegacyReport:
    """A validated seed report; :meth:`fill` maps it into a :class:`Batch`."""

    def __init__(self, body: bytes) -> None:
        try:
            doc = _decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise PayloadError(f"body is not valid JSON: {exc}") from None
        except RecursionError:
            raise PayloadError("body is nested too deeply to decode") from None
        if not isinstance(doc, dict):
            raise PayloadError("body must be a JSON object with trace_id, request_info and performance_metrics")
        trace_id = doc.get("trace_id")
        if trace_id is None or trace_id == "":
            trace_id = hashlib.blake2b(body, digest_size=16).hexdigest()
        if not isinstance(trace_id, str):
            raise PayloadError("trace_id must be a string")
        if len(trace_id) > MAX_TRACE_ID:
            raise PayloadError(f"trace_id is {len(trace_id)} characters; at most {MAX_TRACE_ID} are allowed")
        self.trace_id = trace_id.replace("\x00", "")
        info = doc.get("request_info") or {}
        metrics = doc.get("performance_metrics") or {}
        if not isinstance(info, dict) or not isinstance(metrics, dict):
            raise PayloadError("request_info and performance_metrics must be objects")
        self.info = info
        self.duration = _number(metrics.get("total_duration"), "performance_metrics.total_duration", required=True)
        self.cpu_time = _number(metrics.get("cpu_time"), "performance_metrics.cpu_time")
        memory = metrics.get("memory_usage") or {}
        if not isinstance(memory, dict):
            raise PayloadError("performance_metrics.memory_usage must be an object")
        self.memory = memory
        calls = doc.get("function_calls") or []
        if not isinstance(calls, list):
            raise PayloadError("function_calls must be a list")
        self.calls = calls
        status = info.get("status_code", doc.get("status_code"))
        if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
            raise PayloadError("request_info.status_code must be an integer")
        self.status = status
        ts = _epoch_seconds(doc.get("timestamp", info.get("timestamp")), "timestamp")
        assert self.duration is not None
        self.start = ts if ts is not None else time.time() - self.duration
        self.service = doc.get("service_name") if isinstance(doc.get("service_name"), str) else ""

    def _request_attributes(self) -> dict[str, Any]:
        info = self.info
        method = str(info.get("method") or "").upper()
        path = str(info.get("path") or info.get("url") or "")
        attrs: dict[str, Any] = {"http.request.method": method, "url.path": path.split("?", 1)[0]}
        if "?" in path:
            attrs["url.query"] = path.split("?", 1)[1]
        query = info.get("query_params")
        if isinstance(query, dict) and query:
            attrs["url.query"] = urlencode({str(k): str(v) for k, v in query.items()})
        if info.get("route"):
            attrs["http.route"] = str(info["route"])
        if self.status is not None:
            attrs["http.response.status_code"] = self.status
        headers = info.get("headers")
        if isinstance(headers, dict):
            for name, value in headers.items():
                attrs[f"http.request.header.{str(name).lower()}"] = [str(value)]
            ua = next((v for k, v in headers.items() if str(k).lower() == "user-agent"), None)
            if ua is not None:
                attrs["user_agent.original"] = str(ua)
        if self.cpu_time is not None:
            attrs["pystrument.cpu_time_ms"] = self.cpu_time * 1000
        for key, value in self.memory.items():
            attrs[f"pystrument.memory.{key}"] = value
        attrs["pystrument.source"] = "collect"
        return attrs

    def fill(self, batch: Batch, project_id: int, service_name: str = "") -> None:
        """The request span and its function spans, all in one batch."""
        attrs = self._request_attributes()
        start_ns = int(self.start * 1e9)
        assert self.duration is not None
        end_ns = start_ns + int(self.duration * 1e9)
        request_id = _span_id(self.trace_id, "request")
        method, path = attrs["http.request.method"], attrs.get("http.route") or attrs["url.path"]
        service = self.service or service_name
        status = self.status
        batch.add_span(
            project_id=project_id,
            service_name=service,
            trace_id=self.trace_id,
            span_id=request_id,
            parent_span_id=None,
            name=f"{method} {path}".strip(),
            kind="SERVER",
            start_ns=start_ns,
            end_ns=end_ns,
            status_code=2 if status is not None and status >= 500 else 0,
            status_message="",
            attributes=attrs,
            events=[],
            request=True,
        )
        self._calls(batch, project_id, service, self.calls, request_id, "", start_ns, 0, [0])

    def _calls(
        self,
        batch: Batch,
        project_id: int,
        service: str,
        calls: list[Any],
        parent_id: str,
        prefix: str,
        parent_start_ns: int,
        depth: int,
        count: list[int],
    ) -> None:
        if depth >= MAX_DEPTH:
            raise PayloadError(f"function_calls are nested deeper than {MAX_DEPTH} levels")
        cursor = parent_start_ns
        for index, call in enumerate(calls):
            where = f"function_calls{prefix}[{index}]"
            if not isinstance(call, dict):
                raise PayloadError(f"{where} must be an object")
            count[0] += 1
            if count[0] > MAX_FUNCTION_SPANS:
                raise PayloadError(f"more than {MAX_FUNCTION_SPANS} function_calls in one report")
            name = call.get("function") or call.get("name") or call.get("function_name")
            if not isinstance(name, str) or not name:
                raise PayloadError(f"{where} needs a 'function' (or 'name') string")
            duration = _number(call.get("duration"), f"{where}.duration")
            if duration is None and call.get("duration_ms") is not None:
                duration = (_number(call.get("duration_ms"), f"{where}.duration_ms") or 0.0) / 1000
            duration = duration or 0.0
            start_ns = self._call_start(call, where, parent_start_ns, cursor)
            end_ns = start_ns + int(duration * 1e9)
            cursor = max(cursor, end_ns)
            attrs = _function_attributes(call, name)
            span_id = _span_id(self.trace_id, f"{prefix}/{index}")
            batch.add_span(
                project_id=project_id,
                service_name=service,
                trace_id=self.trace_id,
                span_id=span_id,
                parent_span_id=parent_id,
                name=attrs["code.function.name"],
                kind="INTERNAL",
                start_ns=start_ns,
                end_ns=end_ns,
                status_code=0,
                status_message="",
                attributes=attrs,
                events=[],
                request=False,
            )
            children = call.get("children") or call.get("calls_tree") or []
            if not isinstance(children, list):
                raise PayloadError(f"{where}.children must be a list")
            if children:
                self._calls(
                    batch, project_id, service, children, span_id, f"{prefix}/{index}", start_ns, depth + 1, count
                )

    def _call_start(self, call: dict[str, Any], where: str, parent_start_ns: int, cursor: int) -> int:
        """Absolute start: epoch/ISO ``start_time``, or an offset in seconds from the request start."""
        value = call.get("start_time", call.get("start_offset"))
        if value is None:
            return cursor
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 1e9:
            offset = _number(value, f"{where}.start_time")  # an offset: 0 to a day
            return int(self.start * 1e9) + int((offset or 0.0) * 1e9)
        seconds = _epoch_seconds(value, f"{where}.start_time")
        return int(seconds * 1e9) if seconds is not None else parent_start_ns


def _function_attributes(call: dict[str, Any], name: str) -> dict[str, Any]:
    module = call.get("module")
    file = call.get("file") or call.get("filename") or call.get("file_path")
    if isinstance(module, str) and module and (module.endswith(".py") or "/" in module or "\\" in module):
        file, module = file or module, None
    qualified = f"{module}.{name}" if isinstance(module, str) and module and not name.startswith(module) else name
    attrs: dict[str, Any] = {"pystrument.synthetic": True, "code.function.name": qualified}
    if isinstance(file, str) and file:
        attrs["code.file.path"] = file
    line = call.get("line", call.get("lineno", call.get("line_number")))
    if isinstance(line, int) and not isinstance(line, bool):
        attrs["code.line.number"] = line
    for src, dst in (("self_time", "pystrument.self_time_ms"), ("self_time_ms", "pystrument.self_time_ms")):
        value = call.get(src)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attrs[dst] = value * 1000 if src == "self_time" else value
    calls = call.get("call_count", call.get("calls"))
    if isinstance(calls, int) and not isinstance(calls, bool):
        attrs["pystrument.call_count"] = calls
    attrs["pystrument.source"] = "collect"
    return attrs
