"""Input Postgres cannot store or compare: a NUL character anywhere in an API path or query is a 400."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from pystrument_analysis.api.errors import BadRequest

NUL_MESSAGE = "the request contains a NUL character (\\x00), which cannot be stored or searched for"


async def nul_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """App-wide guard, before any parameter reaches a query (text columns refuse NUL: that would be a 500).
    Async, so Litestar calls it inline rather than in a worker thread."""
    path: str = connection.scope["path"]
    if not path.startswith("/api/"):
        return
    query: bytes = connection.scope.get("query_string", b"")
    if "\x00" in path or b"\x00" in query or b"%00" in query:
        raise BadRequest(NUL_MESSAGE)


def no_nul(value: str, field: str) -> str:
    """``value``, or 400 naming ``field`` when it holds a NUL character."""
    if "\x00" in value:
        raise BadRequest(f"{field} must not contain NUL characters (\\x00)")
    return value


async def repeat_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """App-wide guard: an API query parameter given twice (``?project_key=a&project_key=b``) is a 400, rather
    than one of the values silently winning."""
    if not connection.scope["path"].startswith("/api/"):
        return
    query: bytes = connection.scope.get("query_string", b"")
    if b"&" not in query and b";" not in query:
        return
    seen: set[str] = set()
    for name, _value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name in seen:
            raise BadRequest(f"query parameter {name!r} is given more than once; give it once")
        seen.add(name)
