"""The builtin analyzer on span sets written into a real Postgres: each detector finds the planted function.

Spans look like the SDK's: synthetic function spans named by ``co_qualname`` with file, line, self time and
the library flag; real DB / HTTP client spans parented to the request span (nested here by time).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pystrument_analysis.analysis import builtin
from pystrument_analysis.analysis.detectors import http_target, normalize_sql
from pystrument_analysis.analysis.preprocess import build_summary
from pystrument_analysis.analysis.trace import Trace, TSpan, load_trace

APP = "/srv/shop/app"
LIB = "/usr/local/lib/python3.11/site-packages"
STD = "/usr/local/lib/python3.11"
_trace_ids = itertools.count(1)

# Recent times: the server's retention maintenance (7 days by default) deletes older spans at start-up.
RECENT = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


@pytest.fixture
def t() -> Any:
    """Overrides the shared ``t``: ``RECENT`` plus the given seconds."""
    return lambda seconds: RECENT + timedelta(seconds=seconds)


@pytest.fixture(autouse=True)
async def _day_partitions(db: Any) -> None:
    """Span partitions exist before rows are written, so the server's start-up maintenance moves nothing."""
    from pystrument_collector.retention import ensure_partitions

    await ensure_partitions(db)


class Plant:
    """Writes one request's spans: the request span, function spans and client spans."""

    def __init__(self, perf: Any, at: Any, project: Any, duration: float, **request: Any) -> None:
        self.perf, self.at, self.project, self.duration = perf, at, project, duration
        self.request_kwargs = request
        self.trace_id = f"{next(_trace_ids):032x}"
        self.root = ""

    async def start(self) -> Plant:
        self.root = await self.perf.request(
            self.project, self.trace_id, start=self.at(0), duration=self.duration, **self.request_kwargs
        )
        return self

    async def fn(
        self,
        name: str,
        start: float,
        duration: float,
        parent: str | None = None,
        *,
        self_ms: float | None = None,
        library: bool = False,
        file: str | None = None,
        line: int = 10,
        **attrs: Any,
    ) -> str:
        file = file or (f"{LIB}/lib/mod.py" if library else f"{APP}/{name.split('.')[0].lower()}.py")
        attributes = {
            "code.function.name": name,
            "code.file.path": file,
            "code.line.number": line,
            "pystrument.library": library,
            "pystrument.self_time_ms": duration * 1000 if self_ms is None else self_ms,
            **attrs,
        }
        return await self.perf.span(
            self.project,
            self.trace_id,
            name,
            self.at(start),
            duration,
            parent=parent or self.root,
            synthetic=True,
            attributes=attributes,
        )

    async def db(self, statement: str, start: float, duration: float, system: str = "postgresql") -> str:
        attrs = {"db.system": system, "db.statement": statement}
        return await self.perf.span(
            self.project,
            self.trace_id,
            statement.split()[0],
            self.at(start),
            duration,
            parent=self.root,
            kind="CLIENT",
            attributes=attrs,
        )

    async def http(self, url: str, start: float, duration: float, method: str = "GET") -> str:
        attrs = {"http.request.method": method, "url.full": url}
        return await self.perf.span(
            self.project,
            self.trace_id,
            method,
            self.at(start),
            duration,
            parent=self.root,
            kind="CLIENT",
            attributes=attrs,
        )

    async def load(self, db: Any) -> Trace:
        async with db.session() as s:
            trace = await load_trace(s, self.project.id, self.trace_id)
        assert trace is not None
        return trace


@pytest.fixture
async def project(perf: Any) -> Any:
    return await perf.project()


async def plant(perf: Any, t: Any, project: Any, duration: float, **request: Any) -> Plant:
    return await Plant(perf, t, project, duration, **request).start()


def top(result: dict[str, Any]) -> dict[str, Any]:
    assert result["bottleneck_analysis"], "no bottleneck found"
    return result["bottleneck_analysis"][0]


