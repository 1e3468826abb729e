"""Build hook: compiles the SDK's sampler helper (``instrumentation/pystrument/_native.c``) into the wheel.

A plain ``pip install`` builds it from source with the machine's C compiler (the one Python was built with, from
``sysconfig``) and Python's headers. Without either, the wheel is pure Python and says why once: the sampler then
does every tick in Python (``pystrument._sampler``), as it always can.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("instrumentation") / "pystrument" / "_native.c"


def compile_native(source: Path, target: Path) -> str:
    """Compile ``source`` into the extension module ``target``; "" when it worked, else why not."""
    include = sysconfig.get_paths().get("include") or ""
    if not (Path(include) / "Python.h").exists():
        return f"Python's headers are missing ({include}/Python.h): install python3-dev"
    compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    command = [*compiler, "-shared", "-fPIC", "-O2", "-std=c11", "-I", include, str(source), "-o", str(target)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{shlex.join(command)}: {error}"
    if done.returncode != 0:
        return f"{shlex.join(command)} failed: {done.stderr.strip()[-2000:]}"
    return ""


class NativeSamplerHook(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or sys.platform != "linux" or os.environ.get("PYSTRUMENT_PURE_PYTHON"):
            return  # the helper reads Linux's /proc; elsewhere (or asked) the sampler is pure Python
        source = Path(self.root) / SOURCE
        name = "_native" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so")
        if version == "editable":
            target = source.with_name(name)  # beside the sources an editable install imports from
        else:
            self._tmp = tempfile.TemporaryDirectory()
            target = Path(self._tmp.name) / name
        why = compile_native(source, target)
        if why:
            self.app.display_warning(
                f"pystrument: the compiled sampler helper was not built ({why}); the SDK's sampler runs in pure Python"
            )
            return
        if version != "editable":
            build_data["force_include"][str(target)] = f"pystrument/{name}"
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            tmp.cleanup()
