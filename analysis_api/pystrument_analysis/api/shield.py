"""What every request passes before routing: the Host allow-list, cross-site refusal and security headers.

- **Host allow-list** (against DNS rebinding: a page on ``attacker.example`` whose name now resolves to
  127.0.0.1 would otherwise be served the API). ``PYSTRUMENT_ALLOWED_HOSTS`` lists the names served
  (``*.example.com`` patterns, ``*`` for any); by default the loopback names (``localhost``, ``127.0.0.1``,
  ``::1``) and the address the server binds to, when it is a specific one. Anything else: 400.
- **Cross-site requests** on state-changing methods (POST, PUT, PATCH, DELETE): a browser ``Origin`` (or
  ``Sec-Fetch-Site: cross-site``) that is neither this server nor one of ``PYSTRUMENT_CORS_ORIGINS`` is 403;
  under ``/api/`` a body must be JSON (``application/json`` or ``application/*+json``), else 415, so a form or
  ``text/plain`` POST from another site never reaches a handler.
- **Security headers** on every answer: ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` and
  ``Referrer-Policy: same-origin`` (the UI's pages add their Content-Security-Policy in ``web``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
from litestar.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
)
ENV_HINT = "PYSTRUMENT_ALLOWED_HOSTS"


def default_allowed_hosts(bind_host: str) -> tuple[str, ...]:
    """The loopback names, plus ``bind_host`` when it is a specific address (not 0.0.0.0 or ::)."""
    name = _normal(bind_host)
    if bind_host.strip() in WILDCARD_BINDS or name in LOOPBACK_HOSTS:
        return LOOPBACK_HOSTS
    return (*LOOPBACK_HOSTS, name)


def _normal(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def host_name(header: str) -> str:
    """The name of a ``Host`` header without its port: ``[::1]:8000`` -> ``::1``, ``a.b:80`` -> ``a.b``."""
    value = header.strip()
    if value.startswith("["):
        return _normal(value[1 : value.find("]")] if "]" in value else value[1:])
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return _normal(value)


class HostPolicy:
    """Which Host names are served: exact names, ``*.suffix`` patterns, or ``*`` (any)."""

    def __init__(self, allowed: Iterable[str]) -> None:
        names = [h.strip().lower() if h.strip().startswith("*") else _normal(h) for h in allowed if h.strip()]
        self.any = "*" in names
        self.exact = frozenset(n for n in names if not n.startswith("*"))
        self.suffixes = tuple(n[1:] for n in names if n.startswith("*."))
        self.description = ", ".join(names)

    def allows(self, name: str) -> bool:
        if self.any or name in self.exact:
            return True
        return any(name.endswith(s) and len(name) > len(s) for s in self.suffixes)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _origin_netloc(origin: str) -> str | None:
    scheme, sep, rest = origin.partition("://")
    if not sep or scheme not in ("http", "https"):
        return None
    return rest.split("/", 1)[0].lower()


class Shield:
    """The checks, given the allowed hosts and the cross-origin sites the server trusts (its CORS origins)."""

    def __init__(self, allowed_hosts: Iterable[str], trusted_origins: Iterable[str] = ()) -> None:
        self.hosts = HostPolicy(allowed_hosts)
        self.trusted_origins = frozenset(o.strip().rstrip("/").lower() for o in trusted_origins if o.strip())

    def refusal(self, scope: Scope) -> tuple[int, int, str] | None:
        """``(HTTP status, envelope code, message)`` when the request must not be served, else None."""
        headers: dict[bytes, bytes] = {}
        for k, v in scope.get("headers", ()):
            headers.setdefault(k, v)
        host = headers.get(b"host", b"").decode("latin-1")
        name = host_name(host)
        if not self.hosts.allows(name):
            return (
                400,
                40002,
                f"Host {host!r} is not served here (allowed: {self.hosts.description}); "
                f"add the name to {ENV_HINT} to serve it",
            )
        method = str(scope.get("method", "GET")).upper()
        if method not in STATE_CHANGING:
            return None
        origin = headers.get(b"origin", b"").decode("latin-1").strip()
        site = headers.get(b"sec-fetch-site", b"").decode("latin-1").strip().lower()
        if origin or site == "cross-site":
            trusted = origin.rstrip("/").lower() in self.trusted_origins
            same = origin and _origin_netloc(origin) == host.strip().lower()
            if not (trusted or same) or (site == "cross-site" and not trusted):
                return 403, 40301, f"cross-site request refused: Origin {origin or '(none)'!r} is not this server"
        path: str = scope.get("path", "")
        if path.startswith("/api/"):
            content_type = headers.get(b"content-type", b"").decode("latin-1")
            length = headers.get(b"content-length", b"0").strip()
            has_body = length not in (b"", b"0") or b"transfer-encoding" in headers
            if (content_type or has_body) and not _is_json(content_type):
                return 415, 41501, f"unsupported Content-Type {content_type or '(none)'!r}: send application/json"
        return None


def shield_middleware(shield: Shield) -> Any:
    """The ASGI middleware factory Litestar takes in ``middleware=[...]``."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            refused = shield.refusal(scope)
            if refused is not None:
                status, code, msg = refused
                body = msgspec.json.encode({"code": code, "msg": msg, "data": None})
                plain: Any = send  # plain ASGI messages
                await plain(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"),
                            *SECURITY_HEADERS,
                        ],
                    }
                )
                await plain({"type": "http.response.body", "body": body})
                return

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), *SECURITY_HEADERS]
                await send(message)

            await app(scope, receive, send_with_headers)

        return middleware

    return wrap
