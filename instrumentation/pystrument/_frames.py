"""Live frames to pyinstrument frame identifiers, and the stack a request owns below its anchor frames.

Identifiers use pyinstrument's format (``name\\x00file\\x00first_line``, attributes after ``\\x01``) so
samples feed pyinstrument's session model; the default sampler puts ``co_qualname`` in the name part and
adds a call-site attribute (``s`` + the caller's line), so that back-to-back calls of one function from
different lines stay apart.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import types
from collections.abc import Iterable
from threading import get_ident

from pyinstrument.frame import AWAIT_FRAME_IDENTIFIER, OUT_OF_CONTEXT_FRAME_IDENTIFIER
from pyinstrument.frame_info import ATTRIBUTE_MARKER_CLASS_NAME, ATTRIBUTES_SEP, IDENTIFIER_SEP

from pystrument import _greenlets as greenlets

ATTRIBUTE_MARKER_CALL_SITE = "s"
#: ``o1``/``o0``: the frame's owner is library/app code, whatever its file says (generated code, compiled templates).
ATTRIBUTE_MARKER_OWNER = "o"
#: ``t`` + a template's name: the frame renders that template (a call kept visible, named after it).
ATTRIBUTE_MARKER_TEMPLATE = "t"
AWAIT = AWAIT_FRAME_IDENTIFIER
OUT_OF_CONTEXT = OUT_OF_CONTEXT_FRAME_IDENTIFIER
#: Leaf marker of the part of a thread's sample interval in which the thread did not run (its CPU clock stood
#: still): it waited in a C call (sleep, I/O, a lock) or for the GIL. Like ``[await]``, it is time of the frame above.
WAIT = "[wait]"
#: Leaf marker of the part of a thread's sample interval in which it was ready to run but had no CPU core (the
#: kernel's run-queue delay: a machine busier than its cores). Neither the frame's work nor a wait on what it calls.
QUEUED = "[queued]"
#: Leaf marker of a waiting task whose awaited result is in (or that yielded): ready to run, it waits for the loop,
#: which another task holds. Time of the frame above, counted as its loop-wait time.
READY = "[ready]"


class RunLength(list[str]):
    """A record's stack that stands for ``n`` samples rather than one: the ticks of a run in which a lane's stack did
    not change (blocked, or awaiting the same future) and no mark fell, as one record (``Lane.records``), so that
    building the call tree costs one record, not one per tick, and the calls still count every sample."""

    __slots__ = ("n",)

    def __init__(self, stack: Iterable[str], n: int) -> None:
        super().__init__(stack)
        self.n = n


#: Leaf prefix of a mark: a stack seen by the request's own code at an instant (a child span starting, work handed
#: to another thread), not by the sampler; what follows the prefix names what the innermost call there claims.
MARK = "[mark]"
#: Claim prefix of the mark taken when a child span ends: no claim, the time the span ended (its claimer covers it).
END_CLAIM = "end:"
#: The file of the pseudo-frame a garbage-collection pause shows as (``_gc.py``): never library code, so a pause is
#: not folded into a library call.
GC_FILE = "<gc>"
#: Greenlets followed up per walk (nested ``greenlet_spawn``).
MAX_HOPS = 8
#: Deepest stack walked per sample; deeper stacks are cut at the top (recursion runaway guard).
MAX_DEPTH = 512
_CACHE_LIMIT = 50_000

# id(code) -> (code, identifier, {caller's line: frame info}, is pystrument's own, {f_lasti: line} of calls made
# from this code). The code object is kept so its id cannot be reused while cached.
Entry = tuple[types.CodeType, str, dict[int, str], bool, dict[int, int]]
_code_ids: dict[int, Entry] = {}
_OWN_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_library_paths: dict[str, bool] = {}


def code_identifier(code: types.CodeType) -> str:
    """pyinstrument identifier of a code object, named by its qualified name (cached)."""
    return _entry(code)[1]


def call_line(frame: types.FrameType) -> int:
    """``frame.f_lineno``, cached per code object and instruction offset: ``f_lasti`` is read in constant time,
    while ``f_lineno`` decodes the line table up to the offset (microseconds in a long function such as a compiled
    template), and the sampler needs the call site of every frame of every sample."""
    lines = _entry(frame.f_code, frame)[4]
    lasti = frame.f_lasti
    line = lines.get(lasti)
    if line is None:
        line = lines[lasti] = frame.f_lineno or 0
    return line


def frame_info(code: types.CodeType, caller: types.FrameType | None, frame: types.FrameType | None = None) -> str:
    """Frame info of a call of ``code`` made from ``caller``'s current line (cached; cheap per sample). ``frame``, the
    call's own frame, lets generated code and compiled templates be classed by their owner."""
    sites = _entry(code, frame)[2]
    line = call_line(caller) if caller is not None else 0
    info = sites.get(line)
    if info is None:
        info = sites[line] = f"{_entry(code)[1]}{ATTRIBUTES_SEP}{ATTRIBUTE_MARKER_CALL_SITE}{line}"
    return info


