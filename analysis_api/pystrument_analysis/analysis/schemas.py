"""Wire shapes of the analysis API (seed 5.3) and the result schema every provider must return."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import msgspec

LANGUAGES = ("en", "zh")
SEVERITIES = ("low", "medium", "high", "critical")
PRIORITIES = ("low", "medium", "high")

ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Text = Annotated[str, msgspec.Meta(max_length=4000)]


class TriggerRequest(msgspec.Struct, kw_only=True):
    """``POST /api/v1/analysis/trigger`` body; ``project_key`` may come as the X-Project-Key header instead."""

    trace_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    analysis_type: Annotated[str, msgspec.Meta(min_length=1, max_length=32)] = "manual"
    ai_service: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    project_key: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    language: Annotated[str, msgspec.Meta(pattern="^(en|zh)$")] = "en"


class Bottleneck(msgspec.Struct, kw_only=True):
    """One entry of ``bottleneck_analysis`` (seed fields first, pystrument's extras after)."""

    type: ShortText
    severity: Annotated[str, msgspec.Meta(pattern="^(low|medium|high|critical)$")]
    function: Annotated[str, msgspec.Meta(max_length=500)]
    description: Text
    impact: Annotated[float, msgspec.Meta(ge=0, le=1)]
    span_ids: list[str] = msgspec.field(default_factory=list)
    file: str | None = None
    line: int | None = None
    self_time_ms: float | None = None


class Suggestion(msgspec.Struct, kw_only=True):
    """One entry of ``optimization_suggestions``."""

    category: ShortText
    priority: Annotated[str, msgspec.Meta(pattern="^(low|medium|high)$")]
    title: ShortText
    description: Text
    expected_improvement: Annotated[str, msgspec.Meta(max_length=500)] = ""
    function: str | None = None


class AnalysisOutput(msgspec.Struct, kw_only=True):
    """What a provider returns: score, bottlenecks and suggestions."""

    performance_score: Annotated[float, msgspec.Meta(ge=0, le=100)]
    bottleneck_analysis: Annotated[list[Bottleneck], msgspec.Meta(max_length=50)]
    optimization_suggestions: Annotated[list[Suggestion], msgspec.Meta(max_length=50)]


class InvalidOutput(ValueError):
    """A provider's answer does not match the result schema."""


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


def parse_output(payload: str | bytes | dict[str, Any]) -> AnalysisOutput:
    """Decode and validate a provider's answer; lower-case enum fields and accept a ```json fence."""
    if isinstance(payload, str | bytes):
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
        fenced = _FENCE.match(text)
        if fenced:
            text = fenced.group(1)
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidOutput(f"answer is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise InvalidOutput("answer is not a JSON object")
    data = dict(payload)
    for key, enum_key in (("bottleneck_analysis", "severity"), ("optimization_suggestions", "priority")):
        items = data.get(key)
        if isinstance(items, list):
            data[key] = [
                {**item, enum_key: item[enum_key].strip().lower()}
                if isinstance(item, dict) and isinstance(item.get(enum_key), str)
                else item
                for item in items
            ]
    suggestions = data.get("optimization_suggestions")
    if isinstance(suggestions, list):  # "critical" is a severity; as a priority it means "high"
        for item in suggestions:
            if isinstance(item, dict) and item.get("priority") == "critical":
                item["priority"] = "high"
    try:
        return msgspec.convert(data, AnalysisOutput, strict=False)
    except msgspec.ValidationError as exc:
        raise InvalidOutput(f"answer does not match the result schema: {exc}") from None


RESULT_SCHEMA_TEXT = """{
  "performance_score": number 0-100 (100 = nothing to improve),
  "bottleneck_analysis": [
    {"type": "database|http|cpu|blocking|serialization|template|regex|other",
     "severity": "low|medium|high|critical",
     "function": "the application's own function responsible (its code.function.name)",
     "description": "what is slow and why",
     "impact": number 0-1 (share of the request's duration)}
  ],
  "optimization_suggestions": [
    {"category": "same values as type", "priority": "low|medium|high",
     "title": "short imperative title", "description": "what to change, concretely",
     "expected_improvement": "e.g. about 60% less time in this request"}
  ]
}"""


# ---------------------------------------------------------------- responses (typed for /schema)


class _Envelope(msgspec.Struct, kw_only=True):
    code: int = 0
    msg: str = "success"


class TriggerData(msgspec.Struct, kw_only=True):
    """Seed 5.3.1 ``data``: the job is queued; poll ``/results/{analysis_id}``."""

    analysis_id: str
    status: str
    estimated_duration: int
    ai_service: str
    trace_id: str
    project_key: str | None  # echoed only when the request named the project (never looked up for the caller)


class BottleneckOut(msgspec.Struct, kw_only=True, omit_defaults=False):
    """A stored bottleneck: the seed's fields, then where it sits in the trace."""

    type: str
    severity: str
    function: str
    description: str
    impact: float
    span_ids: list[str] = msgspec.field(default_factory=list)
    file: str | None = None
    line: int | None = None
    self_time_ms: float | None = None
    detector: str | None = None
    time_ms: float | None = None
    count: int | None = None
    # a request held up by another on its event loop: the request that held it, and its function span
    culprit_trace_id: str | None = None
    culprit_span_id: str | None = None
    culprit_route: str | None = None
    starved: str | None = None  # why the request could not be sampled (the ``unexplained`` finding)


class SuggestionOut(msgspec.Struct, kw_only=True):
    """A stored suggestion (seed fields plus the function it is about)."""

    category: str
    priority: str
    title: str
    description: str
    expected_improvement: str = ""
    function: str | None = None


class AnalysisDetail(msgspec.Struct, kw_only=True):
    """Seed 5.3.2 ``data`` plus pystrument's extras (service asked for, provider used, error, times)."""

    analysis_id: str
    status: str
    performance_score: float | None
    builtin_score: float | None
    bottleneck_analysis: list[BottleneckOut]
    optimization_suggestions: list[SuggestionOut]
    summary: str
    trace_id: str
    project_key: str | None
    coverage: dict[str, Any] | None = (
        None  # builtin: share of the request the findings explain, and where the rest went
    )
    analysis_type: str
    ai_service: str
    provider_used: str | None
    language: str
    fallback: bool
    error: str | None
    attempts: int
    created_at: str | None
    started_at: str | None
    completed_at: str | None


class AnalysisPage(msgspec.Struct, kw_only=True):
    analyses: list[AnalysisDetail]
    total: int
    page: int
    size: int


class TriggerResponse(_Envelope, kw_only=True):
    data: TriggerData


class AnalysisResponse(_Envelope, kw_only=True):
    data: AnalysisDetail


class AnalysisPageResponse(_Envelope, kw_only=True):
    data: AnalysisPage
