"""The aggregated flame graph (``/flame``) and the function view (``/function``) on planted traces."""

from __future__ import annotations

from typing import Any

import pytest

WINDOW = {"start": "2024-08-24T10:00:00Z", "end": "2024-08-24T11:00:00Z"}
FN = {"code.file.path": "/app/shop.py"}


async def plant(perf: Any, t: Any, project: Any, prefix: str = "aa", *, requests: int = 10, slow: float = 0.06) -> None:
    """``requests`` requests to /checkout (service shop), one a minute, each:

    checkout (100 ms + slow) -> load_cart (20 ms), recalculate (``slow``) -> tax x3 (5 ms each), walk -> walk
    (recursion); a DB span parented to the request; one other-service span that must not be merged.
    """
    for i in range(requests):
        trace = f"{prefix}{i:030x}"
        start = t(i * 60)
        duration = 0.1 + slow
        root = await perf.request(
            project, trace, start=start, duration=duration, route="/checkout", path="/checkout", service="shop"
        )

        async def fn(name: str, at: float, dur: float, parent: str, own: float, trace: str = trace, i: int = i) -> str:
            return str(
                await perf.span(
                    project, trace, name, t(i * 60 + at), dur, parent=parent, synthetic=True, service="shop",
                    attributes={**FN, "code.function.name": name, "pystrument.self_time_ms": own},
                )
            )  # fmt: skip

        view = await fn("app.views.checkout", 0.001, duration - 0.002, root, 10)
        await fn("app.db.load_cart", 0.002, 0.02, view, 20)
        recalc = await fn("app.pricing.recalculate", 0.03, slow, view, slow * 1000 - 15)
        for k in range(3):
            await fn("app.pricing.tax", 0.031 + k * 0.005, 0.005, recalc, 5)
        walk = await fn("app.tree.walk", 0.03 + slow, 0.02, view, 10)
        await fn("app.tree.walk", 0.031 + slow, 0.01, walk, 10)
        await perf.span(project, trace, "SELECT cart", t(i * 60 + 0.003), 0.01, parent=root, kind="CLIENT")
        await perf.span(
            project, trace, "other.service.fn", t(i * 60 + 0.01), 0.05, parent=root, synthetic=True,
            service="backend", attributes={"code.function.name": "other.service.fn"},
        )  # fmt: skip


async def get(client: Any, path: str, key: str, **params: Any) -> Any:
    return await client.get(f"/api/v1/performance/{path}", params={"project_key": key, **params})


async def flame(client: Any, key: str, **params: Any) -> dict[str, Any]:
    r = await get(client, "flame", key, **params)
    assert r.status_code == 200, r.text
    assert r.json()["code"] == 0
    return dict(r.json()["data"])


