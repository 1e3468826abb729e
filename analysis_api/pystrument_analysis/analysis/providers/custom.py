"""The ``custom`` provider: POST the redacted trace summary to an endpoint, get the result schema back.

Contract (docs/ai.md): request ``{analysis_id, analysis_type, language, template, instructions,
trace_summary, result_schema}``; response 200 with ``{performance_score, bottleneck_analysis,
optimization_suggestions}``, optionally wrapped in the seed envelope ``{code: 0, msg, data}``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from pystrument_analysis.analysis.config import ServiceConfig
from pystrument_analysis.analysis.providers.base import AnalysisRequest, ProviderError
from pystrument_analysis.analysis.schemas import RESULT_SCHEMA_TEXT, AnalysisOutput, InvalidOutput, parse_output

RETRY_STATUSES = (429, 500, 502, 503, 504)
MAX_BACKOFF_S = 5.0


def _backoff(response: httpx.Response | None, attempt: int) -> float:
    if response is not None:
        try:
            return min(MAX_BACKOFF_S, float(response.headers.get("retry-after", "")))
        except ValueError:
            pass
    return min(MAX_BACKOFF_S, 0.2 * 2**attempt)


class CustomProvider:
    """One POST per attempt with the service's headers and timeout; redirects are not followed."""

    def __init__(self, service: ServiceConfig) -> None:
        self.service = service

    def body(self, request: AnalysisRequest) -> dict[str, Any]:
        return {
            "analysis_id": request.analysis_id,
            "analysis_type": request.analysis_type,
            "language": request.language,
            "template": request.template,
            "instructions": request.system_prompt,
            "trace_summary": request.summary,
            "result_schema": RESULT_SCHEMA_TEXT,
        }

    async def analyze(self, request: AnalysisRequest) -> AnalysisOutput:
        svc = self.service
        error = "no attempt made"
        async with httpx.AsyncClient(timeout=svc.timeout, follow_redirects=False) as client:
            for attempt in range(svc.retries + 1):
                response: httpx.Response | None = None
                try:
                    response = await client.post(svc.endpoint, json=self.body(request), headers=dict(svc.headers))
                except httpx.TimeoutException:
                    error = f"{svc.name}: no answer within {svc.timeout:g} s"
                except httpx.HTTPError as exc:
                    error = f"{svc.name}: {type(exc).__name__}: {exc}"
                else:
                    if response.status_code == 200:
                        return self._parse(response)
                    error = f"{svc.name}: HTTP {response.status_code}: {response.text[:200]}"
                    if response.status_code not in RETRY_STATUSES:
                        raise ProviderError(error)
                if attempt < svc.retries:
                    await asyncio.sleep(_backoff(response, attempt))
        raise ProviderError(error)

    def _parse(self, response: httpx.Response) -> AnalysisOutput:
        try:
            payload = response.json()
        except ValueError as exc:
            raise ProviderError(f"{self.service.name}: answer is not JSON: {exc}") from None
        if isinstance(payload, dict) and "performance_score" not in payload and isinstance(payload.get("data"), dict):
            if payload.get("code", 0) != 0:
                raise ProviderError(f"{self.service.name}: error code {payload.get('code')}: {payload.get('msg')}")
            payload = payload["data"]
        try:
            return parse_output(payload)
        except InvalidOutput as exc:
            raise ProviderError(f"{self.service.name}: {exc}") from None
