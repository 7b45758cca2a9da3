"""Build script: the core's optional compiled accelerator, through setuptools' ``build_ext``.

The project's metadata lives in ``pyproject.toml``; this file only declares the C
extension ``futurekit.core._speedups`` (``src/futurekit/core/_speedups.c``, which
includes its parts from ``_speedups_src/``) and how a build without it looks.

The accelerator is optional (``Extension(optional=True)``): without a C compiler or
Python's headers, on a Python it does not support (PyPy, free-threaded CPython) or with
``FUTUREKIT_NO_EXTENSION=1``, the build prints why and makes a pure-Python wheel
(``py3-none-any``) or a pure editable install. Editable installs (``pip install -e .``)
build it in place, next to the source. After editing the C source, rebuild it in place
with::

    python setup.py build_ext --inplace
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

import setuptools
from setuptools import Extension, setup

if int(setuptools.__version__.split(".")[0]) < 77:  # pyproject.toml's SPDX license, bdist_wheel
    sys.exit(f"futurekit needs setuptools>=77 to build (found {setuptools.__version__}): "
             "pip install -U 'setuptools>=77'")  # fmt: skip

from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_ext import build_ext
from setuptools.errors import BaseError as DistutilsError
from setuptools.errors import CCompilerError, CompileError, PlatformError

CORE = "src/futurekit/core"
SPEEDUPS = Extension(
    "futurekit.core._speedups",
    sources=[f"{CORE}/_speedups.c"],
    depends=sorted(str(p.as_posix()) for p in Path(CORE, "_speedups_src").glob("*.h")),
    optional=True,
)
#: Why the accelerator was not built in this run (empty: it was, or it was not asked for).
NOT_BUILT: list[str] = []


def say(message: str) -> None:
    """Print a line of the build's own (pip shows it with ``-v``; ``build`` always)."""
    print(f"futurekit: {message}", file=sys.stderr, flush=True)


def unsupported() -> str | None:
    """Why this Python gets the pure-Python core without trying; ``None``: try to build."""
    if os.environ.get("FUTUREKIT_NO_EXTENSION", "") not in ("", "0"):
        return "FUTUREKIT_NO_EXTENSION is set"
    if sys.implementation.name != "cpython":
        return f"{sys.implementation.name} is not CPython"
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return "free-threaded CPython uses the pure-Python core"
    return None


def not_built(reason: str) -> None:
    """Record and print that the accelerator was not built, and why."""
    NOT_BUILT.append(reason)
    say(f"the compiled accelerator was not built ({reason}); the pure-Python core will be used")


class BuildSpeedups(build_ext):
    """``build_ext`` that reports an optional extension it could not build, and why.

    An in-place build that fails also removes a stale accelerator from the source
    tree, so that the core announced (pure Python) is the core that runs.
    """

    def run(self) -> None:
        """Build; in place, a failure also takes away the stale accelerator."""
        inplace = self.inplace
        super().run()
        if inplace and NOT_BUILT:
            build_py = self.get_finalized_command("build_py")
            for ext in self.extensions:
                stale, _ = self._get_inplace_equivalent(build_py, ext)
                if os.path.exists(stale):
                    os.remove(stale)
                    say(f"removed the stale {stale}")

    def build_extension(self, ext: Extension) -> None:
        """Compile ``ext``; a compiler error leaves the pure-Python core in place."""
        reason = unsupported()
        if reason is not None:
            not_built(reason)
            return
        try:
            super().build_extension(ext)
        except (CCompilerError, CompileError, PlatformError, DistutilsError, OSError) as exc:
            text = str(exc).strip() or type(exc).__name__
            if isinstance(exc, CompileError):  # its output, if it ran, is above
                ran = text.startswith("Command '[")  # the whole command line: too long
                text = "the C compiler failed" + (": its output is above" if ran else f": {text}")
            not_built(text)
            return
        say(f"built the compiled accelerator {Path(self.get_ext_filename(ext.name)).name}")


class BdistWheel(bdist_wheel):
    """``bdist_wheel`` whose wheel is pure Python (``py3-none-any``) when nothing compiled."""

    def run(self) -> None:
        """Build first, then tag the wheel by what was built."""
        if not self.skip_build:
            self.run_command("build")
            self.skip_build = True  # the install step below builds nothing again
        if NOT_BUILT:  # not tried again by the install step below
            self.distribution.ext_modules = []
            self.root_is_pure = True
        super().run()


setup(
    ext_modules=[SPEEDUPS],
    cmdclass={"build_ext": BuildSpeedups, "bdist_wheel": BdistWheel},
)
if NOT_BUILT and "build_ext" in sys.argv[1:]:  # asked for by hand: say it failed
    sys.exit(1)
