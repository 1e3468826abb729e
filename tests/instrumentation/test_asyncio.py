"""Requests on an event loop: concurrent tasks never mix, work handed to threads and child tasks follows the
request. Each test runs its own loop (``asyncio.run``) so the loops of other tests are left alone."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import anyio.to_thread
import pystrument
import pytest
from asgiref.sync import ThreadSensitiveContext, async_to_sync, sync_to_async
from opentelemetry.trace import SpanKind

SAMPLERS = ["default", "pyinstrument"]
SDK_DIR = os.path.dirname(pystrument.__file__) + os.sep


def within(measured: float, truth: float, interval: float = 0.005) -> bool:
    return abs(measured - truth) <= max(0.2 * truth, 2 * interval)


async def handler_template(burn: Callable[[float], int]) -> None:
    await asyncio.sleep(0.03)
    burn(0.01)
    await asyncio.sleep(0.02)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_concurrent_tasks_on_one_loop_never_mix(sampler: str, tracing: Any, helpers: SimpleNamespace) -> None:
    t = tracing(sampler=sampler, min_span_ms=0)
    handlers = [helpers.renamed(handler_template, f"handler_{i}") for i in range(8)]

    async def request(i: int) -> None:
        with t.tracer.start_as_current_span(f"GET /{i}", kind=SpanKind.SERVER):
            await handlers[i](helpers.burn)

    async def main() -> None:
        await asyncio.gather(*(request(i) for i in range(8)))

    asyncio.run(main())
    requests = {r.name: r for r in t.requests()}
    assert len(requests) == 8
    for i in range(8):
        assert requests[f"GET /{i}"].attributes["pystrument.async"] is True
        spans = t.functions(requests[f"GET /{i}"])
        user = {s.name for s in spans if not s.attributes["pystrument.library"]}
        assert f"handler_{i}" in user and user <= {f"handler_{i}", "burn"}, user
        (handler,) = [s for s in spans if s.name == f"handler_{i}"]
        assert helpers.parent_id(handler) == helpers.span_id(requests[f"GET /{i}"])
        # The handler lives as long as its request (>= 60 ms) however the loop interleaves the others.
        assert helpers.duration(handler) >= 0.045
        # Most of it is spent awaiting (its own sleeps and other tasks' turns).
        awaited = sum(s.attributes.get("pystrument.await_time_ms", 0) for s in spans) / 1000
        assert awaited >= 0.03


async def awaited_sleep() -> None:
    await asyncio.sleep(0.05)


def test_an_awaiting_task_is_sampled_from_its_await_chain(tracing: Any, helpers: SimpleNamespace) -> None:
    t = tracing(min_span_ms=0)

    async def main() -> None:
        with t.tracer.start_as_current_span("GET /wait", kind=SpanKind.SERVER):
            await awaited_sleep()

    asyncio.run(main())
    spans = helpers.by_name(t.functions())
    (mine,), (sleep,) = spans["awaited_sleep"], spans["sleep"]
    assert within(helpers.duration(mine), 0.05)
    assert sleep.attributes["pystrument.library"] is True and helpers.parent_id(sleep) == helpers.span_id(mine)
    assert sleep.attributes["pystrument.await_time_ms"] >= 35


def blocking_work(burn: Callable[[float], int], truth: dict[str, float]) -> None:
    t0 = time.perf_counter()
    time.sleep(0.04)
    burn(0.02)  # not 10 ms: see pool_work in test_processor.py (pyinstrument's coarse clock loses such a tail)
    truth[sys._getframe().f_code.co_name] = time.perf_counter() - t0


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("handoff", ["run_in_executor", "anyio.to_thread"])
def test_threadpool_handlers_belong_to_their_request(
    sampler: str, handoff: str, tracing: Any, helpers: SimpleNamespace
) -> None:
    """FastAPI ``def`` routes and Django sync views: the span starts on the loop, the handler runs in a pool."""
    t = tracing(sampler=sampler, min_span_ms=0)
    workers = [helpers.renamed(blocking_work, f"blocking_{i}") for i in range(3)]
    asyncio.run(anyio.to_thread.run_sync(int))  # anyio imports its asyncio backend on first use: not in a request
    # A full collection of the test process's heap (50-100 ms) landing in these 70 ms requests would leave the GIL to
    # chance for what follows it; pauses have their own tests (test_gc.py).
    gc.collect()
    truth: dict[str, float] = {}

    async def request(i: int) -> None:
        with t.tracer.start_as_current_span(f"GET /{i}", kind=SpanKind.SERVER):
            await asyncio.sleep(0.01)
            if handoff == "run_in_executor":
                await asyncio.get_running_loop().run_in_executor(None, workers[i], helpers.burn, truth)
            else:
                await anyio.to_thread.run_sync(workers[i], helpers.burn, truth)

    async def main() -> None:
        await asyncio.gather(*(request(i) for i in range(3)))

    asyncio.run(main())
    requests = {r.name: r for r in t.requests()}
    for i in range(3):
        spans = t.functions(requests[f"GET /{i}"])
        # The hand-off wrappers are pystrument's own frames: never shown, on the loop or in the worker.
        assert not [s.name for s in spans if s.attributes["code.file.path"].startswith(SDK_DIR)]
        user = [s for s in spans if not s.attributes["pystrument.library"] and s.name != "burn"]
        assert [s.name for s in user] == [f"blocking_{i}"]
        # Three workers share the GIL: the truth is each one's own wall time.
        assert within(helpers.duration(user[0]), truth[f"blocking_{i}"])
        assert helpers.contains(requests[f"GET /{i}"], user[0])
        # On a loop the CPU figure is the worker's thread time plus the sampled time the task ran on the loop.
        assert requests[f"GET /{i}"].attributes["pystrument.cpu_time_source"] == "samples"
        assert 1 <= requests[f"GET /{i}"].attributes["pystrument.cpu_time_ms"] <= 60


async def child_a(truth: dict[str, float]) -> None:
    t0 = time.perf_counter()
    await asyncio.sleep(0.04)
    truth["child_a"] = time.perf_counter() - t0


async def child_b(burn: Callable[[float], int], truth: dict[str, float]) -> None:
    t0 = time.perf_counter()
    await asyncio.sleep(0.01)
    burn(0.02)
    truth["child_b"] = time.perf_counter() - t0


async def fan_out(burn: Callable[[float], int], truth: dict[str, float]) -> None:
    await asyncio.gather(child_a(truth), child_b(burn, truth))


def test_child_tasks_are_adopted_by_the_request(tracing: Any, helpers: SimpleNamespace) -> None:
    t = tracing(min_span_ms=0)
    truth: dict[str, float] = {}

    async def main() -> None:
        with t.tracer.start_as_current_span("GET /fan", kind=SpanKind.SERVER):
            await fan_out(helpers.burn, truth)
        with t.tracer.start_as_current_span("GET /other", kind=SpanKind.SERVER):
            await child_a({})

    asyncio.run(main())
    requests = {r.name: r for r in t.requests()}
    spans = helpers.by_name(t.functions(requests["GET /fan"]))
    (fan,), (a,), (b,) = spans["fan_out"], spans["child_a"], spans["child_b"]
    assert helpers.parent_id(a) == helpers.span_id(fan) and helpers.parent_id(b) == helpers.span_id(fan)
    assert within(helpers.duration(a), truth["child_a"]), (helpers.duration(a), truth)
    assert within(helpers.duration(b), truth["child_b"]), (helpers.duration(b), truth)
    assert a.attributes["pystrument.thread"].startswith("Task-")
    assert [s.name for s in t.functions(requests["GET /other"]) if not s.attributes["pystrument.library"]] == [
        "child_a"
    ]


class FragileTask(asyncio.Task):  # type: ignore[type-arg]
    """A third-party task type whose introspection breaks after a while."""

    broken = False

    def done(self) -> bool:
        if FragileTask.broken:
            raise RuntimeError("introspection broke")
        return super().done()


def test_a_failing_sampler_never_reaches_the_request(
    tracing: Any, helpers: SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    t = tracing(min_span_ms=0)

    async def request() -> str:
        with t.tracer.start_as_current_span("GET /fragile", kind=SpanKind.SERVER):
            FragileTask.broken = True
            await asyncio.sleep(0.03)
            FragileTask.broken = False
        return "ok"

    async def main() -> str:
        asyncio.get_running_loop().set_task_factory(lambda loop, coro, **kw: FragileTask(coro, loop=loop, **kw))
        return await asyncio.get_running_loop().create_task(request())

    with caplog.at_level(logging.WARNING, logger="pystrument"):
        assert asyncio.run(main()) == "ok"
    assert "sampling a request failed" in caplog.text
    # The sampler thread survived: the next request is profiled.
    with t.tracer.start_as_current_span("GET /after", kind=SpanKind.SERVER):
        time.sleep(0.03)
    (after,) = [r for r in t.requests() if r.name == "GET /after"]
    assert after.attributes["pystrument.profile.samples"] >= 3


async def async_view_body(burn: Callable[[float], int], truth: dict[str, float]) -> None:
    t0 = time.perf_counter()
    await asyncio.sleep(0.03)
    burn(0.01)
    truth[sys._getframe().f_code.co_name] = time.perf_counter() - t0


def sync_view_body() -> None:
    time.sleep(0.03)


def django_style_request(t: Any, name: str, view: Callable[[], Any]) -> None:
    """What Django's OTel middleware does under ASGI or WSGI: the request span starts in a thread, and an async view
    runs through asgiref's ``async_to_sync``."""
    with t.tracer.start_as_current_span(name, kind=SpanKind.SERVER):
        view()


