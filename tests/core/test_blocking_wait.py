"""Blocking ``wait()``: every path into the waiter, the timeout given positionally or by keyword.

With the compiled accelerator on Linux a blocked ``wait()`` sleeps on a futex
``Waiter``; with the pure-Python core on an acquired ``threading.Lock``. Each test
checks, while the call is blocked, which waiter it registered, so that both spellings
(``wait(5)`` and ``wait(timeout=5)``, and ``result(5)``) are seen to reach the futex
waiter's timeout, Ctrl-C and wake-up paths, not only the Python fallback.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from futurekit import Future, TimeoutError
from futurekit.core import _accelerator
from thread_helpers import race_short_timeouts

pytestmark = pytest.mark.timeout(60)

#: The waiter a blocked wait() registers with the core that runs.
EXPECTED_WAITER = (
    "Waiter" if _accelerator.speedups is not None and sys.platform == "linux" else "lock"
)

#: How the timeout is passed: (label, call).
SPELLINGS: dict[str, Callable[[Future[Any], float | None], Any]] = {
    "positional": lambda fut, t: fut.wait(t),
    "keyword": lambda fut, t: fut.wait(timeout=t),
    "result": lambda fut, t: fut.result(t),
}


def _waiter_of(fut: Future[Any], deadline: float = 10.0) -> str:
    """The type name of the waiter a blocked wait() registered on ``fut``."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        waiters = fut._waiters
        if waiters:
            return type(next(iter(waiters.values()))).__name__
        time.sleep(0.0005)
    raise AssertionError("no waiter was registered: wait() did not block")


@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_a_timeout_runs_out(spelling: str) -> None:
    fut: Future[int] = Future()
    seen: list[str] = []
    watcher = threading.Thread(target=lambda: seen.append(_waiter_of(fut)))
    watcher.start()
    with pytest.raises(TimeoutError, match=r"within 0\.3 seconds"):
        SPELLINGS[spelling](fut, 0.3)
    watcher.join(10)
    assert seen == [EXPECTED_WAITER]
    assert not fut._waiters  # taken back: the future stays usable
    fut.set_result(4)
    assert SPELLINGS[spelling](fut, 1) == 4


@pytest.mark.parametrize("timeout", [None, 30.0], ids=["forever", "with-timeout"])
@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_another_thread_wakes_it(spelling: str, timeout: float | None) -> None:
    fut: Future[str] = Future()
    seen: list[str] = []

    def complete() -> None:
        seen.append(_waiter_of(fut))
        fut.set_result("woken")

    thread = threading.Thread(target=complete)
    thread.start()
    assert SPELLINGS[spelling](fut, timeout) == "woken"
    thread.join(10)
    assert seen == [EXPECTED_WAITER]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("timeout", [None, 30.0], ids=["forever", "with-timeout"])
@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_ctrl_c_interrupts_it(spelling: str, timeout: float | None) -> None:
    fut: Future[int] = Future()
    main = threading.get_ident()
    seen: list[str] = []

    def interrupt() -> None:
        seen.append(_waiter_of(fut))
        signal.pthread_kill(main, signal.SIGINT)

    thread = threading.Thread(target=interrupt, daemon=True)
    thread.start()
    with pytest.raises(KeyboardInterrupt):
        SPELLINGS[spelling](fut, timeout)
    thread.join(10)
    assert seen == [EXPECTED_WAITER]
    assert not fut._waiters  # taken back: the future stays usable
    threading.Timer(0.01, fut.set_result, args=(3,)).start()
    assert SPELLINGS[spelling](fut, 10) == 3


@pytest.mark.parametrize("spelling", ["positional", "keyword"])
def test_a_ping_pong_loses_no_wake_up(spelling: str) -> None:
    n = 2000
    call = SPELLINGS[spelling]
    a: list[Future[int]] = [Future() for _ in range(n)]
    b: list[Future[int]] = [Future() for _ in range(n)]

    def other() -> None:
        for i in range(n):
            b[i].set_result(call(a[i], 30) + 1)

    thread = threading.Thread(target=other)
    thread.start()
    assert _waiter_of(a[0]) == EXPECTED_WAITER  # the other thread blocks on the first ping
    total = 0
    for i in range(n):
        a[i].set_result(i)
        total += call(b[i], 30)
    thread.join(30)
    assert total == sum(range(1, n + 1))


@pytest.mark.parametrize("spelling", ["positional", "keyword"])
def test_short_timeouts_racing_a_completion(spelling: str) -> None:
    """Waiters time out over and over while the future completes: each sees it complete."""
    race_short_timeouts(SPELLINGS[spelling], rounds=20, count=4)
