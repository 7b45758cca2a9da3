"""One-shot cross-thread waiter, the candidate for futurekit's ``Future.wait`` path.

Interface (all three classes)::

    w = Waiter()
    w.wait(timeout=None) -> bool   # True once wake() ran, False on timeout; Ctrl-C in the
                                   # main thread raises KeyboardInterrupt out of it
    w.wake() -> bool               # any thread, before or after wait(); False if repeated

``Waiter`` picks the fastest available implementation:

* ``CWaiter`` - the optional compiled accelerator ``_xwait.FutexWaiter`` (built by
  ``build.sh``): wait releases the GIL, spins up to ``SPIN_NS`` polling a word (with a
  ``sched_yield()`` every 32 polls so a waker that shares the CPU gets to run), then sleeps
  in ``FUTEX_WAIT``; EINTR runs the Python signal handlers. ``wake`` stores the word and
  only when a sleeper announced itself issues ``FUTEX_WAKE`` *with the GIL released*.
* ``EventfdWaiter`` - pure Python, Linux: one ``eventfd`` per waiting thread, reused by
  every wait of that thread. ``wake`` calls ``os.eventfd_write`` which releases the GIL
  around the syscall - the same "notify without the GIL" order as torch - so the woken
  thread does not bounce off the GIL held by the waker.
* ``LockWaiter`` - pure Python, portable reference: a pre-acquired ``threading.Lock``
  (today's futurekit design). ``Lock.release`` wakes the sleeper while the waker holds
  the GIL, which costs a second sleep/wake on the GIL when both threads share a CPU.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

__all__ = ["CWaiter", "EventfdWaiter", "LockWaiter", "Waiter", "IMPLEMENTATION"]

#: Spin budget of the compiled waiter before it sleeps in the kernel (see REPORT.md).
SPIN_NS = 20_000

_TIMEOUT_MAX = threading.TIMEOUT_MAX


class LockWaiter:
    """Portable reference: wait = acquire a pre-acquired Lock, wake = release it."""

    __slots__ = ("_lock", "_woken")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._woken = False

    def wake(self) -> bool:
        # Lock.release raises on an unlocked lock: guard the "at most once" contract.
        with _state_lock:
            if self._woken:
                return False
            self._woken = True
        self._lock.release()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is None:
            ok = self._lock.acquire()  # interruptible: SIGINT -> KeyboardInterrupt
        else:
            ok = self._lock.acquire(True, min(max(timeout, 0.0), _TIMEOUT_MAX))
        if ok:
            self._lock.release()  # stay "woken" for later wait() calls
        return ok


# Guards the tiny publish/wake handshake of EventfdWaiter and LockWaiter. A lock (not bare
# attribute stores) keeps them correct without a GIL too (free-threaded CPython).
_state_lock = threading.Lock()


class _ThreadFd:
    """The calling thread's eventfd, closed when the thread's locals die."""

    __slots__ = ("fd",)

    def __init__(self) -> None:
        self.fd = os.eventfd(0, os.EFD_CLOEXEC)

    def __del__(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


_local = threading.local()


def _thread_fd() -> int:
    try:
        return _local.h.fd
    except AttributeError:
        _local.h = h = _ThreadFd()
        return h.fd


if hasattr(os, "register_at_fork"):

    def _after_fork_in_child() -> None:
        # The parent's descriptors are shared with the parent: never read them here.
        h = getattr(_local, "h", None)
        if h is not None:
            del _local.h

    os.register_at_fork(after_in_child=_after_fork_in_child)


class EventfdWaiter:
    """Pure Python, Linux: per-thread eventfd; the wake syscall runs without the GIL."""

    __slots__ = ("_fd", "_woken")

    def __init__(self) -> None:
        self._fd: int | None = None
        self._woken = False

    def wake(self) -> bool:
        with _state_lock:
            if self._woken:
                return False
            self._woken = True
            fd = self._fd
        if fd is not None:
            os.eventfd_write(fd, 1)  # GIL released around write(2)
        return True

    def wait(self, timeout: float | None = None) -> bool:
        if self._woken:
            return True
        fd = _thread_fd()
        with _state_lock:
            if self._woken:
                return True
            self._fd = fd
        if timeout is None:
            while not self._woken:
                # A stale count (a wake that lost a race with an earlier timeout of this
                # thread) just makes one extra pass. os.read, not os.eventfd_read: os.read
                # retries on EINTR after running the signal handlers (PEP 475), so Ctrl-C
                # raises KeyboardInterrupt here; os.eventfd_read (3.11) raises
                # InterruptedError instead.
                os.read(fd, 8)
            return True
        import select
        import time

        deadline = time.monotonic() + max(timeout, 0.0)
        while not self._woken:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], min(remaining, _TIMEOUT_MAX))[0]:
                with _state_lock:
                    if self._woken:
                        break
                    self._fd = None  # a later wake() writes nothing
                return False
            os.read(fd, 8)  # readable: does not block
        return True


try:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "build"))
    from _xwait import FutexWaiter as _FutexWaiter  # type: ignore[import-not-found]
except ImportError:
    _FutexWaiter = None
finally:
    sys.path.pop(0)

if _FutexWaiter is not None:

    class CWaiter(_FutexWaiter):  # type: ignore[misc,valid-type]
        """Compiled: spin (GIL released, yielding) up to SPIN_NS, then futex; wake without GIL."""

        __slots__ = ()

        def __init__(self) -> None:
            super().__init__(spin_ns=_SPIN, wake_nogil=True, spin_yield=True)

else:
    CWaiter = None  # type: ignore[assignment,misc]


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# Spinning only helps when the waker can run on another CPU at the same time. Decided once
# for the process (a thread pinned to one CPU may still be woken from another CPU).
_SPIN = SPIN_NS if _usable_cpus() > 1 else 0

Waiter: Any
if CWaiter is not None:
    Waiter, IMPLEMENTATION = CWaiter, "c-futex"
elif hasattr(os, "eventfd"):
    Waiter, IMPLEMENTATION = EventfdWaiter, "eventfd"
else:
    Waiter, IMPLEMENTATION = LockWaiter, "lock"
