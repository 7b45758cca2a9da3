"""Checks for waiter.py: wake-before-wait, wake-after-wait, timeout, SIGINT, stress.

Run: python benchmarks/crossthread/check_waiter.py   (exit status 0 = all passed)

Every available implementation is checked (CWaiter only once build.sh has built _xwait).
The SIGINT checks send a real SIGINT to this process while the main thread is blocked
in wait() and expect KeyboardInterrupt out of it within a second.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import waiter

IMPLS: list[Any] = [c for c in (waiter.CWaiter, waiter.EventfdWaiter, waiter.LockWaiter) if c]
if not hasattr(os, "eventfd"):
    IMPLS.remove(waiter.EventfdWaiter)


def later(delay: float, fn: Any) -> threading.Thread:
    t = threading.Timer(delay, fn)
    t.daemon = True
    t.start()
    return t


def check_wake_before_wait(cls: Any) -> None:
    w = cls()
    assert w.wake() is True
    assert w.wake() is False, "second wake must report False"
    t0 = time.monotonic()
    assert w.wait() is True
    assert w.wait(0) is True
    assert w.wait(5) is True
    assert time.monotonic() - t0 < 0.5


def check_wake_after_wait(cls: Any) -> None:
    for timeout in (None, 5.0):
        w = cls()
        later(0.05, w.wake)
        t0 = time.monotonic()
        assert w.wait(timeout) is True
        dt = time.monotonic() - t0
        assert 0.03 < dt < 2, dt
    # woken from another thread while that thread waits on something else
    w = cls()
    done = threading.Event()
    result: list[bool] = []
    th = threading.Thread(target=lambda: (result.append(w.wait()), done.set()), daemon=True)
    th.start()
    time.sleep(0.02)
    w.wake()
    assert done.wait(2) and result == [True]


def check_timeout(cls: Any) -> None:
    w = cls()
    t0 = time.monotonic()
    assert w.wait(0.05) is False
    dt = time.monotonic() - t0
    assert 0.045 <= dt < 1, dt
    assert w.wait(0) is False
    assert w.wait(-1) is False
    # a wake after a timed-out wait still counts, and a fresh waiter on this thread
    # must not be woken by the late wake (stale eventfd count / futex word)
    w.wake()
    assert w.wait(0) is True
    fresh = cls()
    t0 = time.monotonic()
    assert fresh.wait(0.05) is False
    assert time.monotonic() - t0 >= 0.045


def check_sigint(cls: Any) -> None:
    assert threading.current_thread() is threading.main_thread()
    pid = os.getpid()
    for timeout in (None, 30.0):
        w = cls()
        later(0.1, lambda: os.kill(pid, signal.SIGINT))
        t0 = time.monotonic()
        try:
            w.wait(timeout)
        except KeyboardInterrupt:
            dt = time.monotonic() - t0
            assert dt < 1.5, f"KeyboardInterrupt came {dt:.2f}s after SIGINT"
        else:
            raise AssertionError("wait() returned instead of raising KeyboardInterrupt")
        # the waiter still works after the interrupt
        later(0.02, w.wake)
        assert w.wait(5) is True
    # a signal whose handler does not raise: wait() keeps waiting, then gets the wake
    seen: list[int] = []
    old = signal.signal(signal.SIGUSR1, lambda s, f: seen.append(s))
    try:
        w = cls()
        later(0.05, lambda: os.kill(pid, signal.SIGUSR1))
        later(0.2, w.wake)
        t0 = time.monotonic()
        assert w.wait() is True
        assert seen and time.monotonic() - t0 >= 0.15
    finally:
        signal.signal(signal.SIGUSR1, old)


def check_stress(cls: Any, n: int = 20000) -> None:
    """Ping-pong with fresh waiters, plus waits that time out racing with wakes."""
    a = [cls() for _ in range(n)]
    b = [cls() for _ in range(n)]
    errors: list[BaseException] = []

    def other() -> None:
        try:
            for x, y in zip(a, b, strict=True):
                assert x.wait(10)
                y.wake()
        except BaseException as exc:  # reported below
            errors.append(exc)

    th = threading.Thread(target=other, daemon=True)
    th.start()
    for x, y in zip(a, b, strict=True):
        x.wake()
        assert y.wait(10)
    th.join(10)
    assert not errors and not th.is_alive(), errors
    # timeouts racing with wakes: the result must be consistent with a later wait
    for i in range(2000):
        w = cls()
        t = threading.Thread(target=w.wake)
        t.start()
        r = w.wait(1e-5 * (i % 5))
        t.join()
        assert w.wait(1) is True, "woken waiter must report True after the wake"
        del r


CHECKS = [check_wake_before_wait, check_wake_after_wait, check_timeout, check_sigint, check_stress]


def main() -> int:
    failed = 0
    print(f"waiter.Waiter = {waiter.Waiter.__name__} ({waiter.IMPLEMENTATION})")
    for cls in IMPLS:
        for check in CHECKS:
            t0 = time.monotonic()
            try:
                check(cls)
            except BaseException as exc:
                failed += 1
                print(f"FAIL {cls.__name__:14s} {check.__name__}: {exc!r}")
            else:
                print(f"ok   {cls.__name__:14s} {check.__name__} ({time.monotonic() - t0:.2f}s)")
    print("all passed" if not failed else f"{failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
