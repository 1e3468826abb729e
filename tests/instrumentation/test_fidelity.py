"""Fidelity on code the SDK did not write: child spans claimed by the call that started them, templates named,
generated code classed by its owner, framework wrappers that never hold the view's time, starvation said aloud,
and loop wait told from awaiting."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gc
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.trace import SpanKind
from pystrument._frames import frame_info
from pystrument._tree import build_calls, collapse_library

INTERVAL = 0.005
SITE = "/venv/lib/python3.11/site-packages"


def attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def hex_id(span: Any) -> str:
    return format(span.context.span_id, "016x")


def claimer_of(t: Any, request: Any, child: Any) -> Any:
    claimers = [s for s in t.functions(request) if hex_id(child) in attrs(s).get("pystrument.child_span_ids", ())]
    assert len(claimers) == 1, [(s.name, attrs(s).get("pystrument.child_span_ids")) for s in t.functions(request)]
    return claimers[0]


def ancestor_names(spans: list[Any], leaf: str) -> list[str]:
    """Names of the function spans above the one whose name ends with ``leaf``, innermost first."""
    by_id = {s.context.span_id: s for s in spans}
    (node,) = [s for s in spans if s.name.endswith(leaf)]
    names = []
    while node.parent is not None and node.parent.span_id in by_id:
        node = by_id[node.parent.span_id]
        names.append(node.name)
    return names


def test_a_child_span_is_claimed_by_the_call_that_started_it(tracing: Any, helpers: SimpleNamespace) -> None:
    """Time overlap would put the query under whatever call the samples caught around it; the mark says who ran it."""
    t = tracing(min_span_ms=0)
    tracer = t.tracer

    def load_user() -> None:
        helpers.burn(0.02)
        with tracer.start_as_current_span("SELECT user", kind=SpanKind.CLIENT):
            time.sleep(0.002)

    def quick_lookup() -> None:  # shorter than an interval: only the mark sees it
        with tracer.start_as_current_span("SELECT flag", kind=SpanKind.CLIENT):
            pass

    def render_page() -> None:
        quick_lookup()
        helpers.burn(0.03)

    with tracer.start_as_current_span("GET /page", kind=SpanKind.SERVER):
        load_user()
        render_page()
    (request,) = t.requests()
    children = {s.name: s for s in t.spans() if s.kind == SpanKind.CLIENT}
    user = claimer_of(t, request, children["SELECT user"])
    assert user.name.endswith("load_user")
    assert user.start_time - INTERVAL * 1e9 <= children["SELECT user"].start_time
    assert children["SELECT user"].end_time <= user.end_time + INTERVAL * 1e9
    assert claimer_of(t, request, children["SELECT flag"]).name.endswith("quick_lookup")


def test_a_pruned_claimer_hands_its_claim_to_its_caller(tracing: Any, helpers: SimpleNamespace) -> None:
    t = tracing()  # default minimum span duration: two intervals
    tracer = t.tracer

    def quick_lookup() -> None:
        with tracer.start_as_current_span("SELECT flag", kind=SpanKind.CLIENT):
            pass

    def render_page() -> None:
        helpers.burn(0.02)
        quick_lookup()
        helpers.burn(0.02)

    with tracer.start_as_current_span("GET /page", kind=SpanKind.SERVER):
        render_page()
    (request,) = t.requests()
    (child,) = [s for s in t.spans() if s.kind == SpanKind.CLIENT]
    assert claimer_of(t, request, child).name.endswith("render_page")


def test_jinja_templates_are_named_and_classed_by_their_file(
    tracing: Any, helpers: SimpleNamespace, tmp_path: Path
) -> None:
    jinja2 = pytest.importorskip("jinja2")
    (tmp_path / "page.html").write_text("<p>{{ slow() }}</p>")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(tmp_path)))
    t = tracing(min_span_ms=0)

    def slow_value() -> str:
        helpers.burn(0.03)
        return "x"

    with t.tracer.start_as_current_span("GET /jinja", kind=SpanKind.SERVER):
        env.get_template("page.html").render(slow=slow_value)
    (request,) = t.requests()
    spans = helpers.by_name(t.functions(request))
    (template,) = spans["template page.html"]
    assert attrs(template)["pystrument.template"] == "page.html"
    assert attrs(template)["pystrument.library"] is False
    # The engine's own calls (Jinja's Context.call) are the render's time: the callback sits right under it.
    assert ancestor_names(t.functions(request), "slow_value")[:1] == ["template page.html"]


def test_django_templates_are_named_calls_that_claim_their_queries(
    tracing: Any, helpers: SimpleNamespace, tmp_path: Path
) -> None:
    pytest.importorskip("django")
    from django.conf import settings

    if not settings.configured:
        import django

        settings.configure()
        django.setup()
    from django.template import Context, Engine

    (tmp_path / "list.html").write_text("{% for x in rows %}{{ x }}{% endfor %}{{ slow }}")
    engine = Engine(dirs=[str(tmp_path)])
    template = engine.get_template("list.html")
    t = tracing(min_span_ms=0)
    tracer = t.tracer

    def rows() -> list[int]:
        with tracer.start_as_current_span("SELECT rows", kind=SpanKind.CLIENT):
            return list(range(3))

    def slow_value() -> str:
        helpers.burn(0.03)
        return "x"

    with tracer.start_as_current_span("GET /warm", kind=SpanKind.SERVER):
        pass  # the first request installs the hooks (Django's template engine is imported by now)
    with tracer.start_as_current_span("GET /django", kind=SpanKind.SERVER):
        template.render(Context({"rows": rows, "slow": slow_value}))
    request = next(r for r in t.requests() if r.name == "GET /django")
    (rendered,) = [s for s in t.functions(request) if attrs(s).get("pystrument.template") == "list.html"]
    assert rendered.name == "template list.html" and attrs(rendered)["pystrument.library"] is False
    assert "template list.html" in ancestor_names(t.functions(request), "slow_value")
    (query,) = [s for s in t.spans() if s.name == "SELECT rows"]
    assert claimer_of(t, request, query).name.endswith("<locals>.rows")  # called by the template, run by rows()


def _generated(globals_: dict[str, Any]) -> Any:
    exec("def generated():\n    return sys._getframe()\n", globals_)
    return globals_["generated"]()


@pytest.mark.parametrize(("module", "library"), [("json", True), (__name__, False), ("no.such.module", True)])
def test_generated_code_is_classed_by_the_module_it_runs_for(module: str, library: bool) -> None:
    frame = _generated({"__name__": module, "sys": sys})
    assert frame.f_code.co_filename == "<string>"
    (call,) = build_calls([([frame_info(frame.f_code, None, frame)], 0.01)], 0.0)
    assert call.library is library


def _info(name: str, path: str) -> str:
    return f"{name}\x00{path}\x001"


INNER = _info("convert_exception_to_response.<locals>.inner", f"{SITE}/django/core/handlers/exception.py")
GET_RESPONSE = _info("BaseHandler._get_response", f"{SITE}/django/core/handlers/base.py")
VIEW = _info("ModelAdmin.changelist_view", f"{SITE}/django/contrib/admin/options.py")
QUERYSET = _info("QuerySet.__len__", f"{SITE}/django/db/models/query.py")
COPY = _info("deepcopy", copy.__file__)
SERVE = _info("serve", f"{SITE}/wagtail/views.py")
RENDITION = _info("Image.get_rendition", f"{SITE}/wagtail/images/models.py")
RESIZE = _info("Image.resize", f"{SITE}/PIL/Image.py")


def test_the_framework_never_holds_the_view_s_time_as_its_own() -> None:
    """Django's middleware chain and handler collapse into one call, but the view it dispatches to stays a call
    of its own (Django's admin views are Django's code too), so the chain keeps only its own time."""
    records = [
        ([INNER], 0.005),
        ([INNER, GET_RESPONSE], 0.005),
        ([INNER, GET_RESPONSE, VIEW], 0.05),
        ([INNER, GET_RESPONSE, VIEW, QUERYSET], 0.04),
        ([INNER, GET_RESPONSE, VIEW, COPY], 0.02),
    ]
    (inner,) = collapse_library(build_calls(records, 0.0))
    assert inner.self_time == pytest.approx(0.01)
    (view,) = inner.children
    assert view.name == "ModelAdmin.changelist_view" and view.self_time == pytest.approx(0.11)  # Django, stdlib


def test_a_call_into_another_package_stays_visible() -> None:
    records = [
        ([INNER], 0.005),
        ([INNER, SERVE], 0.01),
        ([INNER, SERVE, RENDITION], 0.02),
        ([INNER, SERVE, RENDITION, RESIZE], 0.5),
    ]
    (inner,) = collapse_library(build_calls(records, 0.0))
    (serve,) = inner.children
    assert serve.name == "serve" and [c.name for c in serve.children] == ["Image.resize"]
    assert serve.self_time == pytest.approx(0.03)  # wagtail's own rendition code folded into wagtail's entry


def test_fastapi_and_starlette_are_one_framework_chain() -> None:
    """A FastAPI request passes between Starlette's and FastAPI's middleware and routing a dozen times before the
    view: one call for the chain, then the view (below the dispatcher), not a call per package switch. A call into
    another package under it (the database driver) still stays."""
    errors = _info("ServerErrorMiddleware.__call__", f"{SITE}/starlette/middleware/errors.py")
    exit_stack = _info("AsyncExitStackMiddleware.__call__", f"{SITE}/fastapi/middleware/asyncexitstack.py")
    router = _info("Router.__call__", f"{SITE}/starlette/routing.py")
    api_router = _info("APIRouter.app", f"{SITE}/fastapi/routing.py")
    dispatch = _info("request_response.<locals>.app.<locals>.app", f"{SITE}/starlette/routing.py")
    view = _info("list_heroes", "/srv/app/main.py")
    session = _info("AsyncSession.execute", f"{SITE}/sqlalchemy/ext/asyncio/session.py")
    driver = _info("Cursor._execute", f"{SITE}/asyncpg/cursor.py")
    chain = [errors, exit_stack, router, api_router, dispatch]
    records = [
        (chain[:1], 0.002),
        (chain[:3], 0.001),
        (chain[:4], 0.001),
        ([*chain, view], 0.004),
        ([*chain, view, session], 0.01),
        ([*chain, view, session, driver], 0.03),
    ]
    (top,) = collapse_library(build_calls(records, 0.0))
    assert top.name == "ServerErrorMiddleware.__call__" and top.self_time == pytest.approx(0.004)
    (handler,) = top.children
    assert handler.name == "list_heroes"
    (execute,) = handler.children
    assert [c.name for c in execute.children] == ["Cursor._execute"]


def test_a_request_without_samples_says_why(tracing: Any, helpers: SimpleNamespace) -> None:
    """The sampler needs the GIL: a CPU-bound request that never lets it go gets no sample, and says so."""
    t = tracing()
    previous = sys.getswitchinterval()
    with t.tracer.start_as_current_span("GET /ok", kind=SpanKind.SERVER):
        helpers.burn(0.05)
    sys.setswitchinterval(1.0)
    try:
        with t.tracer.start_as_current_span("GET /hog", kind=SpanKind.SERVER):
            helpers.burn(0.06)
    finally:
        sys.setswitchinterval(previous)
    requests = {r.name: attrs(r) for r in t.requests()}
    assert "pystrument.profile.starved" not in requests["GET /ok"]
    hog = requests["GET /hog"]
    assert hog["pystrument.profile.samples"] < 2
    assert hog["pystrument.profile.starved"].startswith("gil:"), hog


def test_the_server_instrumentations_own_internal_spans_are_not_marked(tracing: Any, helpers: SimpleNamespace) -> None:
    """ASGI's ``http send`` is started by the server instrumentation's wrapper from below the app's frames: no call of
    the app claims it (its mark walked the whole middleware stack). A span of the app's own tracer still is claimed,
    and so is a CLIENT span of the server's tracer."""
    t = tracing(min_span_ms=0)
    server = t.tracer
    app = t.provider.get_tracer("the app")

    def handler() -> None:
        helpers.burn(0.02)
        with app.start_as_current_span("compute"):
            pass
        with server.start_as_current_span("call out", kind=SpanKind.CLIENT):
            pass
        helpers.burn(0.02)
        with server.start_as_current_span("GET / http send"):  # INTERNAL, the request span's own tracer
            pass

    with server.start_as_current_span("GET /", kind=SpanKind.SERVER):
        handler()
    (request,) = t.requests()
    children = {s.name: s for s in t.spans() if s.name in ("compute", "call out", "GET / http send")}
    assert claimer_of(t, request, children["compute"]).name.endswith("handler")
    assert claimer_of(t, request, children["call out"]).name.endswith("handler")
    claimed = {c for s in t.functions(request) for c in attrs(s).get("pystrument.child_span_ids", ())}
    assert hex_id(children["GET / http send"]) not in claimed


