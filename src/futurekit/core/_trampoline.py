"""Running callbacks: inline up to a small depth, then on a per-thread trampoline.

torch runs the callbacks of a chain recursively and crashes at about 8,000 links.
futurekit runs completions inline while the nesting depth on this thread is below
:data:`MAX_INLINE_DEPTH` (so shallow chains keep torch's exact order) and queues
deeper ones on a per-thread trampoline that the outermost running frame drains.
A ``wait()`` on a thread with queued work drains that work first, so code that
completes a future inside a callback and then waits on its consequences does not
deadlock.

The runner itself, ``_run_callbacks`` in ``_future.py``, lives next to the callback
loop it inlines; this module holds the per-thread state it shares with ``wait()``.
"""

from __future__ import annotations

import threading
from collections import deque

TYPE_CHECKING = False  # importing typing costs ~10 ms at import futurekit
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

__all__ = ["MAX_INLINE_DEPTH", "drain_until", "has_queued_work", "local", "state"]

#: Nesting depth of completions run inline before the trampoline takes over.
MAX_INLINE_DEPTH = 24

if TYPE_CHECKING:
    #: ``run_all(fut, callbacks)``: runs a batch of callbacks of one future.
    _RunAll = Callable[[Any, Iterable[Any]], None]


class _ThreadState:
    """Per-thread trampoline state; one object, read once per completion."""

    __slots__ = ("depth", "queue")

    def __init__(self) -> None:
        self.depth = 0
        self.queue: deque[tuple[Any, Iterable[Any], _RunAll]] = deque()


local = threading.local()


def state() -> _ThreadState:
    """This thread's trampoline state (created on first use)."""
    try:
        state: _ThreadState = local.state
    except AttributeError:
        state = local.state = _ThreadState()
    return state


def has_queued_work() -> bool:
    """Whether this thread's trampoline holds deferred callbacks."""
    try:
        return bool(local.state.queue)
    except AttributeError:
        return False


def drain_until(done: Callable[[], bool]) -> None:
    """Run this thread's deferred callbacks until ``done()`` or the queue is empty."""
    st = state()
    queue = st.queue
    depth = st.depth
    st.depth = depth + 1
    try:
        while queue and not done():
            qfut, qcbs, qrun_all = queue.popleft()
            qrun_all(qfut, qcbs)
    finally:
        st.depth = depth