async def test_n_plus_one_query_is_blamed_on_the_function_running_the_loop(db: Any, perf: Any, t: Any, project: Any):
    p = await plant(perf, t, project, 0.300)
    view = await p.fn("order_list", 0.0, 0.295, self_ms=5)
    fetch = await p.fn("fetch_items", 0.010, 0.270, view, self_ms=20, file=f"{APP}/repo.py", line=42)
    orm = await p.fn("Query.all", 0.012, 0.265, fetch, library=True, file=f"{LIB}/sqlalchemy/orm/query.py")
    query_ids = [await p.db(f"SELECT * FROM items WHERE order_id = {i}", 0.015 + i * 0.008, 0.007) for i in range(30)]
    await p.fn("format_price", 0.282, 0.004, view)  # small, below every threshold

    trace = await p.load(db)
    assert trace.root.span_id == p.root
    result = builtin.analyze(trace)
    b = top(result)
    assert (b["type"], b["detector"], b["function"]) == ("database", "n_plus_one_query", "fetch_items")
    assert b["count"] == 30
    assert b["impact"] == pytest.approx(30 * 0.007 / 0.300, rel=0.01)
    assert b["severity"] == "critical"  # 70% of the request
    assert b["span_ids"][0] == fetch and set(query_ids) <= set(b["span_ids"]) and orm not in b["span_ids"]
    assert (b["file"], b["line"], b["self_time_ms"]) == (f"{APP}/repo.py", 42, 20)
    assert "30 times" in b["description"] and "SELECT * FROM items WHERE order_id = ?" in b["description"]
    s = result["optimization_suggestions"][0]
    assert (s["category"], s["priority"], s["function"]) == ("database", "high", "fetch_items")
    assert "about 203 ms" in s["expected_improvement"]  # 210 ms * 29/30
    assert result["performance_score"] == pytest.approx(30.0)  # 100 - 100 * 0.70
    assert all(x["function"] != "Query.all" for x in result["bottleneck_analysis"])  # never a library frame


async def test_n_plus_one_across_calls_names_their_common_caller(db: Any, perf: Any, t: Any, project: Any) -> None:
    p = await plant(perf, t, project, 0.200)
    view = await p.fn("user_list", 0.0, 0.198, self_ms=10)
    for i in range(12):
        start = 0.01 + i * 0.015
        await p.fn("get_user", start, 0.012, view, self_ms=1, file=f"{APP}/repo.py")
        await p.db(f"SELECT id, name FROM users WHERE id = '{i}'", start + 0.001, 0.010)
    b = top(builtin.analyze(await p.load(db)))
    assert (b["detector"], b["function"], b["count"]) == ("n_plus_one_query", "user_list", 12)


async def test_call_at_the_edge_of_a_function_span_still_counts_for_it(db: Any, perf: Any, t: Any, project: Any):
    # function times come from samples: the loop's last query lands just inside the next function's span
    p = await plant(perf, t, project, 0.300)
    view = await p.fn("order_list", 0.0, 0.295, self_ms=5)
    fetch = await p.fn("fetch_items", 0.0, 0.2, view, self_ms=20)
    await p.fn("render_rows", 0.2, 0.09, view, self_ms=90)
    for i in range(20):
        await p.db(f"SELECT * FROM items WHERE order_id = {i}", 0.005 + i * 0.0099, 0.008)
    b = top(builtin.analyze(await p.load(db)))
    assert (b["detector"], b["function"], b["count"]) == ("n_plus_one_query", "fetch_items", 20)
    assert b["span_ids"][0] == fetch


@pytest.mark.parametrize("wait_ms", [0.0, 100.0])
async def test_loop_work_around_tiny_queries_joins_the_n_plus_one(
    db: Any, perf: Any, t: Any, project: Any, wait_ms: float
) -> None:
    # sqlite-style: execute() is quick, fetching rows happens in the function's own time; under load part of that
    # time shows as waiting (sqlite's scan releases the GIL and waits to get it back): the loop's work all the same
    p = await plant(perf, t, project, 0.250)
    view = await p.fn("order_list", 0.0, 0.245, self_ms=5)
    await p.fn("fetch_items", 0.005, 0.2, view, self_ms=150, **{"pystrument.wait_time_ms": wait_ms})
    for i in range(40):
        await p.db(f"select * from items where order_id = {i}", 0.01 + i * 0.0048, 0.0003, system="sqlite")
    result = builtin.analyze(await p.load(db))
    assert [b["detector"] for b in result["bottleneck_analysis"]] == ["n_plus_one_query"]
    b = top(result)
    # the sampled self time (150 ms) already covers the 12 ms inside the calls
    assert b["function"] == "fetch_items" and b["time_ms"] == pytest.approx(150, abs=0.5)
    assert "12 ms is in the calls themselves" in b["description"]


