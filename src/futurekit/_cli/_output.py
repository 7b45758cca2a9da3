"""What every ``futurekit`` command shares: exit statuses and how a failure is printed.

:mod:`.main` dispatches to the commands and :mod:`.doctor` is one of them; both
import this module, which imports neither.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "failure_line"]

#: Exit statuses.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
#: The reader of our output went away (``futurekit doctor | head -1``): 128 + SIGPIPE.
EXIT_BROKEN_PIPE = 141


def failure_line(failure: dict[str, Any]) -> str:
    """A plugin that failed, as ``name (distribution d)[, backend b]: error[; fix]``."""
    name = failure.get("plugin") or failure.get("name") or "?"
    dist = failure.get("distribution")
    where = f" (distribution {dist})" if dist and dist != name else ""
    backend = f", backend {failure['backend']}" if failure.get("backend") else ""
    fix = f"; {failure['fix']}" if failure.get("fix") else ""
    return f"{name}{where}{backend}: {failure.get('error', '')}{fix}"
