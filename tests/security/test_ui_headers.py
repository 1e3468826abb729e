"""Finding 11: the UI sent no CSP, X-Frame-Options or nosniff, and ``charset=utf-8; charset=utf-8``."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest

SCRIPT = "console.log('boot')"
PAGE = f"<!doctype html><html><head><script>{SCRIPT}</script><script src='/_app/a.js'></script></head></html>"


@pytest.fixture
async def ui_client(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from litestar.testing import AsyncTestClient
    from pystrument_analysis.app import create_app

    web = tmp_path / "web"
    (web / "_app").mkdir(parents=True)
    (web / "index.html").write_text(PAGE)
    (web / "_app" / "a.js").write_text("export {}")
    monkeypatch.setenv("PYSTRUMENT_WEB_DIR", str(web))
    async with AsyncTestClient(app=create_app(settings), base_url="http://localhost") as c:
        yield c


async def test_ui_security_headers(ui_client: Any) -> None:
    for path in ("/", "/projects/x", "/_app/a.js"):
        r = await ui_client.get(path)
        assert r.status_code == 200, (path, r.text)
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["content-type"].count("charset") == 1, r.headers["content-type"]
    page = await ui_client.get("/projects/x")
    csp = page.headers["content-security-policy"]
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";", 1)[0]
    api = await ui_client.get("/api/v1/projects")
    assert api.headers["x-content-type-options"] == "nosniff" and api.headers["content-type"] == "application/json"
