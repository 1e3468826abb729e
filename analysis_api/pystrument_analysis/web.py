"""Serves the built SvelteKit UI (adapter-static) at ``/``."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler


def web_handlers() -> list[ControllerRouterHandler]:
    return []
