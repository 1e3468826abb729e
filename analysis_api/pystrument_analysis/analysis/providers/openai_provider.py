"""The ``openai`` provider: any OpenAI-compatible chat completions server, asked for a JSON answer."""

from __future__ import annotations

import asyncio
from typing import Any

from pystrument_analysis.analysis.config import ServiceConfig
from pystrument_analysis.analysis.providers.base import AnalysisRequest, ProviderError
from pystrument_analysis.analysis.schemas import AnalysisOutput, InvalidOutput, parse_output


def _short(text: object, limit: int = 300) -> str:
    s = str(text)
    return s if len(s) <= limit else s[:limit] + "…"


class OpenAIProvider:
    """``AsyncOpenAI`` with the service's base URL, key, timeout and retries; redirects are not followed."""

    def __init__(self, service: ServiceConfig) -> None:
        self.service = service

    async def analyze(self, request: AnalysisRequest) -> AnalysisOutput:
        svc = self.service
        try:
            import openai
        except ImportError:
            raise ProviderError(
                f"{svc.name}: the openai package is missing: pip install 'pystrument[server]'"
            ) from None

        client = openai.AsyncOpenAI(
            api_key=svc.api_key or "not-needed",
            base_url=svc.endpoint,
            timeout=svc.timeout,
            max_retries=svc.retries,
            default_headers=dict(svc.headers) or None,
            http_client=openai.DefaultAsyncHttpxClient(follow_redirects=False),
        )
        kwargs: dict[str, Any] = {
            "model": svc.model,
            "messages": [
                {"role": "system", "content": request.system_prompt},
                {"role": "user", "content": request.user_prompt},
            ],
            "max_tokens": svc.max_tokens,
            "temperature": svc.temperature,
        }
        if svc.json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        hard_limit = svc.timeout * (svc.retries + 1) + 10 * svc.retries + 5
        try:
            completion = await asyncio.wait_for(client.chat.completions.create(**kwargs), hard_limit)
        except (openai.APITimeoutError, TimeoutError):
            raise ProviderError(f"{svc.name}: no answer within {svc.timeout:g} s") from None
        except openai.APIStatusError as exc:
            raise ProviderError(f"{svc.name}: HTTP {exc.status_code}: {_short(exc.message)}") from None
        except openai.APIError as exc:
            raise ProviderError(f"{svc.name}: {_short(exc)}") from None
        finally:
            await client.close()
        content = completion.choices[0].message.content if completion.choices else None
        if not content:
            raise ProviderError(f"{svc.name}: empty answer")
        try:
            return parse_output(content)
        except InvalidOutput as exc:
            raise ProviderError(f"{svc.name}: {exc}") from None
