"""Finding 3: DNS rebinding and cross-site requests on the default no-token loopback server."""

from __future__ import annotations

import httpx
from pystrument_analysis.api.shield import HostPolicy, default_allowed_hosts, host_name

from .conftest import ThreadServer, new_project


def test_a_foreign_host_name_is_not_served(open_server: ThreadServer) -> None:
    key = new_project(open_server.url)
    rebound = httpx.get(open_server.url + "/api/v1/projects", headers={"Host": "attacker.example"}, timeout=10)
    assert rebound.status_code == 400, rebound.text
    assert key not in rebound.text
    assert rebound.json()["code"] == 40002 and "PYSTRUMENT_ALLOWED_HOSTS" in rebound.json()["msg"]
    for host in ("127.0.0.1", f"127.0.0.1:{open_server.port}", "localhost", f"localhost:{open_server.port}", "[::1]:1"):
        ok = httpx.get(open_server.url + "/api/v1/projects", headers={"Host": host}, timeout=10)
        assert ok.status_code == 200, (host, ok.text)
    assert httpx.get(open_server.url + "/", headers={"Host": "attacker.example"}, timeout=10).status_code == 400


def test_cross_site_posts_are_refused(open_server: ThreadServer) -> None:
    url = open_server.url
    evil = {"Origin": "http://evil.example"}
    as_text = {"Content-Type": "text/plain"}
    plain = httpx.post(url + "/api/v1/projects", content=b'{"name": "csrf"}', headers={**evil, **as_text}, timeout=10)
    assert plain.status_code == 403, plain.text
    form = httpx.post(url + "/api/v1/projects", data={"name": "csrf"}, timeout=10)  # no Origin: still not JSON
    assert form.status_code == 415 and form.json()["code"] == 41501, form.text
    text = httpx.post(url + "/api/v1/analysis/trigger", content=b'{"trace_id": "x"}', headers=as_text, timeout=10)
    assert text.status_code == 415, text.text
    json_cross = httpx.post(url + "/api/v1/projects", json={"name": "csrf"}, headers=evil, timeout=10)
    assert json_cross.status_code == 403 and json_cross.json()["code"] == 40301
    fetch_site = httpx.post(
        url + "/api/v1/projects", json={"name": "csrf"}, headers={"Sec-Fetch-Site": "cross-site"}, timeout=10
    )
    assert fetch_site.status_code == 403
    listed = httpx.get(url + "/api/v1/projects", timeout=10).json()["data"]
    assert listed["total"] == 0  # none of the above created a project
    same = httpx.post(url + "/api/v1/projects", json={"name": "ok"}, headers={"Origin": url}, timeout=10)
    assert same.status_code == 200, same.text  # the UI itself
    assert httpx.post(url + "/api/v1/projects", json={"name": "script"}, timeout=10).status_code == 200  # curl


def test_host_policy_defaults_and_patterns() -> None:
    assert default_allowed_hosts("127.0.0.1") == ("localhost", "127.0.0.1", "::1")
    assert default_allowed_hosts("0.0.0.0") == ("localhost", "127.0.0.1", "::1")
    assert default_allowed_hosts("10.0.0.5")[-1] == "10.0.0.5"
    policy = HostPolicy(["*.example.com", "pystrument"])
    assert policy.allows("a.example.com") and policy.allows("pystrument")
    assert not policy.allows("example.com") and not policy.allows("evil.com")
    assert HostPolicy(["*"]).allows("anything")
    assert host_name("[::1]:8000") == "::1" and host_name("Example.COM.:80") == "example.com"
