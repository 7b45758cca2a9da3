"""Loads the optional compiled accelerator of the core (``_speedups``), or says why not.

The pure-Python core is the reference: the accelerator only shortens its common
paths and falls back to the Python functions for everything else (see
``docs/design.md``, "The compiled accelerator"). Set ``FUTUREKIT_PURE_PYTHON=1`` to
run without it; CI runs the core tests both ways.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # importing typing costs ~10 ms at import futurekit
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ENV_VAR", "speedups", "status"]

#: Environment variable that turns the accelerator off (any value but ``""``/``"0"``).
ENV_VAR = "FUTUREKIT_PURE_PYTHON"


def _load() -> tuple[Any, str]:
    if os.environ.get(ENV_VAR, "") not in ("", "0"):
        return None, f"pure Python ({ENV_VAR} is set)"
    if sys.implementation.name != "cpython":
        name = sys.implementation.name
        return None, f"pure Python (the accelerator is for CPython, this is {name})"
    try:
        from . import _speedups  # type: ignore[attr-defined]
    except ImportError as exc:  # not built (no compiler, free-threaded CPython, ...)
        if "main interpreter only" in str(exc):
            return None, "pure Python (a sub-interpreter: the accelerator serves the main one)"
        return None, f"pure Python (the accelerator is not built: {exc})"
    if not _speedups.usable():  # its C globals are the main interpreter's
        return None, "pure Python (a sub-interpreter: the accelerator serves the main one)"
    return _speedups, "compiled accelerator"


#: The compiled module, or None when the pure-Python core runs.
speedups: Any
#: What runs, in words (``futurekit doctor`` prints it).
status: str
speedups, status = _load()
