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
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["MAX_INLINE_DEPTH", "drain_until", "has_queued_work", "run_callbacks"]

#: Nesting depth of completions run inline before the trampoline takes over.
MAX_INLINE_DEPTH = 24

#: ``run_all(fut, callbacks)``: runs a batch of callbacks of one future.
_RunAll = Callable[[Any, Iterable[Any]], None]


class _ThreadState(threading.local):
    depth: int = 0
    queue: deque[tuple[Any, Iterable[Any], _RunAll]] | None = None


_tls = _ThreadState()


def run_callbacks(fut: Any, callbacks: Iterable[Any], run_all: _RunAll) -> None:
    """Run ``run_all(fut, callbacks)`` now, or queue it when nested too deeply."""
    tls = _tls
    depth = tls.depth
    if depth >= MAX_INLINE_DEPTH:
        queue = tls.queue
        if queue is None:
            queue = tls.queue = deque()
        queue.append((fut, callbacks, run_all))
        return
    tls.depth = depth + 1
    try:
        run_all(fut, callbacks)
        if depth == 0:
            queue = tls.queue
            while queue:
                qfut, qcbs, qrun_all = queue.popleft()
                qrun_all(qfut, qcbs)
    finally:
        tls.depth = depth


def has_queued_work() -> bool:
    """Whether this thread's trampoline holds deferred callbacks."""
    return bool(_tls.queue)


def drain_until(done: Callable[[], bool]) -> None:
    """Run this thread's deferred callbacks until ``done()`` or the queue is empty."""
    tls = _tls
    queue = tls.queue
    depth = tls.depth
    tls.depth = depth + 1
    try:
        while queue and not done():
            qfut, qcbs, qrun_all = queue.popleft()
            qrun_all(qfut, qcbs)
    finally:
        tls.depth = depth
