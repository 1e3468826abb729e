"""Speedscope export of a trace's function spans: well-nested evented profiles."""

from __future__ import annotations

from typing import Any


def check_nesting(profile: dict[str, Any]) -> list[tuple[int, float, float]]:
    """Assert speedscope's evented rules (LIFO open/close, time never goes back); return (depth, open, close)."""
    stack: list[tuple[int, float]] = []
    last = profile["startValue"]
    spans = []
    for event in profile["events"]:
        assert event["at"] >= last
        last = event["at"]
        if event["type"] == "O":
            stack.append((event["frame"], event["at"]))
        else:
            frame, opened = stack.pop()
            assert frame == event["frame"]
            spans.append((len(stack), opened, event["at"]))
    assert not stack
    assert last <= profile["endValue"]
    return spans


async def test_speedscope_document(client: Any, perf: Any, t: Any) -> None:
    project = await perf.project()
    trace = "5c" * 16
    root = await perf.request(project, trace, start=t(0), duration=0.5, route="/report")
    view = await perf.span(
        project, trace, "app.view", t(0.0), 0.5, parent=root, synthetic=True,
        attributes={"code.file.path": "/app/views.py", "code.line.number": 7},
    )  # fmt: skip
    await perf.span(project, trace, "app.load", t(0.1), 0.2, parent=view, synthetic=True)
    # rebuilt from samples: overlaps app.load and runs past app.view's end: cut to fit, all calls kept
    await perf.span(project, trace, "app.render", t(0.25), 0.3, parent=view, synthetic=True)
    await perf.span(project, trace, "app.load", t(0.45), 0.02, parent=view, synthetic=True)
    await perf.span(project, trace, "SELECT", t(0.12), 0.05, parent=root, kind="CLIENT")  # not a function

    r = await client.get(f"/api/v1/performance/records/{trace}/speedscope", params={"project_key": project.project_key})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert f'filename="{trace}.speedscope.json"' in r.headers["content-disposition"]
    doc = r.json()
    assert doc["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    frames = doc["shared"]["frames"]
    names = [f["name"] for f in frames]
    assert names == ["GET /report", "app.view", "app.load", "app.render"]  # app.load shared by both calls
    assert frames[1] == {"name": "app.view", "file": "/app/views.py", "line": 7}
    (profile,) = doc["profiles"]
    assert profile["type"] == "evented" and profile["unit"] == "milliseconds"
    assert profile["name"] == "svc: GET /report"
    assert profile["endValue"] == 500.0
    spans = check_nesting(profile)
    opened = sorted((depth, round(o, 6), round(c, 6)) for depth, o, c in spans)
    assert opened == [(0, 0.0, 500.0), (1, 0.0, 500.0), (2, 100.0, 250.0), (2, 250.0, 450.0), (2, 450.0, 470.0)]


async def test_speedscope_errors(client: Any, perf: Any, t: Any) -> None:
    a = await perf.project("a")
    b = await perf.project("b")
    await perf.request(a, "1" * 32, start=t(0))
    await perf.request(a, "2" * 32, start=t(0), with_span=False)
    url = "/api/v1/performance/records/{}/speedscope"
    r = await client.get(url.format("1" * 32), params={"project_key": b.project_key})
    assert (r.status_code, r.json()["code"]) == (404, 40401)
    r = await client.get(url.format("2" * 32), params={"project_key": a.project_key})
    assert (r.status_code, r.json()["code"]) == (404, 40401) and "no request span" in r.json()["msg"]
    r = await client.get(url.format("1" * 32), params={"project_key": a.project_key})
    assert r.status_code == 200
    assert [f["name"] for f in r.json()["shared"]["frames"]] == ["GET /users/{id}"]
