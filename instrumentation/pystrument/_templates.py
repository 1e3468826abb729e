"""Django template renders as calls of their own, named after the template.

Django interprets its templates: the stack shows ``Template.render`` and node methods, never which template. The
render is wrapped once Django's template engine is imported: while it runs, the wrapper's frame stands for the
template in every sample (``_frames.virtual_frames``), as ``template <name>``, classed by the template's file (a
package's templates are library code, the app's are the app's). Jinja's ``render`` and ``render_async`` are wrapped
the same way (its compiled code, named after the template too, folds into the wrapper's call). The request's
outermost render also marks its start and end, so that it is on the timeline even when no sample caught it.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from typing import Any

from pyinstrument.frame_info import ATTRIBUTES_SEP, IDENTIFIER_SEP

from pystrument._frames import ATTRIBUTE_MARKER_OWNER, ATTRIBUTE_MARKER_TEMPLATE, is_library_path, virtual_frames
from pystrument._recording import registry

_original_render: Any = None


def template_label(name: str, path: str) -> str:
    """The frame identifier a render of template ``name`` (file ``path``) shows as."""
    library = not path or path.startswith("<") or is_library_path(path)
    return (
        f"template {name}{IDENTIFIER_SEP}{path}{IDENTIFIER_SEP}0"
        f"{ATTRIBUTES_SEP}{ATTRIBUTE_MARKER_OWNER}{int(library)}{ATTRIBUTES_SEP}{ATTRIBUTE_MARKER_TEMPLATE}{name}"
    )


def _label(template: Any) -> str:
    label = getattr(template, "_pystrument_label", None)
    if label is None:
        origin = getattr(template, "origin", None)
        path = str(getattr(origin, "name", "") or "")
        name = str(getattr(template, "name", None) or getattr(origin, "template_name", None) or path or "<string>")
        label = template_label(name, path)
        with contextlib.suppress(AttributeError):  # a template type with slots: label it every time
            template._pystrument_label = label
    return str(label)


def _enter(frame: Any, label: str) -> tuple[int, Any, Any]:
    """Stand for the template in samples; the request's outermost render also marks its start (a render shorter
    than the interval, or one the sampler could not see for want of the GIL, is still on the timeline)."""
    key = id(frame)
    virtual_frames[key] = label
    owner = registry.lane_owner() if registry.by_thread or registry.by_task else None
    stack = None
    if owner is not None:
        owner.template_depth += 1
        if owner.template_depth == 1:
            stack = owner.mark_here(frame, "")
    return key, owner, stack


def _exit(token: tuple[int, Any, Any]) -> None:
    key, owner, stack = token
    if owner is not None:
        owner.template_depth -= 1
        if stack is not None:  # the render ends: the stack its start marked, the wrapper standing for the template
            owner.mark_again(stack)
    virtual_frames.pop(key, None)


def render(self: Any, context: Any) -> Any:
    """``django.template.base.Template.render``, shown in samples as the template it renders."""
    frame = sys._getframe()
    try:
        token = _enter(frame, _label(self))
    except Exception:
        token = (0, None, None)
    try:
        return _original_render(self, context)
    finally:
        with contextlib.suppress(Exception):
            _exit(token)
        del frame  # it refers to itself: a cycle that would keep every caller's locals until a collection


def _jinja_label(template: Any) -> str:
    label = getattr(template, "_pystrument_label", None)
    if label is None:
        name = str(getattr(template, "name", None) or "<string>")
        label = template_label(name, str(getattr(template, "filename", None) or ""))
        with contextlib.suppress(AttributeError):
            template._pystrument_label = label
    return str(label)


def jinja_render(self: Any, *args: Any, **kwargs: Any) -> Any:
    """``jinja2.Template.render``, shown in samples as the template it renders."""
    frame = sys._getframe()
    try:
        token = _enter(frame, _jinja_label(self))
    except Exception:
        token = (0, None, None)
    try:
        return _original_jinja[0](self, *args, **kwargs)
    finally:
        with contextlib.suppress(Exception):
            _exit(token)
        del frame  # it refers to itself: a cycle that would keep every caller's locals until a collection


async def jinja_render_async(self: Any, *args: Any, **kwargs: Any) -> Any:
    """``jinja2.Template.render_async``, shown in samples (running or awaiting) as the template it renders."""
    frame = sys._getframe()
    try:
        token = _enter(frame, _jinja_label(self))
    except Exception:
        token = (0, None, None)
    try:
        return await _original_jinja[1](self, *args, **kwargs)
    finally:
        with contextlib.suppress(Exception):
            _exit(token)
        del frame  # it refers to itself: a cycle that would keep every caller's locals until a collection


_original_jinja: list[Any] = [None, None]


def patch_django_templates() -> None:
    global _original_render
    base: Any = sys.modules.get("django.template.base")
    template: Any = getattr(base, "Template", None)
    original = getattr(template, "render", None)
    if template is None or original is None or original is render:
        return
    _original_render = original
    functools.update_wrapper(render, original)
    template.render = render


def patch_jinja_templates() -> None:
    environment: Any = sys.modules.get("jinja2.environment")
    template: Any = getattr(environment, "Template", None)
    if template is None or template.render is jinja_render:
        return
    _original_jinja[:] = [template.render, template.render_async]
    functools.update_wrapper(jinja_render, template.render)
    functools.update_wrapper(jinja_render_async, template.render_async)
    template.render = jinja_render
    template.render_async = jinja_render_async
