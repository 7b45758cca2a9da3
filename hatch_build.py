"""Hatchling build hook: compile the core's optional accelerator (``_speedups.c``).

The accelerator is optional: without a C compiler, on a Python it does not support
(free-threaded CPython, PyPy, Windows without the Unix toolchain variables) or with
``FUTUREKIT_NO_EXTENSION=1`` the build says why and makes a pure-Python wheel.
Editable installs build it in place, next to the source; so does running this file
(``python hatch_build.py``: after editing the C source, or on a machine where nothing
can be installed, such as the GPU check's).
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

try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # run as a script (python hatch_build.py): no hatchling needed
    BuildHookInterface = object  # type: ignore[assignment,misc]

SOURCE = Path("src/futurekit/core/_speedups.c")
PACKAGE_DIR = "futurekit/core"


def compile_speedups(root: Path, out_dir: Path) -> Path:
    """Compile the accelerator into ``out_dir``; raises ``RuntimeError`` saying why not."""
    if sys.implementation.name != "cpython":
        raise RuntimeError(f"{sys.implementation.name} is not CPython")
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        raise RuntimeError("free-threaded CPython uses the pure-Python core")
    ldshared = sysconfig.get_config_var("LDSHARED")
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    if not ldshared or not suffix:
        raise RuntimeError("this Python has no LDSHARED/EXT_SUFFIX (no Unix toolchain)")
    target = out_dir / f"_speedups{suffix}"
    cmd = [
        *shlex.split(ldshared),
        *shlex.split(sysconfig.get_config_var("CCSHARED") or "-fPIC"),
        "-O2",
        "-I",
        sysconfig.get_paths()["include"],
        str(root / SOURCE),
        "-o",
        str(target),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(f"cannot run the compiler: {exc}") from exc
    if proc.returncode != 0:
        raise RuntimeError(f"the compiler failed: {proc.stderr.strip()[-2000:]}")
    return target


class SpeedupsBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Adds the compiled accelerator to wheels (and to the source tree for editables)."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Compile, or warn and build a pure-Python wheel."""
        if self.target_name != "wheel":
            return
        if os.environ.get("FUTUREKIT_NO_EXTENSION", "") not in ("", "0"):
            self.app.display_info("futurekit: FUTUREKIT_NO_EXTENSION set: pure-Python core")
            return
        root = Path(self.root)
        try:
            if version == "editable":
                built = compile_speedups(root, root / "src" / PACKAGE_DIR)
            else:
                tmp = Path(tempfile.mkdtemp(prefix="futurekit-build-"))
                built = compile_speedups(root, tmp)
                build_data["force_include"][str(built)] = f"{PACKAGE_DIR}/{built.name}"
        except RuntimeError as exc:
            self.app.display_warning(
                f"futurekit: the compiled accelerator was not built ({exc}); "
                "the pure-Python core will be used"
            )
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        self.app.display_info(f"futurekit: built the compiled accelerator {built.name}")


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    try:
        path = compile_speedups(here, here / "src" / PACKAGE_DIR)
    except RuntimeError as exc:
        print(f"futurekit: the compiled accelerator was not built ({exc})", file=sys.stderr)
        sys.exit(1)
    print(f"futurekit: built {path.relative_to(here)}")