def test_a_request_span_started_before_the_sdk_was_told_says_so(tracing: Any) -> None:
    """Flask's instrumentation starts the request span in a ``before_request`` hook with the WSGI call's time: what
    ran before (the first request's lazy set-up) could not be sampled, and the span says why it has no samples."""
    t = tracing()
    started = time.time_ns() - 120_000_000
    with t.tracer.start_as_current_span("GET /late", kind=SpanKind.SERVER, start_time=started):
        pass
    (late,) = [attrs(r) for r in t.requests()]
    assert late["pystrument.profile.samples"] < 2
    assert late["pystrument.profile.starved"].startswith("late: the request span started 12"), late


def test_a_request_ready_while_another_holds_the_loop_counts_loop_wait(tracing: Any, helpers: SimpleNamespace) -> None:
    t = tracing()

    async def victim() -> None:
        with t.tracer.start_as_current_span("GET /victim", kind=SpanKind.SERVER):
            await asyncio.sleep(0.01)

    async def culprit() -> None:
        await asyncio.sleep(0.001)
        with t.tracer.start_as_current_span("GET /culprit", kind=SpanKind.SERVER):
            helpers.burn(0.12)  # holds the loop: the victim's sleep ends meanwhile

    async def main() -> None:
        await asyncio.gather(victim(), culprit())

    asyncio.run(main())
    requests = {r.name: attrs(r) for r in t.requests()}
    victim_attrs, culprit_attrs = requests["GET /victim"], requests["GET /culprit"]
    assert victim_attrs["pystrument.loop_wait_ms"] >= 60, victim_attrs
    assert victim_attrs["pystrument.loop"] == culprit_attrs["pystrument.loop"]
    assert culprit_attrs.get("pystrument.loop_wait_ms", 0) < 20


