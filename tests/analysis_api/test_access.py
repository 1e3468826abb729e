"""Access: the API token (bearer, login cookie, ?token= link), loopback-only serving, and project isolation."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pystrument_analysis.api.access import check_exposure, insecure_from_env, is_loopback

TOKEN = "s3cret-token-for-tests-0123456789"
SEED_REPORT = {
    "trace_id": "trace_access_1",
    "request_info": {"method": "GET", "path": "/x", "status_code": 200},
    "performance_metrics": {"total_duration": 0.1},
    "function_calls": [{"function": "f", "duration": 0.05}],
}


class TokenServer:
    """The real app with ``api_token`` under uvicorn on a free loopback port."""

    def __init__(self, settings: Any, token: str | None, port: int) -> None:
        import uvicorn
        from pystrument_analysis.app import create_app

        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings, api_token=token), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> TokenServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not become healthy")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def secured(settings: Any, get_free_port: Any) -> Iterator[TokenServer]:
    with TokenServer(settings, TOKEN, get_free_port()) as server:
        yield server


def assert_401(r: httpx.Response) -> None:
    assert r.status_code == 401, r.text
    body = r.json()
    assert body["code"] == 40101 and body["data"] is None
    assert "Authorization: Bearer" in body["msg"] and "/api/v1/auth/login" in body["msg"]
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_token_guards_the_api_but_not_ingest_ui_schema_or_health(secured: TokenServer) -> None:
    with httpx.Client(base_url=secured.url, timeout=10) as http:
        assert_401(http.get("/api/v1/projects"))
        assert_401(http.post("/api/v1/projects", json={"name": "x"}))
        assert_401(http.get("/api/v1/projects", headers={"Authorization": "Bearer wrong-token-0123456789"}))
        assert_401(http.get("/api/v1/performance/records", params={"project_key": "proj_x"}))
        assert_401(http.get("/api/v1/analysis/results"))
        auth = {"Authorization": f"Bearer {TOKEN}"}
        created = http.post("/api/v1/projects", json={"name": "shop"}, headers=auth)
        assert created.status_code == 200, created.text
        key = created.json()["data"]["project_key"]
        assert http.get("/api/v1/projects", headers={"authorization": f"bearer {TOKEN}"}).status_code == 200

        collected = http.post("/api/v1/performance/collect", json=SEED_REPORT, headers={"X-Project-Key": key})
        assert collected.status_code == 200, collected.text  # the project key authenticates ingest
        assert http.post("/v1/traces", content=b"", headers={"X-Project-Key": key}).status_code != 401
        assert http.get("/health").status_code == 200
        assert http.get("/schema/openapi.json").status_code == 200
        assert http.get("/").status_code == 200  # the UI's files are public; the UI logs in
        records = http.get("/api/v1/performance/records", params={"project_key": key}, headers=auth).json()
        assert records["data"]["total"] == 1


def test_login_cookie_and_token_link(secured: TokenServer) -> None:
    with httpx.Client(base_url=secured.url, timeout=10) as http:
        status = http.get("/api/v1/auth/status").json()["data"]
        assert status == {"auth_required": True, "authenticated": False}
        wrong = http.post("/api/v1/auth/login", json={"token": "nope"})
        assert wrong.status_code == 401 and wrong.json()["code"] == 40101 and "wrong API token" in wrong.json()["msg"]
        assert "pystrument_token" not in http.cookies

        ok = http.post("/api/v1/auth/login", json={"token": TOKEN})
        assert ok.status_code == 200 and ok.json()["data"]["authenticated"] is True
        set_cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie and "Path=/" in set_cookie
        assert TOKEN not in set_cookie  # the cookie holds an HMAC of the token
        assert http.get("/api/v1/projects").status_code == 200
        assert http.get("/api/v1/auth/status").json()["data"]["authenticated"] is True

        http.post("/api/v1/auth/logout")
        assert_401(http.get("/api/v1/projects"))
        assert_401(http.get("/api/v1/projects", cookies={"pystrument_token": "forged"}))

    with httpx.Client(base_url=secured.url, timeout=10, follow_redirects=False) as http:
        link = http.get("/projects", params={"token": TOKEN, "tab": "all"})
        assert link.status_code == 303 and link.headers["location"] == "/projects?tab=all"
        assert "pystrument_token" in http.cookies
        assert http.get("/api/v1/projects").status_code == 200
    with httpx.Client(base_url=secured.url, timeout=10, follow_redirects=False) as http:
        assert http.get("/projects", params={"token": "wrong"}).status_code == 200  # just the page, no cookie
        assert "pystrument_token" not in http.cookies
        assert_401(http.get("/api/v1/projects", params={"token": TOKEN}))  # never in API URLs


async def test_open_api_without_token(client: Any) -> None:
    status = (await client.get("/api/v1/auth/status")).json()["data"]
    assert status == {"auth_required": False, "authenticated": True}
    assert (await client.get("/api/v1/projects")).status_code == 200
    login = await client.post("/api/v1/auth/login", json={"token": "anything"})
    assert login.status_code == 200 and "set-cookie" not in login.headers


def test_serve_refuses_public_bind_without_token(monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Any) -> None:
    from pystrument_analysis.cli import main

    monkeypatch.delenv("PYSTRUMENT_API_TOKEN", raising=False)
    monkeypatch.delenv("PYSTRUMENT_INSECURE", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)]) == 2
    message = capsys.readouterr().err
    assert "refusing to serve on 0.0.0.0" in message
    assert "PYSTRUMENT_API_TOKEN" in message and "--insecure" in message and "PYSTRUMENT_INSECURE=1" in message
    monkeypatch.setenv("PYSTRUMENT_INSECURE", "maybe")
    assert main(["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)]) == 2
    assert "PYSTRUMENT_INSECURE" in capsys.readouterr().err
    monkeypatch.setenv("PYSTRUMENT_INSECURE", "0")
    monkeypatch.setenv("PYSTRUMENT_API_TOKEN", "short")
    assert main(["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)]) == 2
    assert "at least 24" in capsys.readouterr().err


def test_exposure_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    for host in ("127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
        check_exposure(host, None, False)
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com", ""):
        assert not is_loopback(host), host
        with pytest.raises(ValueError, match="--insecure"):
            check_exposure(host, None, False)
        check_exposure(host, TOKEN, False)
        check_exposure(host, None, True)
    for value, expected in (("1", True), ("true", True), ("YES", True), ("", False), ("off", False)):
        monkeypatch.setenv("PYSTRUMENT_INSECURE", value)
        assert insecure_from_env() is expected


def test_bad_token_is_a_configuration_error(settings: Any) -> None:
    from pystrument_analysis.app import create_app

    with pytest.raises(ValueError, match=r"secrets\.token_urlsafe"):
        create_app(settings, api_token="too short")


async def test_a_project_key_never_reads_another_projects_data(client: Any, perf: Any, t: Any) -> None:
    """Same trace ids in two projects: every read through one key shows only that project's rows."""
    mine = await perf.project("mine")
    theirs = await perf.project("theirs")
    shared = "ab" * 16
    for project, name, duration in ((mine, "mine.handler", 0.2), (theirs, "theirs.secret", 0.9)):
        root = await perf.request(project, shared, start=t(10), duration=duration, route="/r", path="/r")
        await perf.span(
            project, shared, name, t(10), duration, parent=root, synthetic=True,
            attributes={"code.function.name": name, "pystrument.self_time_ms": 100},
        )  # fmt: skip
    await perf.request(theirs, "cd" * 16, start=t(20), duration=3.0, route="/r", path="/r")
    key = mine.project_key
    window = {"start": "2024-08-24T10:00:00Z", "end": "2024-08-24T11:00:00Z"}

    async def data(path: str, **params: Any) -> Any:
        r = await client.get(path, params={"project_key": key, **params})
        assert r.status_code == 200, r.text
        return r.json()["data"]

    listed = await data("/api/v1/performance/records")
    assert [(x["trace_id"], x["duration"]) for x in listed["records"]] == [(shared, 0.2)] and listed["total"] == 1
    detail = await data(f"/api/v1/performance/records/{shared}")
    assert {s["name"] for s in detail["spans"]} == {"GET /r", "mine.handler"}
    missing = await client.get(f"/api/v1/performance/records/{'cd' * 16}", params={"project_key": key})
    assert missing.status_code == 404
    exported = await client.get(f"/api/v1/performance/records/{shared}/speedscope", params={"project_key": key})
    assert "theirs.secret" not in exported.text and "mine.handler" in exported.text
    speed_missing = await client.get(f"/api/v1/performance/records/{'cd' * 16}/speedscope", params={"project_key": key})
    assert speed_missing.status_code == 404
    for mode in ("exact", "rollup"):
        report = await data("/api/v1/performance/stats", mode=mode, **window)
        assert report["summary"]["count"] == 1 and report["summary"]["max"] == pytest.approx(0.2)
    functions = await data("/api/v1/performance/functions", **window)
    assert [f["name"] for f in functions["functions"]] == ["mine.handler"]
    diff = await data("/api/v1/performance/routes/differential", route="/r", **window)
    assert {f["name"] for f in diff["functions"]} == {"mine.handler"} and diff["request_count"] == 1

    trigger = await client.post(
        "/api/v1/analysis/trigger", json={"trace_id": shared, "project_key": theirs.project_key}
    )
    assert trigger.status_code == 200, trigger.text
    assert (await data("/api/v1/analysis/results"))["analyses"] == []
    theirs_list = await client.get("/api/v1/analysis/results", params={"project_key": theirs.project_key})
    assert len(theirs_list.json()["data"]["analyses"]) == 1
