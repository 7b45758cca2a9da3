"""Registering callbacks on a future, and removing them again.

``then`` and ``add_done_callback`` append to the future's FIFO (``_cb1``, then the
``_cbs`` list); the any-of combinators and ``await`` use removable registrations
(``_rm``, a dict) that they take back when they finish, so a long-lived future does not
accumulate callbacks. Every critical section here follows the rules of
:mod:`._completion`: no call and no allocation while the lock is held, so the lists and
dicts are allocated before it is taken (and the attempt retried if a peek was stale), and
each section drops a ``spare`` 3-tuple last, for the lock's exit (see ``_Lock``).
"""

from __future__ import annotations

from ._completion import FutureBase, lock, run_now

TYPE_CHECKING = False  # importing typing costs ~10 ms at import futurekit
if TYPE_CHECKING:
    from typing import Any

__all__ = ["register", "register_removable", "retrieved", "unregister"]


def register(fut: FutureBase, reg: Any, observe: bool = True) -> None:
    """Append ``reg`` to the future's FIFO, or run it now if the future is complete.

    ``observe`` marks the future as watched (its failure is then not reported as
    never retrieved).
    """
    one: tuple[Any] | None = None
    fresh: list[Any] | None = None
    if fut._cb1 is not None:  # a peek: allocate outside the lock (no GC under it)
        if fut._cbs is None:
            fresh = [reg]
        else:
            one = (reg,)
    while True:
        spare = (fut, reg, one)  # dropped last under the lock: its exit reuses it (_Lock)
        with lock:
            if fut._state:
                del spare
                break
            if observe:
                fut._observed = True
            if fut._cb1 is None:
                fut._cb1 = reg
                del spare
                return
            cbs = fut._cbs
            if cbs is None:
                if fresh is not None:
                    fut._cbs = fresh
                    del spare
                    return
            elif one is not None:
                cbs += one
                del spare
                return
            del spare
        fresh = [reg]  # the peek was stale: allocate, then retry
        one = (reg,)
    if observe:
        retrieved(fut)
    run_now(fut, reg)


def register_removable(fut: FutureBase, reg: Any) -> int | None:
    """Register an internal callback that :func:`unregister` can remove in O(1).

    Removable registrations run after the FIFO ones. Returns the handle, or None if
    the future was complete and ``reg`` ran already.
    """
    key = id(reg)
    fresh: dict[int, Any] | None = {} if fut._rm is None else None
    while True:
        spare = (fut, reg, fresh)  # dropped last under the lock: its exit reuses it (_Lock)
        with lock:
            if fut._state:
                del spare
                break
            fut._observed = True
            rm = fut._rm
            if rm is not None:
                rm[key] = reg
                del spare
                return key
            if fresh is not None:
                fresh[key] = reg
                fut._rm = fresh
                del spare
                return key
            del spare
        fresh = {}
    retrieved(fut)
    run_now(fut, reg)
    return None


def unregister(fut: FutureBase, handle: int | None) -> None:
    """Remove a removable registration by its handle (idempotent; None is ignored).

    The caller keeps a reference to the registration, so no object dies under the lock.
    """
    if handle is None:
        return
    spare = (fut, handle, None)  # dropped last under the lock: its exit reuses it (_Lock)
    with lock:
        rm = fut._rm
        if rm is not None and handle in rm:
            del rm[handle]
        del spare


def retrieved(fut: FutureBase) -> None:
    """The outcome was seen: disarm this future's never-retrieved guard."""
    fut._observed = True
    guard = fut._guard
    if guard is not None:
        guard.exc = None
        fut._guard = None