def paths(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The tree as {"a;b;c": {total, self_time, calls, requests}} (root = "")."""
    nodes, names = data["nodes"], [f["name"] for f in data["functions"]]
    out: dict[str, dict[str, Any]] = {}
    keys: list[str] = []
    for i, parent in enumerate(nodes["parent"]):
        assert parent < i, "pre-order: a parent comes before its children"
        key = "" if parent < 0 else (keys[parent] + ";" if keys[parent] else "") + names[nodes["function"][i]]
        keys.append(key)
        out[key] = {c: nodes[c][i] for c in ("total", "self_time", "calls", "requests")}
    return out


async def test_route_flame_merges_every_request_by_call_path(client: Any, perf: Any, t: Any) -> None:
    project = await perf.project("shop")
    other = await perf.project("other")
    await plant(perf, t, project)
    await plant(perf, t, other, slow=0.5)  # same trace ids in another project: never merged

    data = await flame(client, project.project_key, route="/checkout", **WINDOW)
    assert (data["request_count"], data["sampled"], data["profiled"]) == (10, 10, 10)
    assert data["request_time"] == pytest.approx(10 * 0.16)
    tree = paths(data)
    assert tree[""]["calls"] == 10 and tree[""]["total"] == pytest.approx(1.6)
    view = tree["app.views.checkout"]
    assert view["calls"] == 10 and view["total"] == pytest.approx(10 * 0.158)
    recalc = tree["app.views.checkout;app.pricing.recalculate"]
    assert recalc["total"] == pytest.approx(0.6) and recalc["self_time"] == pytest.approx(0.45)
    tax = tree["app.views.checkout;app.pricing.recalculate;app.pricing.tax"]
    assert (tax["calls"], tax["requests"]) == (30, 10) and tax["total"] == pytest.approx(0.15)
    assert tree["app.views.checkout;app.tree.walk;app.tree.walk"]["calls"] == 10  # recursion nests by path
    assert not any("other.service.fn" in k for k in tree)  # the other service's spans in the same traces
    assert not any("SELECT" in k for k in tree)  # only function spans
    # Pre-order with the widest child first.
    order = [k for k in tree if k.count(";") == 1]
    assert order[0] == "app.views.checkout;app.pricing.recalculate"
    assert {f["file"] for f in data["functions"]} == {"/app/shop.py"}


async def test_flame_of_one_trace_and_of_a_service(client: Any, perf: Any, t: Any) -> None:
    project = await perf.project("shop")
    await plant(perf, t, project, requests=3)
    one = await flame(client, project.project_key, trace_id="aa" + f"{1:030x}")
    assert one["profiled"] == 1 and one["start"] is None
    assert paths(one)["app.views.checkout;app.pricing.recalculate;app.pricing.tax"]["calls"] == 3

    by_service = await flame(client, project.project_key, service="shop", **WINDOW)
    assert by_service["profiled"] == 3
    assert by_service["service"] == "shop"
    assert await flame(client, project.project_key, service="nobody", **WINDOW) == {
        **by_service, "service": "nobody", "request_count": 0, "sampled": 0, "stride": 1, "profiled": 0,
        "request_time": 0.0,
        "span_count": 0, "functions": [],
        "nodes": {"parent": [-1], "function": [-1], "total": [0.0], "self_time": [0.0], "calls": [0], "requests": [0]},
    }  # fmt: skip


async def test_flame_limit_reads_the_newest_and_says_so(client: Any, perf: Any, t: Any) -> None:
    project = await perf.project("shop")
    await plant(perf, t, project, requests=6)
    data = await flame(client, project.project_key, route="/checkout", limit=4, **WINDOW)
    assert (data["request_count"], data["sampled"], data["profiled"]) == (6, 4, 4)
    spread = await flame(client, project.project_key, route="/checkout", sample=2, **WINDOW)
    assert (spread["request_count"], spread["sampled"], spread["stride"], spread["profiled"]) == (6, 2, 3, 2)
    assert spread["request_time"] == pytest.approx(2 * 0.16)
    assert (await flame(client, project.project_key, route="/checkout", sample=6, **WINDOW))["stride"] == 1
    small = await flame(client, project.project_key, route="/checkout", max_nodes=4, **WINDOW)
    assert (len(small["nodes"]["parent"]), small["dropped_nodes"]) == (4, 3)  # the 3 narrowest of 7 paths
    assert set(paths(small)) >= {"", "app.views.checkout", "app.views.checkout;app.pricing.recalculate"}


@pytest.mark.parametrize(
    ("params", "status", "needle"),
    [
        ({"start": "2024-08-24T11:00:00Z", "end": "2024-08-24T10:00:00Z"}, 400, "start must be before end"),
        ({"start": "2020-01-01T00:00:00Z", "end": "2024-08-24T10:00:00Z"}, 400, "at most 400 days"),
        ({"limit": 0}, 400, "limit"),
        ({"limit": 50_001}, 400, "limit"),
        ({"sample": 0}, 400, "sample"),
        ({"max_nodes": 1}, 400, "max_nodes"),
        ({"trace_id": "not-hex!"}, 400, "trace_id must be up to 32 hex digits"),
        ({"trace_id": "ab" * 16}, 404, "trace not found"),
        ({"method": "G E T"}, 400, "method"),
    ],
)
async def test_flame_bad_input(client: Any, perf: Any, params: dict[str, Any], status: int, needle: str) -> None:
    project = await perf.project("shop")
    r = await get(client, "flame", project.project_key, **params)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == status * 100 + 1 and needle in body["msg"], body


async def test_flame_unknown_or_missing_project(client: Any) -> None:
    r = await client.get("/api/v1/performance/flame", params={"project_key": "proj_nope"})
    assert r.status_code == 404 and "project not found" in r.json()["msg"]
    r = await client.get("/api/v1/performance/flame")
    assert r.status_code == 400 and "project_key" in r.json()["msg"]


async def test_function_view_callers_callees_series_and_traces(client: Any, perf: Any, t: Any) -> None:
    project = await perf.project("shop")
    await plant(perf, t, project, requests=5)
    await plant(perf, t, project, "bb", requests=5, slow=0.3)  # five slower requests
    r = await get(
        client, "function", project.project_key, name="app.pricing.recalculate", file="/app/shop.py", **WINDOW
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert (data["traces_found"], data["traces_read"], data["calls"]) == (10, 10, 10)
    assert data["total"] == pytest.approx(5 * 0.06 + 5 * 0.3)
    assert data["request_time"] == pytest.approx(5 * 0.16 + 5 * 0.4)
    assert data["share"] == pytest.approx(data["total"] / data["request_time"])
    assert [c["name"] for c in data["callers"]] == ["app.views.checkout"]
    assert [(c["name"], c["calls"]) for c in data["callees"]] == [("app.pricing.tax", 30)]
    assert sum(p["calls"] for p in data["timeseries"]) == 10
    assert all(0 < p["share"] <= 1 for p in data["timeseries"])
    slowest = data["traces"]
    assert [x["trace_id"][:2] for x in slowest[:5]] == ["bb"] * 5  # slowest first
    assert slowest[0]["duration"] == pytest.approx(0.4) and slowest[0]["function_time"] == pytest.approx(0.3)
    assert slowest[0]["route"] == "/checkout" and slowest[0]["calls"] == 1


async def test_function_view_recursion_counts_outermost_time(client: Any, perf: Any, t: Any) -> None:
    project = await perf.project("shop")
    await plant(perf, t, project, requests=2)
    r = await get(client, "function", project.project_key, name="app.tree.walk", **WINDOW)
    data = r.json()["data"]
    assert data["calls"] == 4 and data["total"] == pytest.approx(2 * 0.02)  # the inner call is inside the outer
    assert {c["name"] for c in data["callers"]} == {"app.views.checkout", "app.tree.walk"}
    r = await get(client, "function", project.project_key, name="app.views.checkout", **WINDOW)
    assert [c["name"] for c in r.json()["data"]["callers"]] == ["(request)"]


@pytest.mark.parametrize(
    ("params", "status", "needle"),
    [
        ({}, 400, "name"),
        ({"name": ""}, 400, "name"),
        ({"name": "f", "start": "2024-08-24T11:00:00Z", "end": "2024-08-24T10:00:00Z"}, 400, "start must be before"),
        ({"name": "f", "traces": 0}, 400, "traces"),
    ],
)
async def test_function_view_bad_input(
    client: Any, perf: Any, params: dict[str, Any], status: int, needle: str
) -> None:
    project = await perf.project("shop")
    r = await get(client, "function", project.project_key, **params)
    assert r.status_code == status, r.text
    assert needle in r.json()["msg"]


async def test_function_view_of_an_unknown_function_is_empty(client: Any, perf: Any, t: Any) -> None:
    project = await perf.project("shop")
    await plant(perf, t, project, requests=2)
    r = await get(client, "function", project.project_key, name="nobody.calls.me", **WINDOW)
    data = r.json()["data"]
    assert (data["traces_found"], data["calls"], data["traces"], data["callers"]) == (0, 0, [], [])
