"""Blocking until a future completes: waiter registration, timeouts, interruption.

A blocked ``wait()`` registers a waiter (an acquired ``threading.Lock``) in the
future's ``_waiters`` and blocks acquiring it again; completion releases it. The
acquire releases the GIL and is interrupted by Ctrl-C in the main thread, which
removes the waiter and leaves the future usable. A waiter also re-checks the
future once a second, so even a wake-up lost to an interrupt in the completing
thread costs latency, never a hang.
"""

from __future__ import annotations

import _thread
import os
import time

from ._completion import drain_leftovers, lock

TYPE_CHECKING = False  # importing typing costs ~10 ms at import futurekit
if TYPE_CHECKING:
    from ._completion import FutureBase

__all__ = ["SPIN_ENV_VAR", "block", "check_timeout", "spin_us"]

_new_waiter = _thread.allocate_lock  # threading.Lock (threading costs ~5 ms to import)
_monotonic = time.monotonic
#: Longest single sleep of a waiter before it re-checks the future's state.
_SLICE = 1.0


#: Environment variable: microseconds a blocked ``wait()`` of the compiled accelerator
#: spins (GIL released) before it sleeps; ``0`` turns spinning off.
SPIN_ENV_VAR = "FUTUREKIT_SPIN_US"
_DEFAULT_SPIN_US = 20.0
_INF = float("inf")  # math.inf and math.nan, without importing math
_NAN = float("nan")  # (x != x is NaN)


def spin_us() -> float:
    """The accelerator's spin before sleeping, in µs (``FUTUREKIT_SPIN_US``, default 20).

    A bad value warns and keeps the default.
    """
    raw = os.environ.get(SPIN_ENV_VAR, "")
    if not raw:
        return _DEFAULT_SPIN_US
    try:
        value = float(raw)
    except ValueError:
        value = _NAN
    if value != value or value < 0 or value > 1e6:
        import warnings

        warnings.warn(
            f"{SPIN_ENV_VAR}={raw!r} is not a number of microseconds between 0 and 1e6; "
            f"using {_DEFAULT_SPIN_US}",
            RuntimeWarning,
            stacklevel=2,
        )
        return _DEFAULT_SPIN_US
    return value


def check_timeout(timeout: object) -> float | None:
    """Validate a ``timeout=`` argument: seconds >= 0; ``None`` or infinity wait forever.

    Raises:
        TypeError: not a number (``bool`` is refused too).
        ValueError: negative or NaN.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, got {timeout!r}")
    try:
        seconds = float(timeout)
    except OverflowError:  # an int beyond float range: longer than any wait can last
        seconds = _INF
    if seconds != seconds or seconds < 0:
        raise ValueError(f"timeout must be >= 0 seconds, got {timeout!r}")
    return None if seconds == _INF else seconds


def block(fut: FutureBase, timeout: float | None) -> bool:
    """Block until ``fut`` completes; False if ``timeout`` seconds passed first.

    Work this thread still owes (callbacks deferred by deep nesting or by an
    interrupt) runs first: it may be what completes ``fut``.
    """
    drain_leftovers()
    if fut._state:
        return True
    if timeout == 0:
        return bool(fut._state)
    waiter = _new_waiter()
    waiter.acquire()
    key = id(waiter)
    fresh = {key: waiter}
    spare = (fut, waiter, fresh)  # dropped last under the lock: its exit reuses it (_Lock)
    with lock:
        if fut._state:
            del spare
            return True
        waiters = fut._waiters
        if waiters is None:
            fut._waiters = fresh
        else:
            waiters[key] = waiter
        del spare
    try:
        if timeout is None:
            while not waiter.acquire(timeout=_SLICE):
                if fut._state:
                    break
            return True
        deadline = _monotonic() + timeout
        while True:
            left = deadline - _monotonic()
            if left <= 0:
                break
            if waiter.acquire(timeout=min(left, _SLICE)) or fut._state:
                return True
    except BaseException:  # KeyboardInterrupt: leave the future usable
        _drop(fut, key)
        raise
    _drop(fut, key)
    return bool(fut._state)


def _drop(fut: FutureBase, key: int) -> None:
    spare = (fut, key, None)  # dropped last under the lock: its exit reuses it (_Lock)
    with lock:
        waiters = fut._waiters
        if waiters is not None and key in waiters:
            del waiters[key]  # the caller holds the waiter: nothing dies here
        del spare
