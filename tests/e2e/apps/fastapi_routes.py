"""FastAPI app for the frameworks' e2e tests: even routes are ``def`` (run in the threadpool), odd ones
``async def`` (on the loop); each calls its own functions (see routes.py). Imports nothing of pystrument."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from routes import ROUTES, define, named

app = FastAPI()


def sync_route(route: str) -> Callable[[], dict[str, Any]]:
    work = define(route)[f"{route}_work"]

    def view() -> dict[str, Any]:
        return {"route": route, "n": work()}

    return named(view, f"{route}_view")


def async_route(route: str) -> Callable[[], Awaitable[dict[str, Any]]]:
    awork = define(route)[f"{route}_awork"]

    async def view() -> dict[str, Any]:
        return {"route": route, "n": await awork()}

    return named(view, f"{route}_view")


for i in range(ROUTES):
    app.add_api_route(f"/r{i}", (sync_route if i % 2 == 0 else async_route)(f"r{i}"), methods=["GET"])


@app.get("/hello")
def hello() -> dict[str, str]:
    return {"hello": "world"}
