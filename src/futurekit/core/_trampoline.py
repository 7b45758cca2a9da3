"""The per-thread trampoline: completions nested deeper than a few levels run later.

torch runs the callbacks of a chain recursively and crashes at about 8,000 links.
futurekit runs completions inline while the nesting depth on this thread is below
:data:`MAX_INLINE_DEPTH` (so shallow chains keep torch's exact order) and queues
deeper ones here; the outermost dispatching frame of the thread drains the queue.
A ``wait()`` on a thread with queued work drains that work first, so code that
completes a future inside a callback and then waits on its consequences does not
deadlock.
"""

from __future__ import annotations

import threading

TYPE_CHECKING = False  # importing typing costs ~10 ms at import futurekit
if TYPE_CHECKING:
    from typing import Any

__all__ = ["MAX_INLINE_DEPTH", "ThreadState", "has_queued_work", "local", "state"]

#: Nesting depth of completions run inline before the trampoline takes over.
MAX_INLINE_DEPTH = 24


class ThreadState:
    """Per-thread dispatch state; one object, read once per completion.

    ``depth`` counts the draining frames of this thread; ``pending`` is a stack of
    batches ``[future, None, first, rest, index]`` of registrations handed to this
    thread by completions (see :func:`futurekit.core._completion.drain`).
    """

    __slots__ = ("depth", "pending")

    def __init__(self) -> None:
        self.depth = 0
        self.pending: list[list[Any]] = []


local = threading.local()


def state() -> ThreadState:
    """This thread's dispatch state (created on first use)."""
    try:
        st: ThreadState = local.state
    except AttributeError:
        st = local.state = ThreadState()
    return st


def has_queued_work() -> bool:
    """Whether this thread's trampoline holds deferred callbacks."""
    try:
        return bool(local.state.pending)
    except AttributeError:
        return False