def _entry(code: types.CodeType, frame: types.FrameType | None = None) -> Entry:
    entry = _code_ids.get(id(code))
    if entry is not None and entry[0] is code:
        return entry
    identifier = f"{code.co_qualname}{IDENTIFIER_SEP}{code.co_filename}{IDENTIFIER_SEP}{code.co_firstlineno}"
    if frame is not None and code.co_filename.startswith("<") and code.co_filename != GC_FILE:
        identifier = _generated_identifier(code, frame, identifier)
    elif frame is not None and not code.co_filename.endswith(".py"):
        identifier = _template_identifier(code, frame, identifier)
    if len(_code_ids) >= _CACHE_LIMIT:
        _code_ids.clear()
    entry = _code_ids[id(code)] = (code, identifier, {}, code.co_filename.startswith(_OWN_DIR), {})
    return entry


def _module_file(globals_: dict[str, object]) -> str | None:
    """The file of the module whose globals these are (generated code runs in its owner's globals)."""
    name = globals_.get("__name__")
    module = sys.modules.get(name) if isinstance(name, str) else None
    path = getattr(module, "__file__", None) or globals_.get("__file__")
    return path if isinstance(path, str) else None


def _generated_identifier(code: types.CodeType, frame: types.FrameType, identifier: str) -> str:
    """Generated code (``<string>``: dataclass and SQLAlchemy constructors, namedtuples) is its owner's: the module
    whose globals it runs in, library or app; code with no module of its own is the machinery's (library)."""
    template = _template_identifier(code, frame, identifier)
    if template is not identifier:
        return template
    owner = _module_file(frame.f_globals)
    library = owner is None or is_library_path(owner)
    return f"{identifier}{ATTRIBUTES_SEP}{ATTRIBUTE_MARKER_OWNER}{int(library)}"


def _template_identifier(code: types.CodeType, frame: types.FrameType, identifier: str) -> str:
    """A compiled Jinja template's functions named after the template (``template index.html``, ``block body
    (index.html)``), classed by the template's file (the app's templates or a package's); else ``identifier``."""
    template = frame.f_globals.get("__jinja_template__")
    if template is None:
        return identifier
    name = str(getattr(template, "name", None) or frame.f_globals.get("name") or code.co_filename)
    path = getattr(template, "filename", None) or code.co_filename
    library = str(path).startswith("<") or is_library_path(str(path))
    if code.co_name == "root":
        label = f"template {name}"
    elif code.co_name.startswith("block_"):
        label = f"block {code.co_name[6:]} ({name})"
    else:
        label = f"{code.co_qualname} ({name})"
    marker = f"{ATTRIBUTE_MARKER_TEMPLATE}{name}" if code.co_name == "root" else ""
    attributes = f"{ATTRIBUTES_SEP}{ATTRIBUTE_MARKER_OWNER}{int(library)}"
    if marker:
        attributes += f"{ATTRIBUTES_SEP}{marker}"
    return f"{label}{IDENTIFIER_SEP}{path}{IDENTIFIER_SEP}{code.co_firstlineno}{attributes}"


#: id(frame of a pystrument wrapper) -> the frame identifier it stands for while it runs (a Django template being
#: rendered): the sampler shows it in place of the wrapper, which is otherwise left out as pystrument's own.
virtual_frames: dict[int, str] = {}


def is_own(code: types.CodeType) -> bool:
    """Whether ``code`` is pystrument's own (hand-off wrappers, bookkeeping): never shown as a call."""
    return _entry(code)[3]


def is_own_path(path: str) -> bool:
    """Whether a file path is inside the pystrument package (for identifiers recorded by pyinstrument)."""
    return path.startswith(_OWN_DIR)


def await_chain(frames: list[types.FrameType], after: types.FrameType | None) -> tuple[str, ...]:
    """Frame infos of a suspended coroutine chain (outermost first) whose first frame was called from ``after``,
    without pystrument's own frames (a hand-off wrapper awaiting the worker thread)."""
    out: list[str] = []
    caller = after
    for frame in frames:
        if not is_own(frame.f_code):
            out.append(frame_info(frame.f_code, caller, frame))
        else:
            virtual = virtual_frames.get(id(frame))
            if virtual is not None:
                out.append(f"{virtual}{ATTRIBUTES_SEP}{ATTRIBUTE_MARKER_CALL_SITE}{call_line(caller) if caller else 0}")
        caller = frame
    return tuple(out)


