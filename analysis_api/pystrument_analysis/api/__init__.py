"""The REST API under ``/api/v1`` in the seed's ``{code, msg, data}`` envelope."""

from __future__ import annotations

from litestar import Router
from litestar.types import ControllerRouterHandler

from pystrument_analysis.api.errors import exception_handlers


def api_handlers() -> list[ControllerRouterHandler]:
    """The API's controllers; the token-protected ones declare it in the OpenAPI schema (see ``access``)."""
    from pystrument_analysis.analysis.controllers import AnalysisController
    from pystrument_analysis.api.access import SECURITY_SCHEMES, AuthController
    from pystrument_analysis.api.flame import FlameController
    from pystrument_analysis.api.performance import PerformanceController
    from pystrument_analysis.api.projects import ProjectController

    protected = Router(
        path="/",
        route_handlers=[ProjectController, PerformanceController, FlameController, AnalysisController],
        security=[{name: []} for name in SECURITY_SCHEMES],
    )
    return [protected, AuthController]


__all__ = ["api_handlers", "exception_handlers"]