def test_a_running_task_tells_its_thread_s_waits_from_its_work(tracing: Any, helpers: SimpleNamespace) -> None:
    """A coroutine that runs while its loop thread is off the CPU (a blocking call, a wait for the GIL or a core)
    holds the loop, but does no work of its own: its self time says which part was waiting, as a thread's does."""
    # Earlier tests' garbage collected first: a collection set off in the sampler thread during the blocking call would
    # be a pause there, neither the call's wait nor its work (in a full run, one in two runs then fell below 0.6).
    gc.collect()
    t = tracing(min_span_ms=0)

    def blocks() -> None:
        time.sleep(0.12)  # off the CPU, in the task's own frame

    def computes() -> None:
        helpers.burn(0.12)

    async def handler() -> None:
        blocks()
        computes()

    async def main() -> None:
        with t.tracer.start_as_current_span("GET /mixed", kind=SpanKind.SERVER):
            await handler()

    asyncio.run(main())
    request = next(r for r in t.requests() if r.name == "GET /mixed")
    by_name = {s.name.rsplit(".", 1)[-1]: attrs(s) for s in t.functions(request)}
    blocked, busy = by_name["blocks"], by_name["computes"]
    assert blocked.get("pystrument.wait_time_ms", 0) >= 0.6 * blocked["pystrument.self_time_ms"], blocked
    assert busy.get("pystrument.wait_time_ms", 0) <= 0.3 * busy["pystrument.self_time_ms"], busy


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the run-queue delay is read from Linux's schedstat")
def test_time_without_a_cpu_core_is_neither_work_nor_a_wait(tracing: Any, helpers: SimpleNamespace) -> None:
    """On a machine busier than its cores a computing thread waits in the kernel's run queue: that time is told
    apart (``pystrument.cpu_wait_ms``), so the code is neither said to wait on something nor to work that long."""
    cpu = min(os.sched_getaffinity(0))
    rival = subprocess.Popen(
        [sys.executable, "-c", f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"],
    )
    t = tracing(min_span_ms=0)
    with t.tracer.start_as_current_span("GET /warm", kind=SpanKind.SERVER):
        time.sleep(0.01)  # the sampler thread runs
    threads = {int(tid): os.sched_getaffinity(int(tid)) for tid in os.listdir("/proc/self/task")}
    try:
        for tid in threads:  # every thread of this process (the sampler too) shares one core with the rival
            os.sched_setaffinity(tid, {cpu})
        time.sleep(0.1)
        with t.tracer.start_as_current_span("GET /crowded", kind=SpanKind.SERVER):
            helpers.burn(0.3)
    finally:
        for tid, before in threads.items():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, before)
        rival.kill()
        rival.wait()
    (request,) = [r for r in t.requests() if r.name == "GET /crowded"]
    functions = [attrs(s) for s in t.functions(request)]
    own = sum(a["pystrument.self_time_ms"] for a in functions)
    queued = sum(a.get("pystrument.cpu_wait_ms", 0) for a in functions)
    waited = sum(a.get("pystrument.wait_time_ms", 0) for a in functions)
    # About half of it, sharing a core with one rival. The rest of the time off the CPU is a wait for the GIL, which
    # the sampler takes every interval (itself slower to run on a loaded machine): most of it is the queue's.
    assert queued >= 0.25 * own, (queued, waited, own)
    assert queued >= 0.5 * (queued + waited), (queued, waited, own)