class TornStack(Exception):
    """Another thread's frame chain, read while it was being torn down: CPython 3.11 handed a frame's ``f_back`` as an
    object that is no frame (a ``str`` once, in the wagtail corpus app under load: its frame memory reused). The sample
    is skipped, as during a collection on another thread."""


def stack_below(
    leaf: types.FrameType | None, anchors: frozenset[int], root: types.FrameType | None = None, thread_id: int = 0
) -> tuple[str, ...] | None:
    """Identifiers (outermost first) of the frames between ``leaf`` and the nearest anchor frame, both excluded.

    ``anchors`` holds ids of frames that were on the stack when the request started (kept alive by the
    caller, so ids are not reused). ``root`` stops the walk inclusively (a task's outermost coroutine).
    None when neither an anchor nor ``root`` is met: the stack does not belong to the request.
    pystrument's own frames are left out. A walk that ends in a greenlet (``thread_id`` running one) goes on in the
    frame its parent is suspended in. This runs for every sample while holding the GIL: kept tight. Raises
    ``TornStack`` when the chain holds something that is no frame.
    """
    if leaf is None:
        return None
    try:
        return _walk(leaf, anchors, root, thread_id)
    except AttributeError as torn:  # no cost unless raised (zero-cost try): a frame that is no frame
        raise TornStack from torn


def _walk(
    frame: types.FrameType, anchors: frozenset[int], root: types.FrameType | None, thread_id: int
) -> tuple[str, ...] | None:
    out: list[str] = []
    append = out.append
    cache = _code_ids
    virtual = virtual_frames
    hops = 0
    code = frame.f_code
    entry = cache.get(id(code))
    if entry is None or entry[0] is not code:
        entry = _entry(code, frame)
    while True:
        if id(frame) in anchors:
            break
        if frame is root:  # a task's outermost coroutine: its caller is loop machinery, no call site
            if not entry[3]:
                append(frame_info(code, None, frame))
            break
        # The caller's entry gives this call's line (cached by offset) and is the next step's entry.
        back = frame.f_back
        if back is None and thread_id and greenlets.running and hops < MAX_HOPS:
            back = greenlets.parent_frame(thread_id, hops)
            hops += 1
        if back is not None:
            back_code = back.f_code
            back_entry = cache.get(id(back_code))
            if back_entry is None or back_entry[0] is not back_code:
                back_entry = _entry(back_code, back)
            lasti = back.f_lasti
            line = back_entry[4].get(lasti)
            if line is None:
                line = back_entry[4][lasti] = back.f_lineno or 0
            if not entry[3]:
                info = entry[2].get(line)
                append(info if info is not None else frame_info(code, back, frame))
            elif virtual:
                label = virtual.get(id(frame))
                if label is not None:  # pystrument's wrapper standing for something the stack does not show
                    append(f"{label}{ATTRIBUTES_SEP}{ATTRIBUTE_MARKER_CALL_SITE}{line}")
            frame, code, entry = back, back_code, back_entry
        else:
            return None  # the stack's outermost frame, and no anchor met: not the request's stack
    if len(out) > MAX_DEPTH:  # a recursion runaway: keep the frames nearest the request's start
        del out[: len(out) - MAX_DEPTH]
    out.reverse()
    return tuple(out)


class MarkMemo:
    """The frames of a lane's previous mark (outermost first, held so their ids stay theirs), each frame's
    instruction then and the stack's length through it: a mark walks up only to the first frame that has not moved
    since (same frame, same instruction: the frames above it cannot have moved either) and reuses the rest."""

    __slots__ = ("ends", "frames", "index", "lastis", "stack")

    def __init__(self) -> None:
        self.frames: list[types.FrameType] = []
        self.lastis: list[int] = []
        self.ends: list[int] = []
        self.index: dict[int, int] = {}
        self.stack: tuple[str, ...] = ()


def _machinery_entry(entry: Entry) -> bool:
    path = entry[0].co_filename
    found = _machinery_paths.get(path)
    if found is None:
        found = _machinery_paths[path] = entry[3] or any(part in path for part in MACHINERY_PARTS)
    return found


#: Files of the tracing machinery that starts a span (the OpenTelemetry API and SDK, the context managers around
#: it): a child span's mark is taken inside it but belongs to its caller.
MACHINERY_PARTS = (f"{os.sep}opentelemetry{os.sep}", f"{os.sep}contextlib.py", f"{os.sep}functools.py")
_machinery_paths: dict[str, bool] = {}


