"""Tail vs median per route: planted traces where one function explains the slow requests."""

from __future__ import annotations

from typing import Any

import pytest

WINDOW = {"start": "2024-08-24T10:00:00Z", "end": "2024-08-24T11:00:00Z"}


async def plant(
    perf: Any, t: Any, project: Any, prefix: str, *, slow_function: str = "app.pricing.recalculate"
) -> None:
    """40 requests to /checkout: 36 of about 100 ms, 4 of about 1 s spent mostly in ``slow_function``."""
    for i in range(40):
        slow = i % 10 == 9
        trace = f"{prefix}{i:030x}"
        start = t(i * 60)
        duration = (0.95 + 0.01 * i / 10) if slow else (0.09 + 0.001 * i)
        root = await perf.request(project, trace, start=start, duration=duration, route="/checkout", path="/checkout")
        if i == 20:  # a typical request whose function spans were not kept
            continue
        view = await perf.span(
            project, trace, "app.views.checkout", start, duration - 0.001, parent=root, synthetic=True,
            attributes={"code.function.name": "app.views.checkout", "code.file.path": "/app/views.py",
                        "pystrument.self_time_ms": 10},
        )  # fmt: skip
        await perf.span(
            project, trace, "app.db.load_cart", t(i * 60 + 0.01), 0.05, parent=view, synthetic=True,
            attributes={"code.function.name": "app.db.load_cart", "pystrument.self_time_ms": 50},
        )  # fmt: skip
        if slow:
            await perf.span(
                project, trace, slow_function, t(i * 60 + 0.07), 0.8, parent=view, synthetic=True,
                attributes={"code.function.name": slow_function, "pystrument.self_time_ms": 700},
            )  # fmt: skip
            outer = await perf.span(
                project, trace, "app.tree.walk", t(i * 60 + 0.87), 0.06, parent=view, synthetic=True,
                attributes={"code.function.name": "app.tree.walk", "pystrument.self_time_ms": 20},
            )  # fmt: skip
            await perf.span(
                project, trace, "app.tree.walk", t(i * 60 + 0.88), 0.04, parent=outer, synthetic=True,
                attributes={"code.function.name": "app.tree.walk", "pystrument.self_time_ms": 40},
            )  # fmt: skip
        await perf.span(project, trace, "SELECT cart", t(i * 60 + 0.02), 0.03, parent=root, kind="CLIENT")


async def differential(client: Any, key: str, **params: Any) -> dict[str, Any]:
    r = await client.get(
        "/api/v1/performance/routes/differential", params={"project_key": key, "route": "/checkout", **WINDOW, **params}
    )
    assert r.status_code == 200, r.text
    assert r.json()["code"] == 0
    return r.json()["data"]


async def test_the_planted_function_explains_the_tail(client: Any, perf: Any, t: Any) -> None:
    project = await perf.project("shop")
    other = await perf.project("other")
    await plant(perf, t, project, "aa")
    await plant(perf, t, other, "aa", slow_function="other.secret_function")  # same trace ids, other project

    data = await differential(client, project.project_key)
    assert data["route"] == "/checkout" and data["request_count"] == 40
    median, tail = data["median"], data["tail"]
    assert median["min_duration"] < median["max_duration"] < tail["min_duration"] <= tail["max_duration"]
    assert tail["requests"] == 2 and tail["profiled"] == 2  # p95 of 40: the two slowest
    assert median["requests"] == 8 and median["profiled"] == 7  # one of them has no function spans
    assert tail["mean_duration"] == pytest.approx(0.98, abs=0.02)
    assert median["mean_duration"] == pytest.approx(0.109, abs=0.01)
    extra = data["extra_time"]
    assert extra == pytest.approx(tail["mean_duration"] - median["mean_duration"])

    functions = {f["name"]: f for f in data["functions"]}
    assert "other.secret_function" not in functions  # another project's spans never count
    culprit = functions["app.pricing.recalculate"]
    assert (culprit["median_time"], culprit["tail_time"]) == (0.0, pytest.approx(0.8))
    assert culprit["delta"] == pytest.approx(0.8) and culprit["share"] == pytest.approx(0.8 / extra)
    assert culprit["self_delta"] == pytest.approx(0.7) and culprit["self_share"] == pytest.approx(0.7 / extra)
    assert (culprit["median_calls"], culprit["tail_calls"]) == (0.0, 1.0)
    assert culprit["file"] == ""
    view = functions["app.views.checkout"]
    assert view["file"] == "/app/views.py"
    assert view["delta"] == pytest.approx(extra, abs=1e-6)  # the caller includes its callees
    assert view["self_delta"] == pytest.approx(0.0)
    assert functions["app.db.load_cart"]["delta"] == pytest.approx(0.0)
    walk = functions["app.tree.walk"]
    assert walk["tail_time"] == pytest.approx(0.06)  # the recursive inner call is not counted twice
    assert walk["tail_calls"] == 2.0 and walk["tail_self_time"] == pytest.approx(0.06)
    assert "SELECT cart" not in functions  # not a function span

    ranked = [f["name"] for f in data["functions"]]
    assert ranked[:2] == ["app.views.checkout", "app.pricing.recalculate"]
    top_self = max(data["functions"], key=lambda f: f["self_delta"])
    assert top_self["name"] == "app.pricing.recalculate"

    limited = await differential(client, project.project_key, limit=1, sample=1)
    assert [f["name"] for f in limited["functions"]] == ["app.views.checkout"]
    assert limited["tail"]["profiled"] == 1 and limited["median"]["profiled"] == 1


async def test_an_unknown_route_has_empty_cohorts(client: Any, perf: Any) -> None:
    project = await perf.project()
    data = await differential(client, project.project_key, route="/nothing")
    assert data["request_count"] == 0 and data["functions"] == [] and data["extra_time"] is None
    assert data["median"] == {
        "min_duration": None, "max_duration": None, "requests": 0, "profiled": 0, "mean_duration": None,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("params", "status", "word"),
    [
        ({"route": ""}, 400, "route"),
        ({"sample": 0}, 400, "sample"),
        ({"start": "2024-08-24T12:00:00Z", "end": "2024-08-24T11:00:00Z"}, 400, "start must be before end"),
        ({"project_key": "proj_missing"}, 404, "project not found"),
    ],
)
async def test_bad_differential_queries(client: Any, perf: Any, params: dict[str, Any], status: int, word: str) -> None:
    project = await perf.project()
    query = {"project_key": project.project_key, "route": "/checkout", **params}
    r = await client.get("/api/v1/performance/routes/differential", params=query)
    assert r.status_code == status, r.text
    assert word in r.json()["msg"]