def test_work_in_a_greenlet_shows_under_the_coroutine_that_awaits_it(tracing: Any, helpers: SimpleNamespace) -> None:
    """SQLAlchemy's asyncio layer runs the ORM's sync code in a greenlet whose outermost frame has no caller: the
    samples taken there continue in the frame that switched to it, inside the request."""
    greenlet = pytest.importorskip("greenlet")
    t = tracing(min_span_ms=0)

    def orm_work() -> None:
        for _ in range(3):
            helpers.burn(0.02)
            greenlet.getcurrent().parent.switch(0.005)

    async def greenlet_spawn() -> None:
        child = greenlet.greenlet(orm_work)
        wait = child.switch()
        while not child.dead:
            await asyncio.sleep(wait)
            wait = child.switch()

    async def main() -> None:
        with t.tracer.start_as_current_span("GET /warm", kind=SpanKind.SERVER):
            pass  # installs the hooks now that greenlet is imported
        with t.tracer.start_as_current_span("GET /orm", kind=SpanKind.SERVER):
            await greenlet_spawn()

    asyncio.run(main())
    request = next(r for r in t.requests() if r.name == "GET /orm")
    functions = t.functions(request)
    work = [s for s in functions if s.name.endswith("orm_work")]
    assert work, [s.name for s in functions]  # 60 ms of the ORM's work: without the hop, no sample reaches it
    by_id = {s.context.span_id: s for s in functions}
    for span in work:
        chain = []
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            chain.append(span.name)
        assert any(name.endswith("greenlet_spawn") for name in chain), chain