async def test_slow_single_query(db: Any, perf: Any, t: Any, project: Any) -> None:
    p = await plant(perf, t, project, 0.500)
    view = await p.fn("report_view", 0.0, 0.49, self_ms=10)
    build = await p.fn("build_report", 0.02, 0.45, view, self_ms=30, file=f"{APP}/reports.py")
    slow = await p.db("SELECT sum(total) FROM orders WHERE created_at > $1 GROUP BY customer_id", 0.05, 0.400)
    await p.db("SELECT 1", 0.46, 0.001)
    result = builtin.analyze(await p.load(db))
    b = top(result)
    assert (b["type"], b["detector"], b["function"]) == ("database", "slow_query", "build_report")
    assert b["span_ids"] == [build, slow] and b["impact"] == pytest.approx(0.8)
    assert "EXPLAIN" in result["optimization_suggestions"][0]["description"]


async def test_n_plus_one_http_calls(db: Any, perf: Any, t: Any, project: Any) -> None:
    p = await plant(perf, t, project, 0.400)
    view = await p.fn("cart_view", 0.0, 0.398, self_ms=5)
    check = await p.fn("check_stock", 0.01, 0.36, view, self_ms=10, file=f"{APP}/services.py")
    lib = await p.fn("Session.request", 0.012, 0.35, check, library=True, file=f"{LIB}/requests/sessions.py")
    for i in range(6):
        await p.http(f"http://inventory.internal:8080/items/{1000 + i}?token=abc", 0.015 + i * 0.058, 0.055)
    b = top(builtin.analyze(await p.load(db)))
    assert (b["type"], b["detector"], b["function"], b["count"]) == ("http", "n_plus_one_http", "check_stock", 6)
    assert lib not in b["span_ids"]
    assert "GET inventory.internal:8080/items/{id}" in b["description"] and "token" not in b["description"]


async def test_cpu_hotspot_counts_library_work_it_calls(db: Any, perf: Any, t: Any, project: Any) -> None:
    p = await plant(perf, t, project, 0.250)
    view = await p.fn("scores_view", 0.0, 0.248, self_ms=8)
    compute = await p.fn("compute_scores", 0.005, 0.23, view, self_ms=90, file=f"{APP}/analytics.py", line=7)
    await p.fn("dot", 0.1, 0.12, compute, library=True, file=f"{LIB}/numpy/core/multiarray.py", self_ms=120)
    result = builtin.analyze(await p.load(db))
    b = top(result)
    assert (b["type"], b["detector"], b["function"]) == ("cpu", "cpu_hotspot", "compute_scores")
    assert b["time_ms"] == pytest.approx(210) and b["impact"] == pytest.approx(0.84)
    assert "numpy/core/multiarray.py" in b["description"]
    assert result["performance_score"] == pytest.approx(100 - 100 * 0.8 * 0.84, abs=0.1)


async def test_a_sleep_in_a_sync_view_is_waiting_not_computing(db: Any, perf: Any, t: Any, project: Any) -> None:
    """The stack sampler sees no frame for ``time.sleep``: it is ``load_user``'s self time, and the SDK's
    ``pystrument.wait_time_ms`` says the thread did not run. A wait that a real DB span covers is the query's."""
    p = await plant(perf, t, project, 0.100)
    view = await p.fn("profile_view", 0.0, 0.098, self_ms=4)
    load = await p.fn("load_user", 0.002, 0.050, view, self_ms=50, **{"pystrument.wait_time_ms": 46.0})
    fetch = await p.fn("fetch_orders", 0.055, 0.040, view, self_ms=40, **{"pystrument.wait_time_ms": 38.0})
    await p.db("SELECT * FROM orders WHERE user_id = $1", 0.056, 0.038)
    result = builtin.analyze(await p.load(db))
    # No CPU hotspot, and fetch_orders' wait is its query's (which is slow in its own right).
    assert [(b["detector"], b["type"], b["function"]) for b in result["bottleneck_analysis"]] == [
        ("blocking_wait", "blocking", "load_user"),
        ("slow_query", "database", "fetch_orders"),
    ]
    b = top(result)
    assert b["time_ms"] == pytest.approx(46) and b["span_ids"][0] == load and fetch not in b["span_ids"]
    assert (
        "time.sleep" in b["description"] and "instrumentation" in result["optimization_suggestions"][0]["description"]
    )
    rows = {r["function"]: r for r in build_summary(await p.load(db), [], None)["hot_functions_by_self_time"]}
    assert rows["load_user"]["wait_ms"] == 46.0 and "wait_ms" not in rows["profile_view"]


