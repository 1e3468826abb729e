"""Django template renders as calls of their own, named after the template.

Django interprets its templates: the stack shows ``Template.render`` and node methods, never which template. The
render is wrapped once Django's template engine is imported: while it runs, the wrapper's frame stands for the
template in every sample (``_frames.virtual_frames``), as ``template <name>``, classed by the template's file (a
package's templates are library code, the app's are the app's). Jinja needs no wrapper: its compiled templates are
Python code named after the template file (``_frames._template_identifier``).
"""

from __future__ import annotations

import contextlib
import functools
import sys
from typing import Any

from pyinstrument.frame_info import ATTRIBUTES_SEP, IDENTIFIER_SEP

from pystrument._frames import ATTRIBUTE_MARKER_OWNER, ATTRIBUTE_MARKER_TEMPLATE, is_library_path, virtual_frames

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


def render(self: Any, context: Any) -> Any:
    """``django.template.base.Template.render``, shown in samples as the template it renders."""
    key = id(sys._getframe())
    try:
        virtual_frames[key] = _label(self)
    except Exception:
        key = 0
    try:
        return _original_render(self, context)
    finally:
        if key:
            virtual_frames.pop(key, None)


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
