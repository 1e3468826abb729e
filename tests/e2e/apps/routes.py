"""Per-route functions with names unique to each route, for the frameworks' end-to-end tests.

Every route ``rN`` gets ``rN_load`` (sleeps), ``rN_crunch`` (a pure-Python CPU loop) and ``rN_work`` (both),
plus ``rN_awork`` for async routes, so a trace holding another route's function shows that samples mixed.
They are generated from one template (compiled against this file) rather than written out eight times.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

# Mostly waiting: eight requests crunching at once on one GIL would starve the sampler thread of it (a sample needs
# the GIL), and a call seen by fewer than two samples is too short to become a span.
SLEEP_S = 0.06
CPU_S = 0.01
ROUTES = 8

_TEMPLATE = """
def {name}_load():
    time.sleep(SLEEP_S)


def {name}_crunch():
    deadline = time.perf_counter() + CPU_S
    n = 0
    while time.perf_counter() < deadline:
        n += 1
    return n


def {name}_work():
    {name}_load()
    return {name}_crunch()


async def {name}_await():
    await asyncio.sleep(SLEEP_S)


async def {name}_awork():
    await {name}_await()
    return {name}_crunch()
"""


def define(name: str) -> dict[str, Any]:
    """The functions of route ``name`` (``{name}_work``, ``{name}_awork``, ...) in a new namespace."""
    namespace: dict[str, Any] = {"time": time, "asyncio": asyncio, "SLEEP_S": SLEEP_S, "CPU_S": CPU_S}
    exec(compile(_TEMPLATE.format(name=name), __file__, "exec"), namespace)
    return namespace


def named(fn: Any, name: str) -> Any:
    """``fn`` with its code object renamed, so each route's view shows under its own name in the profile."""
    fn.__code__ = fn.__code__.replace(co_name=name, co_qualname=name)
    fn.__name__ = fn.__qualname__ = name
    return fn


def names(route: str) -> set[str]:
    """Every function name route ``route`` may show in its trace."""
    return {f"{route}_{suffix}" for suffix in ("view", "load", "crunch", "work", "await", "awork")}
