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


def rules(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The bottlenecks, without the coverage note (``unexplained``) that closes the list when they explain < 80%."""
    return [b for b in result["bottleneck_analysis"] if b["detector"] != "unexplained"]


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
    assert [b["detector"] for b in rules(result)] == ["n_plus_one_query"]
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
    assert [(b["detector"], b["type"], b["function"]) for b in rules(result)] == [
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
        assert [b["detector"] for b in rules(result)] == ["gc_pause"]
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
    assert rules(builtin.analyze(await quiet.load(db))) == []


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


async def test_a_coroutine_awaiting_with_no_span_is_a_wait_not_a_blocked_loop(
    db: Any, perf: Any, t: Any, project: Any
) -> None:
    """The demo's /catalog alone: ``load_price_overrides`` awaits ``asyncio.sleep`` for most of the request. The loop
    was free all along: the finding says it awaits (and what to do), never that it blocked the loop."""
    p = await plant(perf, t, project, 0.046, attributes={"pystrument.async": True})
    handler = await p.fn("catalog", 0.0, 0.045, self_ms=0)
    loader = await p.fn("load_price_overrides", 0.0, 0.045, handler, self_ms=0)
    await p.fn(
        "sleep",
        0.0,
        0.045,
        loader,
        library=True,
        file="/usr/local/lib/python3.11/asyncio/tasks.py",
        **{"pystrument.await_time_ms": 45.0},
    )
    result = builtin.analyze(await p.load(db))
    assert all(b["detector"] != "blocking_in_async" for b in result["bottleneck_analysis"]), result
    b = top(result)
    assert (b["detector"], b["type"], b["function"]) == ("async_wait", "io", "load_price_overrides"), b
    assert loader in b["span_ids"] and "awaits" in b["description"] and "not blocked" in b["description"]
    assert "asyncio.gather" in result["optimization_suggestions"][0]["description"]


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
    result = builtin.analyze(await p.load(db))
    b = top(result)
    assert (b["detector"], b["type"], b["function"]) == ("blocking_in_async", "blocking", "load_widgets")
    assert b["time_ms"] == pytest.approx(200)  # all it held the loop for
    assert "time.sleep / sync I/O" in b["description"] and "event loop" in b["description"]
    assert "asyncio.sleep" in result["optimization_suggestions"][0]["description"]


async def test_cpu_work_in_coroutine_blocks_the_loop_too(db: Any, perf: Any, t: Any, project: Any) -> None:
    """A CPU loop inside ``async def`` is not "critical CPU, vectorise it": it blocks the event loop, and the fix is
    to move it off the loop."""
    p = await plant(perf, t, project, 0.260, cpu_time=0.205)
    handler = await p.fn("dashboard", 0.0, 0.255, self_ms=8, **{"pystrument.await_time_ms": 30.0})
    await p.fn("load_widgets", 0.02, 0.21, handler, self_ms=200, file=f"{APP}/widgets.py")
    result = builtin.analyze(await p.load(db))
    assert [b["detector"] for b in rules(result)] == ["blocking_in_async"]
    b = top(result)
    assert b["function"] == "load_widgets" and "CPU-bound work" in b["description"]
    advice = result["optimization_suggestions"][0]["description"]
    assert "run_in_executor" in advice and "vectorised" not in advice
    assert result["performance_score"] < 90


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


# ---------------------------------------------------------------------- issue 13: the rules that account for the time


async def test_password_hashing_is_a_deliberate_cost_and_leads(db: Any, perf: Any, t: Any, project: Any) -> None:
    """1.1 s Flask login, 716 ms in werkzeug's check_password_hash: named first, called deliberate, score < 90."""
    p = await plant(perf, t, project, 1.100, route="/auth/login")
    view = await p.fn("login", 0.0, 1.09, self_ms=20, file=f"{APP}/auth.py")
    await p.fn("User.query_by_email", 0.02, 0.05, view, self_ms=50, file=f"{APP}/models.py")
    await p.fn("check_password_hash", 0.1, 0.716, view, library=True, file=f"{LIB}/werkzeug/security.py")
    result = builtin.analyze(await p.load(db))
    b = top(result)
    assert (b["detector"], b["type"], b["function"]) == ("deliberate_cost", "deliberate", "check_password_hash")
    assert "login" in b["description"] and "on purpose" in b["description"]
    advice = result["optimization_suggestions"][0]["description"]
    assert "rate-limit" in advice and "work factor" in advice and "background job" not in advice
    assert result["performance_score"] < 90
    assert all(x["type"] != "cpu" or x["function"] != "login" for x in rules(result))  # not "reduce the work"


async def test_one_library_function_holding_most_of_a_library_only_page_leads(
    db: Any, perf: Any, t: Any, project: Any
) -> None:
    """The Wagtail case: 26.5 s page, 24.6 s in image rendition inside a template, a 118 ms query; the route is a
    regex and Jinja's frame is called root. The finding names the template and the rendition, never the regex."""
    regex = r"^((?:[\w\-]+/)*)$"
    p = await plant(perf, t, project, 26.5, route=regex, path="/blog/")
    serve = await p.fn("serve", 0.0, 26.4, library=True, self_ms=10, file=f"{LIB}/wagtail/views.py")
    page = await p.fn(
        "root",
        0.5,
        25.5,
        serve,
        self_ms=300,
        file=f"{APP}/templates/home/home_page.html",
        **{"pystrument.template": "home/home_page.html"},
    )
    await p.fn("get_rendition", 0.6, 24.6, page, library=True, file=f"{LIB}/wagtail/images/models.py")
    await p.db("SELECT * FROM wagtailcore_page WHERE path LIKE $1", 26.1, 0.118)
    result = builtin.analyze(await p.load(db))
    b = top(result)
    assert (b["detector"], b["function"]) == ("template_rendering", "template home/home_page.html")
    assert "get_rendition" in b["description"] and b["impact"] > 0.9
    assert result["performance_score"] < 90
    names = [x["function"] for x in result["bottleneck_analysis"]] + [
        s["title"] for s in result["optimization_suggestions"]
    ]
    assert not any(regex in n or n == "root" or " root" in n for n in names), names


async def test_a_dominant_function_no_rule_covers_is_named_first(db: Any, perf: Any, t: Any, project: Any) -> None:
    """Library-only, no template: the library function holding 93% leads, even against a slow query."""
    p = await plant(perf, t, project, 2.0, route=r"^admin/(?P<app>\w+)/$")
    handler = await p.fn(
        "BaseHandler.get_response", 0.0, 1.99, library=True, self_ms=5, file=f"{LIB}/django/core/handlers/base.py"
    )
    await p.fn("Filter.run", 0.01, 1.86, handler, library=True, file=f"{LIB}/willow/registry.py")
    await p.db("SELECT count(*) FROM auth_user", 1.88, 0.11)
    result = builtin.analyze(await p.load(db))
    assert top(result)["function"] == "Filter.run" and result["performance_score"] < 90
    assert all(not x["function"].startswith("^") for x in result["bottleneck_analysis"])


async def test_a_request_held_up_by_another_on_its_loop_names_the_culprit(
    db: Any, perf: Any, t: Any, project: Any
) -> None:
    """/catalog took 130 ms, its own code 3 ms: /inventory's time.sleep in async def held the loop meanwhile."""
    loop = {"pystrument.async": True, "pystrument.loop": "host:1:140"}
    culprit = await plant(perf, t, project, 0.125, route="/inventory", attributes=loop)
    handler = await culprit.fn("inventory", 0.0, 0.124, self_ms=1, file=f"{APP}/catalog_api.py")
    blocker = await culprit.fn("query_warehouse_stock", 0.001, 0.121, handler, file=f"{APP}/catalog_api.py")
    victim = await plant(
        perf, t, project, 0.130, route="/catalog", attributes={**loop, "pystrument.loop_wait_ms": 115.0}
    )
    await victim.fn("catalog", 0.122, 0.003, file=f"{APP}/catalog_api.py")
    result = builtin.analyze(await victim.load(db))
    b = top(result)
    assert (b["detector"], b["type"], b["function"]) == (
        "loop_blocked_by_other_request",
        "blocking",
        "query_warehouse_stock",
    )
    assert b["culprit_trace_id"] == culprit.trace_id and b["culprit_span_id"] == blocker
    assert culprit.trace_id in b["description"] and result["performance_score"] < 90
    # the culprit's own analysis: blocking the event loop, with the async fix
    own = top(builtin.analyze(await culprit.load(db)))
    assert (own["detector"], own["function"]) == ("blocking_in_async", "query_warehouse_stock")
    # without the SDK's loop_wait figure, the unsampled wait is the evidence; a request on another loop is no culprit
    quiet = await plant(perf, t, project, 0.130, route="/catalog", attributes={"pystrument.async": True})
    await quiet.fn("catalog", 0.122, 0.003, file=f"{APP}/catalog_api.py")
    assert top(builtin.analyze(await quiet.load(db)))["function"] == "query_warehouse_stock"
    elsewhere = await plant(
        perf, t, project, 0.130, route="/catalog", attributes={**loop, "pystrument.loop": "host:2:140"}
    )
    await elsewhere.fn("catalog", 0.122, 0.003, file=f"{APP}/catalog_api.py")
    assert all(
        x["detector"] != "loop_blocked_by_other_request"
        for x in builtin.analyze(await elsewhere.load(db))["bottleneck_analysis"]
    )


async def test_a_generator_expression_is_named_by_the_function_running_it(
    db: Any, perf: Any, t: Any, project: Any
) -> None:
    p = await plant(perf, t, project, 0.200)
    view = await p.fn("recommendations", 0.0, 0.198, self_ms=2)
    compute = await p.fn("compute_recommendations", 0.002, 0.19, view, self_ms=5, file=f"{APP}/shop.py")
    await p.fn("compute_recommendations.<locals>.<genexpr>", 0.003, 0.185, compute, self_ms=180, file=f"{APP}/shop.py")
    result = builtin.analyze(await p.load(db))
    b = top(result)
    assert (b["detector"], b["function"], b["span_ids"][0]) == ("cpu_hotspot", "compute_recommendations", compute)
    assert b["time_ms"] == pytest.approx(185)
    assert all("<genexpr>" not in x["function"] for x in result["bottleneck_analysis"])


async def test_debug_mode_queries_are_flagged_not_an_n_plus_one(db: Any, perf: Any, t: Any, project: Any) -> None:
    p = await plant(perf, t, project, 0.200, route="/admin/")
    view = await p.fn("index", 0.0, 0.198, self_ms=5, library=True, file=f"{LIB}/django/contrib/admin/sites.py")
    log = await p.fn(
        "DatabaseOperations.last_executed_query",
        0.01,
        0.15,
        view,
        library=True,
        self_ms=40,
        file=f"{LIB}/django/db/backends/sqlite3/operations.py",
    )
    for i in range(30):
        await p.db("SELECT QUOTE(?)", 0.012 + i * 0.0045, 0.004, system="sqlite")
    result = builtin.analyze(await p.load(db))
    b = top(result)
    assert (b["detector"], b["type"]) == ("debug_mode", "config") and b["span_ids"][0] != log
    assert b["function"] == "DatabaseOperations.last_executed_query" and "DEBUG mode is on" in b["description"]
    assert "DEBUG = False" in result["optimization_suggestions"][0]["description"]
    assert all(x["detector"] != "n_plus_one_query" for x in result["bottleneck_analysis"])


async def test_gc_uses_the_pause_each_span_stands_for(db: Any, perf: Any, t: Any, project: Any) -> None:
    """A GC span longer than its pause (rebuilt from samples) counts for its pause, and parents no query."""
    p = await plant(perf, t, project, 0.300)
    view = await p.fn("orders_view", 0.0, 0.298, self_ms=200)
    await p.fn(
        "garbage collection (generation 2)",
        0.05,
        0.2,
        view,
        file="<gc>",
        line=0,
        self_ms=200,
        **{"pystrument.gc.pause_ms": 60.0},
    )
    query = await p.db("SELECT 1", 0.1, 0.001)
    trace = await p.load(db)
    [gc] = [b for b in builtin.analyze(trace)["bottleneck_analysis"] if b["detector"] == "gc_pause"]
    assert gc["time_ms"] == pytest.approx(60) and gc["function"] == "orders_view"
    assert next(s for s in trace.spans if s.span_id == query).parent.function == "orders_view"


async def test_a_starved_request_says_why_it_is_unexplained(db: Any, perf: Any, t: Any, project: Any) -> None:
    reason = "no samples: 16 requests in flight, sampler thread got no CPU"
    p = await plant(perf, t, project, 0.150, attributes={"pystrument.profile.starved": reason})
    result = builtin.analyze(await p.load(db))
    [b] = result["bottleneck_analysis"]
    assert (b["detector"], b["type"], b["severity"]) == ("unexplained", "unexplained", "low")
    assert reason in b["description"] and result["coverage"]["starved"] == reason
    assert result["performance_score"] == 100.0  # a coverage note is not a penalty


async def test_coverage_names_where_the_rest_went(db: Any, perf: Any, t: Any, project: Any) -> None:
    """An N+1 of 90 ms in a 300 ms request: the rest is the framework's own time and unsampled time, said so."""
    p = await plant(perf, t, project, 0.300)
    wsgi = await p.fn("Flask.wsgi_app", 0.02, 0.27, library=True, self_ms=150, file=f"{LIB}/flask/app.py")
    view = await p.fn("order_list", 0.18, 0.1, wsgi, self_ms=5)
    for i in range(9):
        await p.db(f"SELECT * FROM items WHERE id = {i}", 0.181 + i * 0.0105, 0.01)
    result = builtin.analyze(await p.load(db))
    assert top(result)["detector"] == "n_plus_one_query"
    note = result["bottleneck_analysis"][-1]
    assert note["detector"] == "unexplained" and note["function"] == "Flask.wsgi_app"
    assert "Flask.wsgi_app 150 ms" in note["description"] and "(not sampled) 30 ms" in note["description"]
    assert result["coverage"]["explained_pct"] == pytest.approx(30, abs=0.5)
    assert view in top(result)["span_ids"]


async def test_claimed_queries_are_blamed_on_the_claiming_function(db: Any, perf: Any, t: Any, project: Any) -> None:
    """The paginate query started while ``paginate`` ran (the SDK says so), though by time it lies in the template."""
    p = await plant(perf, t, project, 0.300)
    view = await p.fn("index", 0.0, 0.298, self_ms=2)
    ids = [perf.new_span_id() for _ in range(8)]
    await p.fn("paginate", 0.0, 0.05, view, self_ms=10, **{"pystrument.child_span_ids": ids})
    await p.fn("render_page", 0.05, 0.24, view, self_ms=200)
    for i, span_id in enumerate(ids):  # all of them inside render_page's time
        await perf.span(
            project,
            p.trace_id,
            "SELECT",
            t(0.06 + i * 0.02),
            0.015,
            parent=p.root,
            span_id=span_id,
            kind="CLIENT",
            attributes={"db.system": "postgresql", "db.statement": f"SELECT * FROM posts LIMIT 10 OFFSET {i}"},
        )
    result = builtin.analyze(await p.load(db))
    [n1] = [b for b in result["bottleneck_analysis"] if b["detector"] == "n_plus_one_query"]
    assert n1["function"] == "paginate"


async def test_waiting_on_a_lock_is_a_lock_wait(db: Any, perf: Any, t: Any, project: Any) -> None:
    p = await plant(perf, t, project, 0.250)
    view = await p.fn("reserve_stock", 0.0, 0.248, self_ms=5)
    await p.fn(
        "Semaphore.acquire",
        0.002,
        0.18,
        view,
        library=True,
        file=f"{STD}/threading.py",
        **{"pystrument.wait_time_ms": 178.0},
    )
    await p.fn("update_ledger", 0.185, 0.06, view, self_ms=60)
    result = builtin.analyze(await p.load(db))
    b = top(result)
    assert (b["detector"], b["type"], b["function"]) == ("lock_wait", "lock", "reserve_stock")
    assert "threading.py" in b["description"]
