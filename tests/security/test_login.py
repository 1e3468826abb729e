"""Finding 10: login had no rate limit, took 16-character tokens, and its cookie was a fixed HMAC of the token
(the same for everyone, for ever: no logout, no revocation)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pystrument_analysis.api.access import ApiAccess

from .conftest import TOKEN, ThreadServer

COOKIE = "pystrument_token"


def test_short_tokens_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 24"):
        ApiAccess("0123456789abcdef")  # 16 characters
    ApiAccess("0123456789abcdef01234567")


def test_wrong_tokens_are_rate_limited(token_server: ThreadServer) -> None:
    with httpx.Client(base_url=token_server.url, timeout=10) as http:
        statuses = [http.post("/api/v1/auth/login", json={"token": f"wrong-{i:030d}"}).status_code for i in range(12)]
        assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429], statuses
        limited = http.post("/api/v1/auth/login", json={"token": TOKEN})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
        assert limited.json()["code"] == 42901 and "try again" in limited.json()["msg"]
        bearer = http.get("/api/v1/projects", headers={"Authorization": "Bearer wrong-token-000000000000000000000"})
        assert bearer.status_code == 429  # the API's bearer check counts too


def test_the_session_cookie_is_random_and_revocable(token_server: ThreadServer, settings: Any,
                                                    get_free_port: Any) -> None:  # fmt: skip
    with (
        httpx.Client(base_url=token_server.url, timeout=10) as one,
        httpx.Client(base_url=token_server.url, timeout=10) as two,
    ):
        assert one.post("/api/v1/auth/login", json={"token": TOKEN}).status_code == 200
        assert two.post("/api/v1/auth/login", json={"token": TOKEN}).status_code == 200
        first, second = one.cookies[COOKIE], two.cookies[COOKIE]
        assert first != second and TOKEN not in first
        assert one.get("/api/v1/projects").status_code == 200
        assert one.post("/api/v1/auth/logout").status_code == 200
        stolen = httpx.get(token_server.url + "/api/v1/projects", cookies={COOKIE: first}, timeout=10)
        assert stolen.status_code == 401  # revoked by the logout
        assert two.get("/api/v1/projects").status_code == 200  # other sessions live on
    # the same database, a new token: every older session is void
    with ThreadServer(settings, get_free_port(), token="another-token-0123456789abcdefghij") as rotated:
        r = httpx.get(rotated.url + "/api/v1/projects", cookies={COOKIE: second}, timeout=10)
        assert r.status_code == 401
