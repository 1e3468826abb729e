"""Routes ``/r0`` ... ``/r7``: even ones are sync views, odd ones async views; each calls its own functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import path
from routes import ROUTES, define, named


def sync_view(route: str) -> Callable[[HttpRequest], JsonResponse]:
    work = define(route)[f"{route}_work"]

    def view(request: HttpRequest) -> JsonResponse:
        return JsonResponse({"route": route, "n": work()})

    return named(view, f"{route}_view")


def async_view(route: str) -> Callable[[HttpRequest], Any]:
    awork = define(route)[f"{route}_awork"]

    async def view(request: HttpRequest) -> JsonResponse:
        return JsonResponse({"route": route, "n": await awork()})

    return named(view, f"{route}_view")


def hello(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"hello": "world"})


urlpatterns = [path("hello", hello)] + [
    path(f"r{i}", (sync_view if i % 2 == 0 else async_view)(f"r{i}")) for i in range(ROUTES)
]
