"""Hot functions count the child spans (queries, HTTP calls) each function started per request.

The SDK merges a loop's consecutive calls into one function span, so "calls per request" reads 1 for a view that
runs 25 queries; ``pystrument.child_span_ids`` on that span still lists all 25, and the table shows it.
"""

from __future__ import annotations

from typing import Any

import pytest

WINDOW = {"start": "2024-08-24T10:00:00Z", "end": "2024-08-24T10:10:00Z"}
URL = "/api/v1/performance/functions"


async def plant(perf: Any, project: Any, trace: str, at: Any, spans: dict[str, list[int]]) -> None:
    """A request whose function spans (name -> the number of child spans each started) claim real CLIENT spans."""
    root = await perf.request(project, trace, start=at, duration=0.5)
    for name, counts in spans.items():
        for n in counts:
            children = [perf.new_span_id() for _ in range(n)]
            attributes = {**claims(children), "pystrument.self_time_ms": 10}
            if not n:  # a function that started nothing carries no such attribute
                del attributes["pystrument.child_span_ids"]
            for child in children:
                await perf.span(project, trace, "SELECT orders", at, 0.001, parent=root, span_id=child, kind="CLIENT")
            await perf.span(project, trace, name, at, 0.3, parent=root, synthetic=True, attributes=attributes)


def claims(ids: Any) -> dict[str, Any]:
    """A function span's attributes claiming ``ids`` as the spans it started."""
    return {"code.file.path": "/app/views.py", "pystrument.child_span_ids": ids}


async def functions(client: Any, key: str, **params: Any) -> dict[str, dict[str, Any]]:
    r = await client.get(URL, params={"project_key": key, **WINDOW, **params})
    assert r.status_code == 200, r.text
    return {f["name"]: f for f in r.json()["data"]["functions"]}


async def test_a_merged_loop_shows_its_25_queries_per_request(client: Any, perf: Any, t: Any) -> None:
    project = await perf.project()
    for i in range(4):  # one merged function span per request, 25 queries each
        await plant(perf, project, f"a{i:031x}", t(i * 10), {"app.views.list_orders": [25], "app.views.render": [0]})
    fn = (await functions(client, project.project_key))["app.views.list_orders"]
    assert (fn["calls"], fn["traces"]) == (4, 4)  # 1 call/request: the N+1 is invisible here...
    assert fn["child_spans"] == 100
    assert fn["child_spans_per_request"] == pytest.approx(25)  # ...and visible here
    assert fn["max_child_spans_per_request"] == 25
    render = (await functions(client, project.project_key))["app.views.render"]
    assert [render[k] for k in ("child_spans", "child_spans_per_request", "max_child_spans_per_request")] == [0, 0, 0]


async def test_spans_of_one_request_add_up_and_the_max_is_per_request(client: Any, perf: Any, t: Any) -> None:
    project = await perf.project()
    await plant(perf, project, "b" * 32, t(1), {"app.sync": [10, 15]})  # two spans, one request: 25
    await plant(perf, project, "c" * 32, t(2), {"app.sync": [5]})
    await plant(perf, project, "d" * 32, t(3), {"app.sync": [1]})
    other = await perf.project("other")  # another project's spans never count
    await plant(perf, other, "e" * 32, t(1), {"app.sync": [99]})
    fn = (await functions(client, project.project_key))["app.sync"]
    assert (fn["calls"], fn["traces"], fn["child_spans"]) == (4, 3, 31)
    assert fn["child_spans_per_request"] == pytest.approx(31 / 3)
    assert fn["max_child_spans_per_request"] == 25


async def test_filters_and_odd_attributes(client: Any, perf: Any, t: Any) -> None:
    project = await perf.project()
    await plant(perf, project, "1" * 32, t(1), {"app.loop": [25]})
    late = await perf.request(project, "2" * 32, start=t(3600), duration=0.5)  # outside the window
    fifty = [perf.new_span_id() for _ in range(50)]
    await perf.span(project, "2" * 32, "app.loop", t(3600), 0.3, parent=late, synthetic=True, attributes=claims(fifty))
    odd = await perf.request(project, "3" * 32, start=t(5), duration=0.5)
    one = claims("00000000000000d1")  # not an array: counted as none, never a jsonb error
    await perf.span(project, "3" * 32, "app.loop", t(5), 0.3, parent=odd, synthetic=True, attributes=one)
    fn = (await functions(client, project.project_key))["app.loop"]
    assert (fn["traces"], fn["child_spans"], fn["max_child_spans_per_request"]) == (2, 25, 25)
    assert fn["child_spans_per_request"] == pytest.approx(12.5)
    assert await functions(client, project.project_key, route="/elsewhere") == {}
