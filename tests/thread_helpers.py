"""Helpers shared by the test packages (``tests/`` is on ``sys.path`` under pytest)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from futurekit import Future, TimeoutError

__all__ = ["race_short_timeouts", "run_in_thread"]


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


def race_short_timeouts(wait: Callable[[Future[int], float], int], rounds: int, count: int) -> None:
    """``count`` threads poll ``wait(fut, 0.0005)`` while ``fut`` completes, ``rounds`` times.

    Each waiter times out over and over, then sees the value; no waiter stays
    registered on the future and no poll raised anything but the timeout.
    """
    for _ in range(rounds):
        fut: Future[int] = Future()
        seen: list[int] = []
        errors: list[BaseException] = []

        def poll(
            fut: Future[int] = fut, seen: list[int] = seen, errors: list[BaseException] = errors
        ) -> None:
            while True:
                try:
                    seen.append(wait(fut, 0.0005))
                    return
                except TimeoutError:
                    continue
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)
                    return

        threads = [threading.Thread(target=poll) for _ in range(count)]
        for t in threads:
            t.start()
        time.sleep(0.002)
        fut.set_result(9)
        for t in threads:
            t.join(30)
        assert not errors and seen == [9] * count
        assert not fut._waiters
