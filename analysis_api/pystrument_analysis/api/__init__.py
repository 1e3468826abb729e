"""The REST API under ``/api/v1`` in the seed's ``{code, msg, data}`` envelope."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from pystrument_analysis.api.errors import exception_handlers


def api_handlers() -> list[ControllerRouterHandler]:
    from pystrument_analysis.api.performance import PerformanceController
    from pystrument_analysis.api.projects import ProjectController

    return [ProjectController, PerformanceController]


__all__ = ["api_handlers", "exception_handlers"]
