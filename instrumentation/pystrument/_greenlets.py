"""Follow greenlets: SQLAlchemy's asyncio layer runs the ORM's synchronous code in a greenlet.

A greenlet's outermost frame has no caller, so a sample taken while one runs does not reach the frames that
started the request: that work would fall outside the request. Once ``greenlet`` is imported, a trace function on
each request thread remembers which greenlet runs there; a walk that ends in a greenlet continues from the frame
its parent is suspended in (``greenlet.switch`` in ``greenlet_spawn``), so the ORM's work shows under the
coroutine that awaits it.
"""

from __future__ import annotations

import sys
import types
from threading import get_ident
from typing import Any

#: Thread id -> the greenlet running there (absent: the thread's main greenlet, or none seen yet).
running: dict[int, Any] = {}


def _trace(event: str, args: Any) -> None:
    if event in ("switch", "throw"):
        target = args[1]
        if getattr(target, "parent", None) is None:  # back to the thread's main greenlet
            running.pop(get_ident(), None)
        else:
            running[get_ident()] = target


def follow_this_thread() -> None:
    """Install the trace function on the calling thread (greenlet's traces are per thread); cheap when it is."""
    module: Any = sys.modules.get("greenlet")
    if module is None:
        return
    current = module.gettrace()
    if current is _trace or getattr(current, "_pystrument", False):
        return
    if current is None:
        module.settrace(_trace)
    else:  # someone else traces switches: chain both

        def chained(event: str, args: Any) -> None:
            _trace(event, args)
            current(event, args)

        chained._pystrument = True  # type: ignore[attr-defined]
        module.settrace(chained)


def parent_frame(thread_id: int, hops: int) -> types.FrameType | None:
    """The frame in which the ``hops + 1``-th greenlet up from the one running on ``thread_id`` is suspended (the
    one it switched from to start it); None when there is none."""
    glet = running.get(thread_id)
    for _ in range(hops):
        glet = getattr(glet, "parent", None)
    parent = getattr(glet, "parent", None)
    frame = getattr(parent, "gr_frame", None)
    return frame if isinstance(frame, types.FrameType) else None