OTEL_PROXY = _info("TracedCursorProxy.execute", f"{SITE}/opentelemetry/instrumentation/dbapi/__init__.py")
SQLITE = _info("SQLiteCursorWrapper.execute", f"{SITE}/django/db/backends/sqlite3/base.py")
LOCAL = _info("Local.__getattr__", f"{SITE}/asgiref/local.py")


def test_tracing_and_context_plumbing_never_stay_calls_of_their_own() -> None:
    """OpenTelemetry's cursor proxy and asgiref's Local work for their caller: Django's query below the proxy is
    Django's own time again, and no translation lookup holds the samples its lock drew."""
    records = [
        ([INNER, GET_RESPONSE, VIEW], 0.01),
        ([INNER, GET_RESPONSE, VIEW, OTEL_PROXY, SQLITE], 0.03),
        ([INNER, GET_RESPONSE, VIEW, LOCAL], 0.02),
    ]
    (inner,) = collapse_library(build_calls(records, 0.0))
    (view,) = inner.children
    names = [c.name for c in view.walk()]
    assert "TracedCursorProxy.execute" not in names and "Local.__getattr__" not in names, names
    # The query, half of the view's time, stays named as the chain's hot end; the lookup is the view's own time.
    assert names == ["ModelAdmin.changelist_view", "SQLiteCursorWrapper.execute"]
    assert view.self_time == pytest.approx(0.03)


