"""The UI's static files at ``/``: content types, SPA fallback, no shadowing of the API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

INDEX = "<!doctype html><html><body>pystrument index</body></html>"


async def app_client(settings: Any) -> AsyncIterator[Any]:
    from litestar.testing import AsyncTestClient
    from pystrument_analysis.app import create_app

    async with AsyncTestClient(app=create_app(settings), base_url="http://localhost") as c:
        yield c


@pytest.fixture
def built_ui(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "web_dist"
    (root / "_app" / "immutable" / "chunks").mkdir(parents=True)
    (root / "index.html").write_text(INDEX)
    (root / "about.html").write_text("<p>prerendered about</p>")
    (root / "_app" / "immutable" / "chunks" / "app.abc123.js").write_text("export const x = 1;")
    (root / "_app" / "immutable" / "style.css").write_text("body{}")
    (root / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (root / "_app" / "version.json").write_text('{"version":"1"}')
    (tmp_path / "secret.txt").write_text("outside")
    monkeypatch.setenv("PYSTRUMENT_WEB_DIR", str(root))
    return root


@pytest.fixture
async def ui_client(built_ui: Path, settings: Any) -> AsyncIterator[Any]:
    async for c in app_client(settings):
        yield c


async def test_serves_files_with_content_types(ui_client: Any) -> None:
    r = await ui_client.get("/")
    assert r.status_code == 200 and r.text == INDEX
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-cache"
    assert "attachment" not in r.headers.get("content-disposition", "")

    js = await ui_client.get("/_app/immutable/chunks/app.abc123.js")
    assert js.status_code == 200 and js.text == "export const x = 1;"
    assert js.headers["content-type"].startswith("text/javascript")
    assert "immutable" in js.headers["cache-control"]
    css = await ui_client.get("/_app/immutable/style.css")
    assert css.headers["content-type"].startswith("text/css")
    svg = await ui_client.get("/favicon.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    version = await ui_client.get("/_app/version.json")
    assert version.json() == {"version": "1"} and version.headers["cache-control"] == "no-cache"
    about = await ui_client.get("/about")
    assert about.status_code == 200 and about.text == "<p>prerendered about</p>"


async def test_spa_fallback_and_missing_assets(ui_client: Any) -> None:
    for path in ("/projects", "/projects/proj_abc/records/0af7651916cd43dd8448eb211c80319c", "/x/y/"):
        r = await ui_client.get(path)
        assert r.status_code == 200 and r.text == INDEX, path
        assert r.headers["content-type"].startswith("text/html")
    assert (await ui_client.get("/_app/immutable/chunks/missing.js")).status_code == 404
    assert (await ui_client.get("/../secret.txt")).text != "outside"
    assert (await ui_client.get("/%2e%2e/secret.txt")).status_code == 404


async def test_does_not_shadow_api_schema_health(ui_client: Any) -> None:
    health = await ui_client.get("/health")
    assert health.json() == {"status": "ok"}
    projects = await ui_client.get("/api/v1/projects")
    assert projects.json()["code"] == 0
    schema = await ui_client.get("/schema/openapi.json")
    assert schema.status_code == 200 and "/api/v1/projects" in schema.json()["paths"]
    missing = await ui_client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["code"] == 40401
    for path in ("/v1/nothing", "/schema/nothing-here", "/health/x"):
        r = await ui_client.get(path)
        assert r.status_code == 404, path
        assert INDEX not in r.text


async def test_prefers_200_html_fallback(built_ui: Path, settings: Any) -> None:
    (built_ui / "200.html").write_text("<p>spa shell</p>")
    async for c in app_client(settings):
        assert (await c.get("/deep/link")).text == "<p>spa shell</p>"
        assert (await c.get("/")).text == INDEX


async def test_ui_not_built_page(tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYSTRUMENT_WEB_DIR", str(tmp_path / "nowhere"))
    async for c in app_client(settings):
        for path in ("/", "/projects"):
            r = await c.get(path)
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/html")
            assert "UI not built: run nox -s web" in r.text
        assert (await c.get("/api/v1/projects")).json()["code"] == 0
