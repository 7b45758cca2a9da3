"""Running callbacks: inline up to a small depth, then on a per-thread trampoline.

torch runs the callbacks of a chain recursively and crashes at about 8,000 links.
futurekit runs completions inline while the nesting depth on this thread is below
:data:`MAX_INLINE_DEPTH` (so shallow chains keep torch's exact order) and queues
deeper ones on a per-thread trampoline that the outermost running frame drains.
A ``wait()`` on a thread with queued work drains that work first, so code that
completes a future inside a callback and then waits on its consequences does not
deadlock.
"""

from __future__ import annotations

import threading
from collections import deque

TYPE_CHECKING = False  # importing typing costs ~10 ms at import futurekit
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

__all__ = ["MAX_INLINE_DEPTH", "drain_until", "has_queued_work", "run_callbacks"]

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


_local = threading.local()


def _state() -> _ThreadState:
    try:
        state: _ThreadState = _local.state
    except AttributeError:
        state = _local.state = _ThreadState()
    return state


def run_callbacks(fut: Any, callbacks: Iterable[Any], run_all: _RunAll) -> None:
    """Run ``run_all(fut, callbacks)`` now, or queue it when nested too deeply."""
    try:
        st: _ThreadState = _local.state
    except AttributeError:
        st = _state()
    depth = st.depth
    if depth >= MAX_INLINE_DEPTH:
        st.queue.append((fut, callbacks, run_all))
        return
    st.depth = depth + 1
    try:
        run_all(fut, callbacks)
        if depth == 0:
            queue = st.queue
            while queue:
                qfut, qcbs, qrun_all = queue.popleft()
                qrun_all(qfut, qcbs)
    finally:
        st.depth = depth


def has_queued_work() -> bool:
    """Whether this thread's trampoline holds deferred callbacks."""
    try:
        return bool(_local.state.queue)
    except AttributeError:
        return False


def drain_until(done: Callable[[], bool]) -> None:
    """Run this thread's deferred callbacks until ``done()`` or the queue is empty."""
    st = _state()
    queue = st.queue
    depth = st.depth
    st.depth = depth + 1
    try:
        while queue and not done():
            qfut, qcbs, qrun_all = queue.popleft()
            qrun_all(qfut, qcbs)
    finally:
        st.depth = depth