async def test_a_garbage_collection_pause_is_its_own_bottleneck(db: Any, perf: Any, t: Any, project: Any) -> None:
    """The SDK's pause call is not the function's CPU work: the view's 15 ms of work stays under the thresholds, the
    120 ms pause is reported with what to change (gc.freeze)."""
    gc_attrs = {"pystrument.gc.pause_ms": 120.0, "pystrument.gc.collections": 1}
    p = await plant(perf, t, project, 0.160, attributes=gc_attrs)
    view = await p.fn("orders_view", 0.0, 0.158, self_ms=15)
    pause = await p.fn("garbage collection (generation 2)", 0.02, 0.120, view, file="<gc>", line=0, self_ms=120)
    for language, freeze in (("en", "gc.freeze()"), ("zh", "gc.freeze()")):
        result = builtin.analyze(await p.load(db), language)
        assert [b["detector"] for b in result["bottleneck_analysis"]] == ["gc_pause"]
        b = top(result)
        assert (b["type"], b["function"], b["count"]) == ("gc", "orders_view", 1)
        assert b["time_ms"] == pytest.approx(120) and b["impact"] == pytest.approx(0.75)
        assert b["span_ids"] == [view, pause] and "generation 2" in b["description"]
        assert freeze in result["optimization_suggestions"][0]["description"]
    # An AI provider is told the same.
    summary = build_summary(await p.load(db), [], None)
    assert summary["request"]["gc_pause_ms"] == 120.0
    assert {r["function"] for r in summary["hot_functions_by_self_time"]} >= {"garbage collection (generation 2)"}
    quiet = await plant(perf, t, project, 0.160, attributes={"pystrument.gc.pause_ms": 4.0})
    await quiet.fn("orders_view", 0.0, 0.158, self_ms=15)
    assert builtin.analyze(await quiet.load(db))["bottleneck_analysis"] == []


async def test_blocking_library_call_inside_async_handler(db: Any, perf: Any, t: Any, project: Any) -> None:
    p = await plant(perf, t, project, 0.300, attributes={"pystrument.async": True})
    handler = await p.fn("get_weather", 0.0, 0.29, self_ms=5, **{"pystrument.await_time_ms": 2.0})
    fetch = await p.fn("fetch_forecast", 0.01, 0.26, handler, self_ms=2, file=f"{APP}/weather.py")
    call = await p.fn("Session.get", 0.02, 0.24, fetch, library=True, file=f"{LIB}/requests/sessions.py")
    result = builtin.analyze(await p.load(db))
    b = top(result)
    assert (b["type"], b["detector"], b["function"]) == ("blocking", "blocking_in_async", "fetch_forecast")
    assert b["severity"] == "critical" and call in b["span_ids"]
    assert "requests/sessions.py" in b["description"] and "event loop" in b["description"]
    assert "asyncio.to_thread" in result["optimization_suggestions"][0]["description"]


async def test_same_call_in_a_sync_handler_is_not_blocking(db: Any, perf: Any, t: Any, project: Any) -> None:
    p = await plant(perf, t, project, 0.300)
    handler = await p.fn("get_weather", 0.0, 0.29, self_ms=5)
    fetch = await p.fn("fetch_forecast", 0.01, 0.26, handler, self_ms=2)
    await p.fn("Session.get", 0.02, 0.24, fetch, library=True, file=f"{LIB}/requests/sessions.py")
    result = builtin.analyze(await p.load(db))
    assert all(b["type"] != "blocking" for b in result["bottleneck_analysis"])


async def test_sleep_in_coroutine_detected_from_wall_time_beyond_cpu(db: Any, perf: Any, t: Any, project: Any):
    # the sampler cannot see C functions: time.sleep shows as self time of the coroutine that called it;
    # the request used 12 ms of CPU, the coroutine held the loop 200 ms without awaiting
    p = await plant(perf, t, project, 0.260, cpu_time=0.012)
    handler = await p.fn("dashboard", 0.0, 0.255, self_ms=8, **{"pystrument.await_time_ms": 30.0})
    await p.fn("load_widgets", 0.02, 0.21, handler, self_ms=200, file=f"{APP}/widgets.py")
    b = top(builtin.analyze(await p.load(db)))
    assert (b["detector"], b["function"]) == ("blocking_in_async", "load_widgets")
    assert b["time_ms"] == pytest.approx(200 - 12)  # the holders' 200 ms less the request's CPU time


async def test_cpu_work_in_coroutine_is_a_hotspot_not_blocking(db: Any, perf: Any, t: Any, project: Any) -> None:
    p = await plant(perf, t, project, 0.260, cpu_time=0.205)
    handler = await p.fn("dashboard", 0.0, 0.255, self_ms=8, **{"pystrument.await_time_ms": 30.0})
    await p.fn("load_widgets", 0.02, 0.21, handler, self_ms=200, file=f"{APP}/widgets.py")
    result = builtin.analyze(await p.load(db))
    assert [b["detector"] for b in result["bottleneck_analysis"]] == ["cpu_hotspot"]
    assert top(result)["function"] == "load_widgets"