def mark_stack(
    leaf: types.FrameType, anchors: frozenset[int], root: types.FrameType | None, memo: MarkMemo
) -> tuple[str, ...] | None:
    """``stack_below(leaf, anchors, root)`` less the tracing machinery at the leaf end, for a mark taken by the
    lane's own code; reuses ``memo`` (the lane's previous mark), so a loop of queries walks a few frames each."""
    frame: types.FrameType | None = leaf
    while frame is not None and _machinery_entry(_entry(frame.f_code, frame)) and id(frame) not in virtual_frames:
        frame = frame.f_back
    if frame is None:
        return None
    walked: list[types.FrameType] = []
    hops = 0
    index, lastis = memo.index, memo.lastis
    hit = -1
    node: types.FrameType | None = frame
    while node is not None:
        if id(node) in anchors:
            break
        i = index.get(id(node))
        if i is not None and node.f_lasti == lastis[i]:
            hit = i
            break
        walked.append(node)
        if node is root:
            break
        back = node.f_back
        if back is None and greenlets.running and hops < MAX_HOPS:
            back = greenlets.parent_frame(get_ident(), hops)
            hops += 1
        node = back
    else:
        return None  # the stack's outermost frame, and no anchor met: not the request's stack
    if len(walked) > MAX_DEPTH:
        return None
    walked.reverse()
    if hit >= 0:
        frames, lastis, ends = memo.frames, memo.lastis, memo.ends
        for f in frames[hit + 1 :]:
            index.pop(id(f), None)
        del frames[hit + 1 :], lastis[hit + 1 :], ends[hit + 1 :]
        out = list(memo.stack[: ends[-1]])
        caller: types.FrameType | None = frames[-1]
    else:
        frames, lastis, ends, out = [], [], [], []
        index = {}
        # The first frame's call site is its caller's line, as ``stack_below`` sees it (none for a task's root).
        caller = node if node is not None and id(node) in anchors else None
    for f in walked:
        code = f.f_code
        if not _entry(code, f)[3]:
            out.append(frame_info(code, caller if f is not root else None, f))
        else:
            label = virtual_frames.get(id(f))
            if label is not None:
                out.append(f"{label}{ATTRIBUTES_SEP}{ATTRIBUTE_MARKER_CALL_SITE}{call_line(caller) if caller else 0}")
        index[id(f)] = len(frames)
        frames.append(f)
        lastis.append(f.f_lasti)
        ends.append(len(out))
        caller = f
    stack = tuple(out)
    memo.frames, memo.lastis, memo.ends, memo.stack, memo.index = frames, lastis, ends, stack, index
    return stack


def coroutine_frames(coro: object) -> list[types.FrameType]:
    """Frames of a suspended coroutine's await chain, outermost first (coroutines, generators, async gens)."""
    frames: list[types.FrameType] = []
    while coro is not None and len(frames) < MAX_DEPTH:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or getattr(coro, "ag_frame", None)
        if frame is None:
            break
        frames.append(frame)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) or getattr(coro, "ag_await", None)
    return frames


def is_running(coro: object) -> bool:
    """Whether a coroutine (or generator) is executing right now on some thread."""
    return bool(getattr(coro, "cr_running", False) or getattr(coro, "gi_running", False))


#: Frames above the SDK's hook kept as a request's anchors. The frame that started the request span and goes on
#: running it (a WSGI/ASGI middleware's ``__call__``, the ``with`` block of ``start_as_current_span``) is a few
#: levels up; the frames further out never come between a sample's leaf and that frame.
ANCHOR_DEPTH = 16
#: Of those, how many are taken on the request thread when the request starts (see ``ThreadLane``).
EAGER_ANCHORS = 8


def frame_chain(frame: types.FrameType | None, limit: int = ANCHOR_DEPTH) -> list[types.FrameType]:
    """``frame`` and up to ``limit - 1`` of its callers, innermost first."""
    chain: list[types.FrameType] = []
    append = chain.append
    for _ in range(limit):
        if frame is None:
            break
        append(frame)
        frame = frame.f_back
    return chain


