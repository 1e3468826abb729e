"""Who may use the REST API: an optional API token, and loopback-only serving without one.

With ``PYSTRUMENT_API_TOKEN`` set, every ``/api/`` request needs it, as ``Authorization: Bearer <token>`` or as
the ``pystrument_token`` session cookie, except the seed's ingest ``POST /api/v1/performance/collect``
(authenticated by ``X-Project-Key``, like OTLP at ``/v1/traces``) and ``/api/v1/auth/*``. The cookie is set by
``POST /api/v1/auth/login`` or by opening any UI page once with ``?token=<token>``; it holds a random session id
(never the token) kept in the ``api_sessions`` table, so ``logout`` revokes it for every server within
``SESSION_CACHE_SECONDS``, and a new API token voids every older session. It is HttpOnly and SameSite=Strict
(so other sites cannot ride on it). Wrong tokens are rate-limited per client address (``LoginLimiter``: 429
with Retry-After). UI files, ``/schema`` and ``/health`` stay public. Without a token the server only binds to
loopback unless told ``--insecure`` / ``PYSTRUMENT_INSECURE=1``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import time
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
from sqlalchemy import text

from pystrument_analysis.api.errors import TooManyRequests, Unauthorized

ENV_API_TOKEN = "PYSTRUMENT_API_TOKEN"
ENV_INSECURE = "PYSTRUMENT_INSECURE"
COOKIE = "pystrument_token"
MIN_TOKEN_LENGTH = 24
SESSION_CACHE_SECONDS = 5.0  # a revoked session may still pass on another server for this long
COOKIE_MAX_AGE = 30 * 24 * 3600
OPEN_API_PATHS = frozenset({("POST", "/api/v1/performance/collect")})
OPEN_API_PREFIX = "/api/v1/auth/"
SECURITY_SCHEMES = ("apiToken", "apiCookie")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}
NOT_UI_PREFIXES = frozenset({"api", "v1", "schema", "health"})
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


class LoginLimiter:
    """Wrong tokens per client address: at most ``max_failures`` in ``window`` seconds (and ``max_total`` from
    everyone, against many addresses), then 429 until the oldest failure leaves the window."""

    def __init__(self, max_failures: int = 10, window: float = 60.0, max_total: int = 100) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_total = max_total
        self._failures: dict[str, list[float]] = {}
        self._all: list[float] = []

    def _recent(self, times: list[float], now: float) -> list[float]:
        while times and times[0] <= now - self.window:
            times.pop(0)
        return times

    def retry_after(self, client: str) -> int:
        """Seconds to wait before this client may try again; 0: go ahead."""
        now = time.monotonic()
        mine = self._recent(self._failures.get(client, []), now)
        everyone = self._recent(self._all, now)
        waits = []
        if len(mine) >= self.max_failures:
            waits.append(mine[0] + self.window - now)
        if len(everyone) >= self.max_total:
            waits.append(everyone[0] + self.window - now)
        return max(1, int(max(waits)) + 1) if waits else 0

    def failed(self, client: str) -> None:
        now = time.monotonic()
        if client not in self._failures and len(self._failures) >= 10_000:
            self._failures.clear()  # bounded memory; the global cap still holds
        self._failures.setdefault(client, []).append(now)
        self._all.append(now)
        del self._failures[client][: -self.max_failures]
        del self._all[: -self.max_total]

    def check(self, client: str) -> None:
        wait = self.retry_after(client)
        if wait:
            raise TooManyRequests(f"too many wrong API tokens from {client}; try again in {wait} s", wait)


def _client(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    return connection.client.host if connection.client else "unknown"


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class ApiAccess:
    """The configured token (or None: the API is open), its login sessions, and the checks made with them."""

    def __init__(self, token: str | None) -> None:
        if token is not None:
            validate_token(token)
        self.token = token
        # Sessions are granted under this fingerprint: another token (a rotation) voids them all.
        self.fingerprint = hmac.new(token.encode(), b"pystrument-session", hashlib.sha256).hexdigest() if token else ""
        self.limiter = LoginLimiter()
        self._valid: dict[str, float] = {}  # session id hash -> valid until (monotonic), a short cache

    @property
    def required(self) -> bool:
        return self.token is not None

    def matches(self, candidate: str) -> bool:
        return self.token is not None and hmac.compare_digest(candidate.encode(), self.token.encode())

    def presented(self, connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
        """Whether the request carries any credential (a bearer header or the session cookie)."""
        return bool(connection.headers.get("authorization") or connection.cookies.get(COOKIE))

    async def allows(self, connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
        """Whether the request carries the token (bearer header) or a live session cookie."""
        if self.token is None:
            return True
        scheme, _, credentials = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.matches(credentials.strip()):
            return True
        cookie = connection.cookies.get(COOKIE, "")
        if not cookie or len(cookie) > 128:
            return False
        key = _hash(cookie)
        now = time.monotonic()
        if self._valid.get(key, 0.0) > now:
            return True
        db = connection.app.state.get("db")
        if db is None:
            return False
        async with db.session() as session:
            found = await session.scalar(
                text("SELECT 1 FROM api_sessions WHERE id_hash = :h AND token_fingerprint = :f AND expires_at > now()"),
                {"h": key, "f": self.fingerprint},
            )
        if not found:
            self._valid.pop(key, None)
            return False
        if len(self._valid) >= 10_000:
            self._valid.clear()
        self._valid[key] = now + SESSION_CACHE_SECONDS
        return True

    async def open_session(self, db: Any) -> str:
        """A new session id (stored hashed), valid for ``COOKIE_MAX_AGE``; expired sessions are swept here."""
        session_id = secrets.token_urlsafe(32)
        async with db.session() as session:
            await session.execute(text("DELETE FROM api_sessions WHERE expires_at < now()"))
            await session.execute(
                text(
                    "INSERT INTO api_sessions (id_hash, token_fingerprint, expires_at) "
                    "VALUES (:h, :f, now() + make_interval(secs => :age))"
                ),
                {"h": _hash(session_id), "f": self.fingerprint, "age": COOKIE_MAX_AGE},
            )
        return session_id

    async def close_session(self, db: Any, session_id: str) -> None:
        """Revoke a session (logout): gone for this server at once, for others within SESSION_CACHE_SECONDS."""
        if not session_id or len(session_id) > 128:
            return
        key = _hash(session_id)
        self._valid.pop(key, None)
        if db is not None:
            async with db.session() as session:
                await session.execute(text("DELETE FROM api_sessions WHERE id_hash = :h"), {"h": key})

    def cookie(self, value: str, secure: bool) -> Cookie:
        return Cookie(
            key=COOKIE,
            value=value,
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
    if not await access.allows(connection):
        if access.presented(connection):  # a wrong token or a dead cookie: counts against the client
            access.limiter.check(_client(connection))
            access.limiter.failed(_client(connection))
        raise NotAuthorizedException(
            detail=f"missing or invalid API token: send 'Authorization: Bearer <{ENV_API_TOKEN}>' "
            "or log in with POST /api/v1/auth/login",
            headers={"WWW-Authenticate": 'Bearer realm="pystrument"'},
        )


async def token_link(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """``GET /any/ui/page?token=<token>`` sets the login cookie and redirects to the page without the token."""
    if request.method != "GET" or "token" not in request.query_params:
        return None
    if request.url.path.lstrip("/").split("/", 1)[0] in NOT_UI_PREFIXES:  # only UI pages take the link
        return None
    access = _access(request.app.state)
    if not access.required:
        return None
    if access.limiter.retry_after(_client(request)):
        return None  # rate-limited: just the page
    if not access.matches(str(request.query_params.get("token", ""))):
        access.limiter.failed(_client(request))
        return None
    rest = {k: v for k, v in request.query_params.dict().items() if k != "token"}
    session_id = await access.open_session(request.app.state.db)
    return Redirect(
        request.url.path,
        query_params=rest or None,
        status_code=303,
        cookies=[access.cookie(session_id, secure=request.url.scheme == "https")],
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
        authenticated = await access.allows(request)
        return AuthStatusResponse(data=AuthStatus(auth_required=access.required, authenticated=authenticated))

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
        client = _client(request)
        access.limiter.check(client)
        if not access.matches(data.token):
            access.limiter.failed(client)
            raise Unauthorized("wrong API token")
        session_id = await access.open_session(request.app.state.db)
        return Response(
            AuthStatusResponse(data=AuthStatus(auth_required=True, authenticated=True)),
            cookies=[access.cookie(session_id, secure=request.url.scheme == "https")],
        )

    @post("/logout", operation_id="logout", status_code=HTTP_200_OK, summary="Clear the session cookie")
    async def logout(self, request: Request[Any, Any, Any]) -> Response[Any]:
        access = _access(request.app.state)
        await access.close_session(request.app.state.get("db"), request.cookies.get(COOKIE, ""))
        return Response(
            AuthStatusResponse(data=AuthStatus(auth_required=access.required, authenticated=False)),
            cookies=[Cookie(key=COOKIE, value="", path="/", httponly=True, samesite="strict", max_age=0)],
        )