def test_a_mark_inside_a_pause_keeps_its_claim() -> None:
    """A child span that starts while a pause is believed still under way (its end is read late) is claimed all
    the same: the mark's record survives the cut."""
    from pystrument._frames import MARK
    from pystrument._gc import with_pauses

    records = [(["app", "view"], 0.01), (["app", "view", MARK + "0123456789abcdef"], 0.05), (["app", "view"], 0.1)]
    out = with_pauses(records, 0.0, None, [(0.02, 0.09, 2)])
    (app,) = build_calls(out, 0.0)
    (view,) = app.children
    assert view.claims == ["0123456789abcdef"]


LOGIN = _info("LoginView.post", f"{SITE}/django/contrib/auth/views.py")
AUTH = _info("authenticate", f"{SITE}/django/contrib/auth/__init__.py")
CHECK = _info("check_password", f"{SITE}/django/contrib/auth/hashers.py")
PBKDF2 = _info("pbkdf2", f"{SITE}/django/utils/crypto.py")


def test_the_hot_end_of_a_library_chain_stays_named() -> None:
    """A login view spends its time in the password hasher, deep inside Django: the chain collapses into the view,
    but the hasher, where the time went, stays a call of its own."""
    records = [
        ([INNER, GET_RESPONSE, VIEW], 0.01),
        ([INNER, GET_RESPONSE, VIEW, LOGIN, AUTH], 0.005),
        *[([INNER, GET_RESPONSE, VIEW, LOGIN, AUTH, CHECK, PBKDF2], 0.005)] * 40,
        ([INNER, GET_RESPONSE, VIEW, LOGIN], 0.005),
    ]
    (inner,) = collapse_library(build_calls(records, 0.0))
    (view,) = inner.children
    (hasher,) = view.children
    assert hasher.name == "pbkdf2" and hasher.self_time == pytest.approx(0.2)
    assert view.self_time == pytest.approx(0.02)


def test_a_short_call_around_a_template_render_is_not_pruned_with_it() -> None:
    """``render_template`` lasting less than the minimum span duration once dropped its subtree, template included."""
    from pystrument._tree import prune

    render = _info("render_template", f"{SITE}/flask/templating.py")
    template = "template list.html\x00/app/templates/list.html\x000\x01o0\x01tlist.html"
    records = [([VIEW], 0.05), ([VIEW, render, template], 0.0), ([VIEW, render], 0.002), ([VIEW], 0.05)]
    calls = prune(collapse_library(build_calls(records, 0.0)), min_duration=0.01, max_calls=100)
    names = [c.name for root in calls for c in root.walk()]
    assert "template list.html" in names and "render_template" in names, names


def test_a_claimer_contains_its_child_when_the_request_span_started_early(
    tracing: Any, helpers: SimpleNamespace
) -> None:
    """Flask's instrumentation gives the request span the WSGI call's start, tens of milliseconds before pystrument
    is told on a crowded machine. Function spans were timed as if the recording had started at the span's start, so
    every call showed that much early, and a query claimed by a call ended after it."""
    t = tracing(min_span_ms=0)
    tracer = t.tracer

    def load_order() -> None:
        helpers.burn(0.02)
        with tracer.start_as_current_span("SELECT order", kind=SpanKind.CLIENT):
            time.sleep(0.03)  # blocked in the driver's C call until the query ends

    def render() -> None:
        helpers.burn(0.03)

    started = time.time_ns() - 40_000_000
    with tracer.start_as_current_span("GET /order", kind=SpanKind.SERVER, start_time=started):
        load_order()
        render()
    (request,) = t.requests()
    (query,) = [s for s in t.spans() if s.kind == SpanKind.CLIENT]
    claimer = claimer_of(t, request, query)
    assert claimer.name.endswith("load_order")
    assert claimer.start_time <= query.start_time and query.end_time <= claimer.end_time
    # The next call starts after the query has ended, not the 40 ms of the late start before.
    (renders,) = [s for s in t.functions(request) if s.name.endswith("render")]
    assert renders.start_time >= query.end_time - INTERVAL * 1e9