def eager_chain(frame: types.FrameType) -> list[types.FrameType]:
    """``frame_chain(frame, EAGER_ANCHORS)`` unrolled (it runs on the request thread for every request): ends with a
    frame, never None, so that the sampler can extend it from the last one's ``f_back``."""
    try:
        f1 = frame.f_back
        f2 = f1.f_back  # type: ignore[union-attr]
        f3 = f2.f_back  # type: ignore[union-attr]
        f4 = f3.f_back  # type: ignore[union-attr]
        f5 = f4.f_back  # type: ignore[union-attr]
        f6 = f5.f_back  # type: ignore[union-attr]
        f7 = f6.f_back  # type: ignore[union-attr]
    except AttributeError:  # fewer than 8 frames on the stack
        return frame_chain(frame, EAGER_ANCHORS)
    if f7 is None:
        return frame_chain(frame, EAGER_ANCHORS)
    return [frame, f1, f2, f3, f4, f5, f6, f7]  # type: ignore[list-item]


def call_key(info: str) -> str:
    """What makes two samples' frames the same call: the function and the call site (if recorded)."""
    identifier, _, attributes = info.partition(ATTRIBUTES_SEP)
    if attributes:
        for attribute in attributes.split(ATTRIBUTES_SEP):
            if attribute.startswith(ATTRIBUTE_MARKER_CALL_SITE):
                return f"{identifier}{ATTRIBUTES_SEP}{attribute}"
    return identifier


def split_identifier(info: str) -> tuple[str, str, int, str | None]:
    """(function, file, first line, class name or None) of a pyinstrument frame info string."""
    identifier, _, attributes = info.partition(ATTRIBUTES_SEP)
    parts = identifier.split(IDENTIFIER_SEP)
    function = parts[0]
    file = parts[1] if len(parts) > 1 else ""
    try:
        line = int(parts[2]) if len(parts) > 2 else 0
    except ValueError:
        line = 0
    class_name = None
    if attributes:
        for attribute in attributes.split(ATTRIBUTES_SEP):
            if attribute.startswith(ATTRIBUTE_MARKER_CLASS_NAME):
                class_name = attribute[1:]
    return function, file, line, class_name


def qualified_name(function: str, class_name: str | None) -> str:
    """``Class.method`` when pyinstrument recorded the class and the name is not qualified already."""
    if class_name and "." not in function:
        return f"{class_name}.{function}"
    return function


def _library_roots() -> tuple[str, ...]:
    roots: set[str] = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(os.path.realpath(path) + os.sep)
            roots.add(os.path.abspath(path) + os.sep)
    return tuple(sorted(roots))


# pystrument's own wrappers (hand-off hooks) count as library code wherever the package is installed.
_LIBRARY_ROOTS = (*_library_roots(), os.path.dirname(os.path.abspath(__file__)) + os.sep)
_LIBRARY_PARTS = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")


def is_library_path(path: str) -> bool:
    """True for the standard library, installed packages and generated code (``<frozen ...>``, ``<built-in>``)."""
    cached = _library_paths.get(path)
    if cached is not None:
        return cached
    if path.startswith("<"):
        result = path not in ("<string>", "<stdin>") and not path.startswith("<ipython-input")
    else:
        result = any(part in path for part in _LIBRARY_PARTS) or path.startswith(_LIBRARY_ROOTS)
    if len(_library_paths) >= _CACHE_LIMIT:
        _library_paths.clear()
    _library_paths[path] = result
    return result


_library_infos: dict[str, bool] = {}


def is_library_info(info: str) -> bool:
    """Whether a frame info string is library code (see :func:`is_library_path`; markers like ``[await]`` are)."""
    cached = _library_infos.get(info)
    if cached is None:
        parts = info.split(IDENTIFIER_SEP, 2)
        cached = len(parts) < 2 or is_library_path(parts[1].partition(ATTRIBUTES_SEP)[0])
        if len(_library_infos) >= _CACHE_LIMIT:
            _library_infos.clear()
        _library_infos[info] = cached
    return cached


def anchor_ids(frames: Iterable[types.FrameType]) -> frozenset[int]:
    return frozenset(map(id, frames))


_packages: dict[str, str] = {}


def library_package(path: str) -> str:
    """The distribution-level package a library file belongs to (``django``, ``PIL``), ``stdlib`` for the standard
    library, or ``""`` for anything else: a call into another package stays visible when library frames collapse."""
    found = _packages.get(path)
    if found is None:
        found = ""
        if path.startswith(_OWN_DIR):
            found = "pystrument"
        for part in () if found else _LIBRARY_PARTS:
            i = path.rfind(part)
            if i >= 0:
                found = path[i + len(part) :].split(os.sep, 1)[0].removesuffix(".py")
                break
        else:
            if path.startswith(_LIBRARY_ROOTS[:-1]) or path.startswith("<"):
                found = "stdlib"
        if len(_packages) >= _CACHE_LIMIT:
            _packages.clear()
        _packages[path] = found
    return found
