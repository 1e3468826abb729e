"""Precise mode (``PYSTRUMENT_SAMPLER=pyinstrument``): a pyinstrument ``Profiler`` per lane.

pyinstrument's C hook sees every call, so times are exact to the interval, at ~200 ns per Python call.
``async_mode="strict"`` on an event loop keeps concurrent requests apart; ``"disabled"`` in threads.
A profiler must stop on the thread that started it, so the request span must end on its own thread
(true for the Flask, Django and ASGI instrumentations).
"""

from __future__ import annotations

import threading
import time
import types

from pyinstrument import Profiler
from pyinstrument.frame_info import ATTRIBUTE_MARKER_LINE_NUMBER, ATTRIBUTES_SEP, frame_info_get_identifier
from pyinstrument.frame_ops import FrameRecordType
from pyinstrument.low_level.stat_profile import get_frame_info
from pyinstrument.session import Session

from pystrument._frames import ATTRIBUTE_MARKER_CALL_SITE, EAGER_ANCHORS, frame_chain, is_own_path
from pystrument._lanes import Lane


class PyinstrumentLane(Lane):
    """A lane recorded by pyinstrument's own profiler; its records are trimmed to frames below the anchor."""

    kind = "pyinstrument"

    def __init__(
        self,
        name: str,
        interval: float,
        caller: types.FrameType,
        *,
        on_loop: bool,
        coroutine_root: types.FrameType | None = None,
        main: bool = False,
    ) -> None:
        super().__init__(name, time.perf_counter(), main=main)
        self.thread_id = threading.get_ident()
        self.thread = threading.current_thread()
        self.session: Session | None = None
        # The anchor chain: identifiers of the frames from the stack's root (or the task's outermost coroutine,
        # on a loop, since loop frames are renewed every step) down to the frame that started the request.
        chain: list[str] = []
        frame: types.FrameType | None = caller
        self._anchor_frames = frame_chain(caller, EAGER_ANCHORS)  # see Recording.encloses_caller
        while frame is not None:
            chain.append(frame_info_get_identifier(get_frame_info(frame)))
            if frame is coroutine_root:
                break
            frame = frame.f_back
        if coroutine_root is None:
            thread = threading.current_thread()
            chain.append(f"{thread.name}\x00<thread>\x00{thread.ident}")
        chain.reverse()
        self._anchor = chain
        self.profiler = Profiler(interval=interval, async_mode="strict" if on_loop else "disabled")
        self.profiler.start(caller_frame=caller)

    def capture(self, frames: dict[int, types.FrameType]) -> None:
        return None

    def sample_count(self) -> int:
        return self.session.sample_count if self.session is not None else 0

    def stop(self) -> bool:
        """Stop the profiler; only possible on the thread that started it. Elsewhere False, and the profiler is
        left to :func:`stop_orphans`, which the processor calls when a span next starts on its thread (until then
        that thread keeps paying for pyinstrument's hook)."""
        if self.session is not None:
            return True
        if not self.profiler.is_running:
            return False
        if threading.get_ident() != self.thread_id:
            with _orphans_lock:
                _orphans.setdefault(self.thread_id, []).append(self)
            return False
        self.session = self.profiler.stop()
        self.busy = sum(dt for stack, dt in self.session.frame_records if not (stack and stack[-1].startswith("[")))
        self.close(time.perf_counter())
        return True

    def records(self) -> list[FrameRecordType]:
        if self.session is None:
            return []
        return [(with_call_sites(stack, below(stack, self._anchor)), dt) for stack, dt in self.session.frame_records]


# Lanes whose request span ended on another thread, by the thread whose profiler still runs.
_orphans: dict[int, list[PyinstrumentLane]] = {}
_orphans_lock = threading.Lock()


def stop_orphans() -> None:
    """Stop the profilers left running on the calling thread by requests that ended elsewhere (cheap when none)."""
    if not _orphans:
        return
    with _orphans_lock:
        lanes = _orphans.pop(threading.get_ident(), [])
    current = threading.current_thread()
    for lane in lanes:
        # Thread ids are reused: a profiler of a thread that has ended went with it.
        if lane.thread is current and lane.profiler.is_running:
            lane.profiler.stop()


def below(stack: list[str], anchor: list[str]) -> int:
    """Where the part of ``stack`` below the anchor chain starts: find the chain's first frame, follow the chain as
    far as it matches. ``len(stack)`` if the chain is absent (a synthetic leaf is kept, though)."""
    if not anchor:
        return 0
    first = anchor[0]
    start = next((i for i, info in enumerate(stack) if frame_info_get_identifier(info) == first), None)
    if start is None:
        return len(stack) - 1 if stack and stack[-1].startswith("[") else len(stack)
    matched = 0
    while (
        matched < len(anchor)
        and start + matched < len(stack)
        and frame_info_get_identifier(stack[start + matched]) == anchor[matched]
    ):
        matched += 1
    return start + matched


def with_call_sites(stack: list[str], start: int) -> list[str]:
    """``stack[start:]`` with each frame's call site (its caller's current line, pyinstrument's ``l``) added as
    pystrument's ``s`` attribute, so back-to-back calls from different lines stay apart; pystrument's own frames
    (hand-off wrappers) are left out."""
    out: list[str] = []
    for i in range(start, len(stack)):
        info = stack[i]
        if _own(info):
            continue
        line = _line(stack[i - 1]) if i > 0 and not info.startswith("[") else None
        out.append(f"{info}{ATTRIBUTES_SEP}{ATTRIBUTE_MARKER_CALL_SITE}{line}" if line is not None else info)
    return out


def _own(info: str) -> bool:
    parts = info.split("\x00", 2)
    return len(parts) > 1 and is_own_path(parts[1])


def _line(info: str) -> str | None:
    for attribute in info.split(ATTRIBUTES_SEP)[1:]:
        if attribute.startswith(ATTRIBUTE_MARKER_LINE_NUMBER):
            return attribute[1:]
    return None