APP_VIEW = _info("order_view", "/srv/app/views.py")
LOAD = _info("load_order", "/srv/app/models.py")
QUEUE_GET = _info("Queue.get", "/usr/lib/python3.11/queue.py")
RENDER = _info("render", "/srv/app/views.py")
QUERY_ID = "00000000000000aa"


def _claimer(calls: list[Any], claim: str) -> tuple[Any, list[Any]]:
    """The call claiming ``claim`` and its callers, outermost first."""
    stack = [(call, [call]) for call in calls]
    while stack:
        call, path = stack.pop()
        if claim in call.claims:
            return call, path
        stack.extend((child, [*path, child]) for child in call.children)
    raise AssertionError(f"no call claims {claim}")


def test_a_mark_in_the_rest_of_a_wait_is_placed_at_its_time() -> None:
    """A blocked run's resumption sample (``ThreadLane._flush``) carries only the rest of the blocked stack's wait; a
    mark inside it was placed at the next sample, after the child span it marks had started, and its claimer began
    after the span. It is placed at its own time, and the claimer holds the span from its start to its end."""
    from pystrument import _emit
    from pystrument._frames import END_CLAIM
    from pystrument._lanes import Lane

    lane = Lane("", 0.0, main=True)
    blocked, resumed = (APP_VIEW, QUEUE_GET), (APP_VIEW, RENDER)
    lane.samples = [(0.01, blocked), (0.05, blocked), (0.06, resumed)]
    lane.cpu = [0.01, 0.0, 0.01]
    lane.counts = {1: 0}  # the second sample stands for the rest of the first one's wait only
    lane.mark(0.02, (APP_VIEW, LOAD), QUERY_ID)
    lane.mark(0.04, (APP_VIEW, LOAD), END_CLAIM + QUERY_ID)
    lane.close(0.06)
    calls = _emit.build(SimpleNamespace(lanes=[lane], gc_pauses=()), 0.0, 100)  # type: ignore[arg-type]
    claimer, path = _claimer(calls, QUERY_ID)
    assert claimer.name == "load_order"
    assert claimer.start == pytest.approx(0.02) and claimer.end >= 0.04
    assert all(c.start <= claimer.start and c.end >= claimer.end for c in path)


def test_a_claimer_and_its_callers_are_stretched_over_its_span_never_the_span() -> None:
    """However a claim moved (a library chain absorbed into its owner, a pruned call into its caller, a lane's samples
    late to show the call), the call holding it covers the child span's marks, start and end, and so do its callers."""
    from pystrument._tree import cover_claims

    records = [([APP_VIEW], 0.03), ([APP_VIEW, LOAD], 0.02), ([APP_VIEW], 0.05)]
    (view,) = build_calls(records, 0.0)
    (load,) = view.children
    load.claims.append(QUERY_ID)
    cover_claims([view], {QUERY_ID: (0.02, 0.12)})
    assert (load.start, load.end) == (pytest.approx(0.02), pytest.approx(0.12))
    assert (view.start, view.end) == (pytest.approx(0.0), pytest.approx(0.12))