async def test_serialization_template_and_regex(db: Any, perf: Any, t: Any, project: Any) -> None:
    p = await plant(perf, t, project, 0.400)
    view = await p.fn("export_view", 0.0, 0.398, self_ms=4)
    export = await p.fn("export_orders", 0.005, 0.2, view, self_ms=10, file=f"{APP}/export.py")
    await p.fn("JSONEncoder.encode", 0.01, 0.18, export, library=True, file=f"{STD}/json/encoder.py")
    page = await p.fn("render_page", 0.21, 0.12, view, self_ms=5, file=f"{APP}/pages.py")
    await p.fn("render_template", 0.215, 0.11, page, library=True, file=f"{LIB}/flask/templating.py")
    clean = await p.fn("clean_text", 0.335, 0.06, view, self_ms=3, file=f"{APP}/text.py")
    await p.fn("findall", 0.337, 0.055, clean, library=True, file=f"{STD}/re/__init__.py")
    result = builtin.analyze(await p.load(db), "en")
    found = {b["detector"]: b for b in result["bottleneck_analysis"]}
    assert found["serialization"]["function"] == "export_orders"
    assert found["serialization"]["impact"] == pytest.approx(0.45)
    assert found["template_rendering"]["function"] == "render_page"
    assert found["regex"]["function"] == "clean_text"
    assert [b["detector"] for b in result["bottleneck_analysis"][:3]] == [
        "serialization",
        "template_rendering",
        "regex",
    ]
    impacts = [b["impact"] for b in result["bottleneck_analysis"]]
    assert impacts == sorted(impacts, reverse=True) and all(0 <= i <= 1 for i in impacts)


async def test_chinese_texts_and_error_penalty(db: Any, perf: Any, t: Any, project: Any) -> None:
    p = await plant(perf, t, project, 0.300, status=500)
    view = await p.fn("order_list", 0.0, 0.295, self_ms=5)
    for i in range(10):
        await p.db(f"SELECT * FROM items WHERE id = {i}", 0.01 + i * 0.02, 0.015)
    result = builtin.analyze(await p.load(db), "zh")
    b = top(result)
    assert b["function"] == "order_list" and "重复执行同一条查询 10 次" in b["description"]
    assert "预计可减少" in result["optimization_suggestions"][0]["expected_improvement"]
    assert result["performance_score"] == pytest.approx(100 - 50 - 10)
    assert view in b["span_ids"]


async def test_clean_trace_scores_100(db: Any, perf: Any, t: Any, project: Any) -> None:
    p = await plant(perf, t, project, 0.050)
    view = await p.fn("health", 0.0, 0.049, self_ms=3)
    await p.fn("ping", 0.01, 0.004, view)
    await p.db("SELECT 1", 0.02, 0.002)
    result = builtin.analyze(await p.load(db))
    assert result["performance_score"] == 100.0
    assert result["bottleneck_analysis"] == [] and result["summary"].startswith("No bottleneck")


async def test_trace_without_function_spans_blames_the_route(db: Any, perf: Any, t: Any, project: Any) -> None:
    p = await plant(perf, t, project, 0.200, route="/orders/{id}")
    for i in range(8):
        await p.db(f"SELECT * FROM lines WHERE order_id = {i}", 0.01 + i * 0.02, 0.015)
    b = top(builtin.analyze(await p.load(db)))
    assert (b["detector"], b["function"]) == ("n_plus_one_query", "/orders/{id}")


def test_normalizers() -> None:
    assert normalize_sql("SELECT * FROM t WHERE a = 'x''y' AND b IN (1, 2, 3) AND c = $1") == (
        "SELECT * FROM t WHERE a = ? AND b IN (?) AND c = ?"
    )
    assert normalize_sql("select  t2.id from t2 where id=%s") == "select t2.id from t2 where id=?"

    span = TSpan(
        span_id="1",
        parent_id=None,
        name="GET",
        kind="CLIENT",
        start=0.0,
        duration=0.01,
        synthetic=False,
        attributes={"http.method": "get", "url.full": "https://api.example.com/v1/users/123/orders/9f8e7d6c5b4a39?q=1"},
    )
    assert http_target(span) == "GET api.example.com/v1/users/{id}/orders/{id}"
