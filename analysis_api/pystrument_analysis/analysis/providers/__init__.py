"""AI providers behind one small interface: ``openai`` and ``custom`` (``builtin`` needs none)."""

from pystrument_analysis.analysis.providers.base import (
    AnalysisRequest,
    Provider,
    ProviderError,
    build_request,
    make_provider,
)

__all__ = ["AnalysisRequest", "Provider", "ProviderError", "build_request", "make_provider"]