def test_async_to_sync_under_asgi_adopts_the_view_task(tracing: Any, helpers: SimpleNamespace) -> None:
    """Django under ASGI: middleware in asgiref's thread (one per request), the async view back on the main loop."""
    t = tracing(min_span_ms=0)
    truth: dict[str, float] = {}

    async def request(name: str, view: Callable[[], Any]) -> None:
        async with ThreadSensitiveContext():
            await sync_to_async(django_style_request, thread_sensitive=True)(t, name, view)

    async def main() -> None:
        await asyncio.gather(
            request("GET /async", lambda: async_to_sync(async_view_body)(helpers.burn, truth)),
            request("GET /sync", sync_view_body),
        )

    asyncio.run(main())
    requests = {r.name: r for r in t.requests()}
    assert requests["GET /async"].attributes["pystrument.async"] is True
    assert "pystrument.async" not in requests["GET /sync"].attributes  # false: left out
    spans = helpers.by_name(t.functions(requests["GET /async"]))
    (view,) = spans["async_view_body"]
    assert view.attributes["pystrument.thread"].startswith("Task-")
    assert within(helpers.duration(view), truth["async_view_body"]), (helpers.duration(view), truth)
    assert helpers.contains(requests["GET /async"], view)
    assert not [name for name, found in spans.items() if found[0].attributes["code.file.path"].startswith(SDK_DIR)]
    assert [s.name for s in t.functions(requests["GET /sync"]) if not s.attributes["pystrument.library"]] == [
        "sync_view_body"
    ]


def test_async_to_sync_under_wsgi_follows_the_private_loop(tracing: Any, helpers: SimpleNamespace) -> None:
    """Django under WSGI: no running loop, so asgiref runs the async view on a new loop in a worker thread."""
    t = tracing(min_span_ms=0)
    truth: dict[str, float] = {}
    view = helpers.renamed(async_view_body, "wsgi_async_view")
    thread = threading.Thread(
        target=django_style_request, args=(t, "GET /wsgi", lambda: async_to_sync(view)(helpers.burn, truth))
    )
    thread.start()
    thread.join(10)
    (request,) = t.requests()
    assert request.attributes["pystrument.async"] is True
    spans = helpers.by_name(t.functions(request))
    (found,) = spans["wsgi_async_view"]
    # Its await is seen too (a thread lane would only see the loop's select() while it waits).
    assert within(helpers.duration(found), truth["wsgi_async_view"]), (helpers.duration(found), truth)
    assert sum(s.attributes.get("pystrument.await_time_ms", 0) for s in t.functions(request)) >= 20
    assert "shutdown_asyncgens" not in " ".join(spans)
