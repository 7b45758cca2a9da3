"""Helpers shared by the test packages (``tests/`` is on ``sys.path`` under pytest)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

__all__ = ["run_in_thread"]


def run_in_thread(fn: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Run ``fn`` in a daemon thread; fail (instead of hanging) if it does not return."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        pytest.fail(f"{getattr(fn, '__name__', fn)!r} did not return within {timeout} s (hang)")
    if "error" in box:
        raise box["error"]
    return box.get("value")
