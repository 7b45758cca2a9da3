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

import _thread
import sys

from ._accelerator import speedups

TYPE_CHECKING = False  # importing typing costs ~10 ms at import futurekit
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "HEADROOM",
    "MAX_BUMP",
    "MAX_INLINE_DEPTH",
    "ThreadState",
    "fix_limit",
    "has_queued_work",
    "late_limit",
    "local",
    "restore_limit",
    "state",
]

#: Nesting depth of completions run inline before the trampoline takes over.
MAX_INLINE_DEPTH = 24


class ThreadState:
    """Per-thread dispatch state; one object, read once per completion.

    ``depth`` counts the draining frames of this thread; ``pending`` is a stack of
    batches ``[future, None, first, rest, index]`` of registrations handed to this
    thread by completions (see :func:`futurekit.core._completion.drain`);
    ``flushes`` counts the waits that ran the whole stack (``drain_leftovers``).
    """

    __slots__ = ("depth", "flushes", "pending")

    def __init__(self) -> None:
        self.depth = 0
        self.flushes = 0
        self.pending: list[list[Any]] = []


if not TYPE_CHECKING and speedups is not None:
    # the same fields as a C struct, read directly by the accelerator's fast paths
    ThreadState = speedups.ThreadState

local = _thread._local()  # threading.local, without importing threading (~5 ms)


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


# -- recursion head-room -------------------------------------------------------------
# A call that fails at entry for lack of stack is retried with a little more recursion
# limit (see ``_completion.drain``); these helpers give it back.

_getlimit = sys.getrecursionlimit
_setlimit = sys.setrecursionlimit
#: Extra recursion limit granted to a call that could not start for lack of stack.
HEADROOM = 64
#: At most this much extra limit per drain: beyond it a RecursionError is an error.
MAX_BUMP = 4 * HEADROOM

#: ``[limit we left, extra in it]``: recursion limit still to take back (a frame at
#: the limit cannot lower it); the public methods take it back when they return.
late_limit = [0, 0]


def restore_limit(extra: int) -> None:
    """Lower the recursion limit by ``extra`` again, or leave it for :func:`fix_limit`."""
    try:
        _setlimit(_getlimit() - extra)
    except RecursionError:  # too deep to lower it here: the public method does it
        late_limit[1] += extra
        late_limit[0] = _getlimit()


def fix_limit() -> None:
    """Take back extra recursion limit that could not be lowered at the limit itself."""
    limit, extra = late_limit
    if _getlimit() != limit:  # changed by someone else since: not ours to lower
        late_limit[1] = 0
        return
    try:
        _setlimit(limit - extra)
    except RecursionError:  # still too deep: a later call does it
        return
    late_limit[1] = 0