def test_a_claimer_holds_its_span_across_a_garbage_collection_pause() -> None:
    """A collection stops the thread between a query's start and end: the pause is cut into the timeline at its own
    time, below the claimer, which still runs from the query's start to its end."""
    from pystrument import _emit
    from pystrument._frames import END_CLAIM
    from pystrument._lanes import Lane

    lane = Lane("", 0.0, main=True)
    loading, rendering = (APP_VIEW, LOAD), (APP_VIEW, RENDER)
    lane.samples = [(0.01, (APP_VIEW,)), (0.2, loading), (0.21, rendering), (0.3, rendering)]
    lane.mark(0.015, loading, QUERY_ID)
    lane.mark(0.19, loading, END_CLAIM + QUERY_ID)
    lane.close(0.3)
    recording = SimpleNamespace(lanes=[lane], gc_pauses=[(0.05, 0.15, 2)])
    calls = _emit.build(recording, 0.0, 100)  # type: ignore[arg-type]
    claimer, path = _claimer(calls, QUERY_ID)
    assert claimer.name == "load_order"
    assert claimer.start <= 0.015 and claimer.end >= 0.19
    (pause,) = [c for c in claimer.walk() if c.pause]
    assert (pause.start, pause.end) == (pytest.approx(0.05), pytest.approx(0.15))
    (render,) = [c for c in path[0].children if c.name == "render"]
    assert render.start >= 0.19


def test_child_span_times_come_back_unchanged_through_the_recording_s_clock(tracing: Any) -> None:
    """A child span's start and end, marked on the sampler's clock, come back as those very times on the function
    span that stretches to them: one anchor converts both ways, whenever the request span says it started."""
    from pystrument._recording import Recording

    t = tracing()
    started = time.time_ns() - 50_000_000
    span = t.tracer.start_span("GET /x", kind=SpanKind.SERVER, start_time=started)
    recording = Recording(span, 0.005, False, sys._getframe())
    try:
        now = time.perf_counter()
        for at_ns in (time.time_ns() - 3_000_000, time.time_ns() - 20_000_000):
            assert abs(recording.to_ns(recording.perf_at(at_ns, now)) - at_ns) <= 1
        # The recording started when it was made, not at the span's earlier start.
        assert recording.to_ns(recording.start_perf) - started >= 50_000_000
    finally:
        span.end()


def test_a_claim_of_a_dropped_top_level_call_is_not_lost() -> None:
    """A child span's mark seen between two samples of another stack (the request thread preempted in the framework's
    hook, a clock read late) makes a top-level call of no time of its own, which pruning dropped with its claim: the
    query was then claimed by no call. The same function seen next takes the claim and is stretched over the query."""
    from pystrument import _emit
    from pystrument._frames import END_CLAIM
    from pystrument._lanes import Lane

    hook = _info("Span.set_attribute", f"{SITE}/opentelemetry/sdk/trace/__init__.py")
    lane = Lane("", 0.0, main=True)
    lane.samples = [(0.01, (hook,)), (0.03, (hook,)), (0.06, (APP_VIEW, LOAD)), (0.08, (APP_VIEW, RENDER))]
    lane.mark(0.02, (APP_VIEW, LOAD), QUERY_ID)
    lane.mark(0.025, (APP_VIEW, LOAD), END_CLAIM + QUERY_ID)
    lane.close(0.08)
    calls = _emit.build(SimpleNamespace(lanes=[lane], gc_pauses=()), 0.01, 100)  # type: ignore[arg-type]
    claimer, _ = _claimer(calls, QUERY_ID)
    assert claimer.name == "order_view"
    assert claimer.start <= 0.02 and claimer.end >= 0.025


def test_a_request_span_ends_when_it_is_ended_not_after_the_sdk_s_work(tracing: Any) -> None:
    """The SDK finishes a request's profile inside the span's ``end``: a thread preempted there (a crowded machine)
    must not make the span longer than what the SDK saw."""
    t = tracing()
    original = t.processor._finish_recording

    def slow_finish(recording: Any, span: Any) -> None:
        original(recording, span)
        time.sleep(0.05)  # as if preempted between the SDK's work and the span's end

    t.processor._finish_recording = slow_finish  # type: ignore[method-assign]
    with t.tracer.start_as_current_span("GET /ends", kind=SpanKind.SERVER):
        time.sleep(0.02)
    (request,) = t.requests()
    assert (request.end_time - request.start_time) / 1e9 < 0.045, request.end_time - request.start_time
