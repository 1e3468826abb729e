"""Who may use the REST API: an optional API token, and loopback-only serving without one.

With ``PYSTRUMENT_API_TOKEN`` set, every ``/api/`` request needs it, as ``Authorization: Bearer <token>`` or as
the ``pystrument_token`` cookie, except the seed's ingest ``POST /api/v1/performance/collect`` (authenticated
by ``X-Project-Key``, like OTLP at ``/v1/traces``) and ``/api/v1/auth/*``. The cookie is set by
``POST /api/v1/auth/login`` or by opening any UI page once with ``?token=<token>``; it holds an HMAC of the
token, never the token, and is HttpOnly and SameSite=Strict (so other sites cannot ride on it). UI files,
``/schema`` and ``/health`` stay public. Without a token the server only binds to loopback unless told
``--insecure`` / ``PYSTRUMENT_INSECURE=1``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, State
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import JSONBody
from litestar.response import Redirect
from litestar.status_codes import HTTP_200_OK
from msgspec import Meta, Struct

from pystrument_analysis.api.errors import Unauthorized

ENV_API_TOKEN = "PYSTRUMENT_API_TOKEN"
ENV_INSECURE = "PYSTRUMENT_INSECURE"
COOKIE = "pystrument_token"
MIN_TOKEN_LENGTH = 16
COOKIE_MAX_AGE = 30 * 24 * 3600
OPEN_API_PATHS = frozenset({("POST", "/api/v1/performance/collect")})
OPEN_API_PREFIX = "/api/v1/auth/"
SECURITY_SCHEMES = ("apiToken", "apiCookie")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}
GENERATE_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def token_from_env() -> str | None:
    """``PYSTRUMENT_API_TOKEN``, checked: None when unset or empty."""
    token = os.environ.get(ENV_API_TOKEN, "").strip()
    if not token:
        return None
    validate_token(token)
    return token


def validate_token(token: str) -> None:
    if len(token) < MIN_TOKEN_LENGTH or not token.isascii() or not token.isprintable() or " " in token:
        raise ValueError(
            f"{ENV_API_TOKEN} must be at least {MIN_TOKEN_LENGTH} printable ASCII characters without spaces; "
            f"make one with: {GENERATE_HINT}"
        )


def insecure_from_env() -> bool:
    """``PYSTRUMENT_INSECURE``: serve beyond loopback without a token (1/true/yes/on)."""
    value = os.environ.get(ENV_INSECURE, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{ENV_INSECURE}={value!r} is not a boolean: use 1 or 0")


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the server on this machine (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None, insecure: bool) -> None:
    """Refuse (``ValueError`` naming both fixes) to serve an unauthenticated API beyond loopback."""
    if token or insecure or is_loopback(host):
        return
    raise ValueError(
        f"refusing to serve on {host} without an API token: anyone who can reach it could read and delete "
        f"your data. Set {ENV_API_TOKEN} (make one with: {GENERATE_HINT}; clients then send "
        f"'Authorization: Bearer <token>'), or pass --insecure (or {ENV_INSECURE}=1) if the network is trusted."
    )


def client_headers() -> dict[str, str]:
    """Headers for a client of this server's API (the demo, scripts): the bearer token when one is set."""
    token = os.environ.get(ENV_API_TOKEN, "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


class ApiAccess:
    """The configured token (or None: the API is open) and the checks made with it."""

    def __init__(self, token: str | None) -> None:
        if token is not None:
            validate_token(token)
        self.token = token
        self._cookie = hmac.new(token.encode(), b"pystrument-ui-cookie", hashlib.sha256).hexdigest() if token else ""

    @property
    def required(self) -> bool:
        return self.token is not None

    def matches(self, candidate: str) -> bool:
        return self.token is not None and hmac.compare_digest(candidate.encode(), self.token.encode())

    def allows(self, connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
        """Whether the request carries the token (bearer header) or the login cookie."""
        if self.token is None:
            return True
        scheme, _, credentials = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.matches(credentials.strip()):
            return True
        cookie = connection.cookies.get(COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), self._cookie.encode())

    def cookie(self, secure: bool) -> Cookie:
        return Cookie(
            key=COOKIE,
            value=self._cookie,
            path="/",
            httponly=True,
            samesite="strict",
            secure=secure,
            max_age=COOKIE_MAX_AGE,
        )


def needs_token(method: str, path: str) -> bool:
    """Whether this request is one the token protects."""
    return path.startswith("/api/") and not path.startswith(OPEN_API_PREFIX) and (method, path) not in OPEN_API_PATHS


def _access(state: State) -> ApiAccess:
    access = state.get("access")
    return access if isinstance(access, ApiAccess) else ApiAccess(None)


async def token_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """App-wide guard: a protected path without the token is 401 (40101). Async: Litestar runs sync guards in a
    worker thread, a thread hop on every request."""
    access = _access(connection.app.state)
    method = str(connection.scope.get("method", "GET"))
    if not access.required or not needs_token(method, connection.scope["path"]):
        return
    if not access.allows(connection):
        raise NotAuthorizedException(
            detail=f"missing or invalid API token: send 'Authorization: Bearer <{ENV_API_TOKEN}>' "
            "or log in with POST /api/v1/auth/login",
            headers={"WWW-Authenticate": 'Bearer realm="pystrument"'},
        )


async def token_link(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """``GET /any/ui/page?token=<token>`` sets the login cookie and redirects to the page without the token."""
    if request.method != "GET" or request.url.path.startswith("/api/") or "token" not in request.query_params:
        return None
    access = _access(request.app.state)
    if not access.required or not access.matches(str(request.query_params.get("token", ""))):
        return None
    rest = {k: v for k, v in request.query_params.dict().items() if k != "token"}
    return Redirect(
        request.url.path,
        query_params=rest or None,
        status_code=303,
        cookies=[access.cookie(secure=request.url.scheme == "https")],
    )


class LoginRequest(Struct):
    """Body of ``POST /api/v1/auth/login``."""

    token: Annotated[str, Meta(min_length=1, max_length=1000, description="the server's PYSTRUMENT_API_TOKEN")]


class AuthStatus(Struct):
    """Whether the API wants a token, and whether this request carried it."""

    auth_required: bool
    authenticated: bool


class AuthStatusResponse(Struct, kw_only=True):
    code: int = 0
    msg: str = "success"
    data: AuthStatus


class AuthController(Controller):
    """``/api/v1/auth``: open endpoints the web UI uses to log in with the API token."""

    path = "/api/v1/auth"
    tags = ("auth",)

    @get("/status", operation_id="getAuthStatus", summary="Whether a token is required and whether this request has it")
    async def status(self, request: Request[Any, Any, Any]) -> AuthStatusResponse:
        access = _access(request.app.state)
        return AuthStatusResponse(data=AuthStatus(auth_required=access.required, authenticated=access.allows(request)))

    @post(
        "/login",
        operation_id="login",
        status_code=HTTP_200_OK,
        summary="Check the API token and set the HttpOnly session cookie the web UI uses",
    )
    async def login(self, request: Request[Any, Any, Any], data: JSONBody[LoginRequest]) -> Response[Any]:
        access = _access(request.app.state)
        if not access.required:
            return Response(AuthStatusResponse(data=AuthStatus(auth_required=False, authenticated=True)))
        if not access.matches(data.token):
            raise Unauthorized("wrong API token")
        return Response(
            AuthStatusResponse(data=AuthStatus(auth_required=True, authenticated=True)),
            cookies=[access.cookie(secure=request.url.scheme == "https")],
        )

    @post("/logout", operation_id="logout", status_code=HTTP_200_OK, summary="Clear the session cookie")
    async def logout(self, request: Request[Any, Any, Any]) -> Response[Any]:
        access = _access(request.app.state)
        return Response(
            AuthStatusResponse(data=AuthStatus(auth_required=access.required, authenticated=False)),
            cookies=[Cookie(key=COOKIE, value="", path="/", httponly=True, samesite="strict", max_age=0)],
        )
