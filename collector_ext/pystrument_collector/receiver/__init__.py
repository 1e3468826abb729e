"""OTLP/HTTP receiver: ``POST /v1/traces`` (protobuf and JSON, gzip)."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler


def receiver_handlers() -> list[ControllerRouterHandler]:
    return []


__all__ = ["receiver_handlers"]
