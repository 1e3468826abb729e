"""Follow a request into worker threads and child tasks.

The sampler thread cannot read another thread's context variables, so a frame running in a worker
thread cannot be traced back to its request at sample time. Instead the hand-off points are wrapped:
the callable submitted on behalf of a request registers its worker thread with that request while it
runs. Covered: ``concurrent.futures.ThreadPoolExecutor.submit`` (``loop.run_in_executor``, asgiref's
``sync_to_async`` for Django sync views), ``anyio.to_thread.run_sync`` (Starlette/FastAPI ``def``
routes and dependencies), and :func:`propagate` for anything else. Tasks created while a request's
task runs are adopted through a task factory installed on the loop (wrapping any existing factory).
The other way round, asgiref's ``async_to_sync`` runs a coroutine for a request thread as a task on the
main loop (Django async views under ASGI, where Django's middleware runs in a thread): that task is
adopted by the request of the OTel context it inherits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from pystrument._recording import registry
from pystrument._safety import log_once

T = TypeVar("T")
_lock = threading.Lock()
_executor_patched = False
_anyio_patched = False
_asgiref_patched = False
_django_templates_patched = False
_jinja_templates_patched = False
#: Whether greenlets are in use (``greenlet`` imported): request threads then trace their switches (``_greenlets``).
follow_greenlets = False


def propagate(fn: Callable[..., T]) -> Callable[..., T]:
    """Bind ``fn`` to the request the caller works for, so the thread that later runs it is profiled as part of
    that request. Returns ``fn`` unchanged outside a profiled request."""
    try:
        owner = registry.owner()
    except Exception:
        log_once("propagate", "pystrument: propagate() failed; running the function unprofiled")
        return fn
    return owner.bind(fn) if owner is not None else fn


_modules_seen = -1


def install_hooks() -> None:
    """Install the hand-off wrappers that are not installed yet (cheap when they are: rechecked only once modules
    were imported since)."""
    global _executor_patched, _anyio_patched, _asgiref_patched, _django_templates_patched, _modules_seen
    global follow_greenlets, _jinja_templates_patched
    modules = len(sys.modules)
    if modules == _modules_seen:
        return
    _modules_seen = modules
    if not _executor_patched:
        with _lock:
            if not _executor_patched:
                _patch_executor()
                _executor_patched = True
    if not _anyio_patched and "anyio.to_thread" in sys.modules:
        with _lock:
            if not _anyio_patched:
                _patch_anyio()
                _anyio_patched = True
    if not follow_greenlets and "greenlet" in sys.modules:
        follow_greenlets = True
    if not _django_templates_patched and "django.template.base" in sys.modules:
        with _lock:
            if not _django_templates_patched:
                from pystrument._templates import patch_django_templates

                patch_django_templates()
                _django_templates_patched = True
    if not _jinja_templates_patched and "jinja2.environment" in sys.modules:
        with _lock:
            if not _jinja_templates_patched:
                from pystrument._templates import patch_jinja_templates

                patch_jinja_templates()
                _jinja_templates_patched = True
    if not _asgiref_patched and "asgiref.sync" in sys.modules:
        with _lock:
            if not _asgiref_patched:
                _patch_asgiref()
                _asgiref_patched = True


_original_submit: Any = None
_original_run_sync: Any = None
_original_main_wrap: Any = None


def submit(self: concurrent.futures.ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``ThreadPoolExecutor.submit`` that binds ``fn`` to the submitting request."""
    return _original_submit(self, propagate(fn), *args, **kwargs)


async def run_sync(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``anyio.to_thread.run_sync`` that binds ``func`` to the awaiting request."""
    return await _original_run_sync(propagate(func), *args, **kwargs)


async def main_wrap(self: Any, *args: Any, **kwargs: Any) -> Any:
    """asgiref's ``AsyncToSync.main_wrap``, run as a task on the main loop: adopt that task for the request
    whose thread waits for it (found through the OTel context the task inherited)."""
    try:
        # On the main loop the task inherited the request's OTel context; under WSGI, asgiref's private loop runs in a
        # worker thread bound to the request (executors do not carry the context, asgiref restores it only later).
        owner = registry.owner() or registry.thread_owner()
        task = asyncio.current_task()
        if owner is not None and task is not None and not owner.precise:
            install_task_factory(asyncio.get_running_loop())
            owner.adopt_bridge(task)
    except Exception:
        log_once("asgiref", "pystrument: adopting an async_to_sync task failed; carrying on")
    return await _original_main_wrap(self, *args, **kwargs)


def _patch_executor() -> None:
    global _original_submit
    if concurrent.futures.ThreadPoolExecutor.submit is submit:
        return
    _original_submit = concurrent.futures.ThreadPoolExecutor.submit
    functools.update_wrapper(submit, _original_submit)
    concurrent.futures.ThreadPoolExecutor.submit = submit  # type: ignore[method-assign,assignment]


def _patch_anyio() -> None:
    global _original_run_sync
    to_thread: Any = sys.modules["anyio.to_thread"]
    if to_thread.run_sync is run_sync:
        return
    _original_run_sync = to_thread.run_sync
    functools.update_wrapper(run_sync, _original_run_sync)
    to_thread.run_sync = run_sync


def _patch_asgiref() -> None:
    global _original_main_wrap
    async_to_sync: Any = getattr(sys.modules["asgiref.sync"], "AsyncToSync", None)
    original = getattr(async_to_sync, "main_wrap", None)
    if original is None or original is main_wrap or not asyncio.iscoroutinefunction(original):
        return  # an asgiref whose shape we do not know: its tasks stay unattributed
    _original_main_wrap = original
    functools.update_wrapper(main_wrap, original)
    async_to_sync.main_wrap = main_wrap


def install_task_factory(loop: asyncio.AbstractEventLoop) -> None:
    """Make tasks created by a profiled request's task part of that request (wraps the loop's task factory)."""
    current = loop.get_task_factory()
    if getattr(current, "_pystrument", False):
        return

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        task = current(loop, coro, **kwargs) if current is not None else asyncio.Task(coro, loop=loop, **kwargs)
        try:
            owner = registry.lane_owner()
            if owner is not None:
                owner.adopt_task(task)
        except Exception:
            log_once("task_factory", "pystrument: adopting a child task failed; carrying on")
        return task

    factory._pystrument = True  # type: ignore[attr-defined]
    loop.set_task_factory(factory)
