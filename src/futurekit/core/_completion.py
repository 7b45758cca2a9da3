"""The completion path: publish an outcome atomically, then run what was registered.

This module is the one place where a future changes state (see ``docs/design.md``).

* **What is atomic.** One process-wide lock guards every transition. A critical
  section holds only attribute and subscript loads and stores, comparisons, and
  ``+=`` on a list: no call, no allocation of a garbage-collected object, no drop
  of a last reference. CPython runs signal handlers and (3.12+) garbage-collector
  finalizers only at calls and backward jumps, and (3.11) collects only when a
  container is allocated, so no Ctrl-C, no ``__del__`` and no user code can run
  while the lock is held: the lock is never left held and never re-entered.
* **What runs where.** Completing a future stores the outcome, detaches the
  registrations and pushes them, inside the same critical section, onto the
  calling thread's pending stack (:mod:`._trampoline`). From then on nothing
  can be lost: the stack is drained by :func:`drain`, one registration at a
  time, each claimed with a subscript store before it is called. Waiters are
  woken first, then callbacks run in registration order.
* **Nothing lost.** A callback's ``Exception`` is logged (``add_done_callback``) or
  fails the child (``then``); ``KeyboardInterrupt`` and ``SystemExit`` are
  recorded, the remaining callbacks still run, and the first interrupt is raised
  again when the drain ends. A call that fails at entry because the stack is
  nearly full is retried with a little more recursion limit.
"""

from __future__ import annotations

import os
import sys
import threading

from . import _trampoline
from ._accelerator import speedups
from ._errors import CallbackError
from ._reporting import ErrorGuard, from_cancellation, report_callback_error, report_stream_error

TYPE_CHECKING = False  # importing typing costs ~10 ms at import futurekit
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ._device_state import DeviceState

__all__ = [
    "CANCELLED",
    "DONE",
    "FAILED",
    "PENDING",
    "FutureBase",
    "InternalCallback",
    "complete",
    "drain",
    "drain_leftovers",
    "lock",
    "resolve",
    "run_now",
    "under_streams",
]

PENDING = 0
DONE = 1
FAILED = 2
CANCELLED = 3

#: With the accelerator, the compiled module's lock, which its fast paths share.
_raw_lock = threading.Lock() if speedups is None else speedups.lock


class _Lock:
    """``with lock:`` on one lock (``threading.Lock``, or the accelerator's), allocation-free.

    The lock's own bound ``__enter__``/``__exit__`` are stored on the class; being
    builtin methods they are not re-bound on lookup, so entering allocates nothing.
    ``with`` keeps its guarantee: nothing can run between the acquire and the block.
    """

    __slots__ = ()
    __enter__ = _raw_lock.__enter__
    __exit__ = _raw_lock.__exit__
    acquire = _raw_lock.acquire
    release = _raw_lock.release
    locked = _raw_lock.locked


#: Guards every future's transitions; see the module docstring for what may run under it.
lock = _Lock()


def _after_fork_in_child() -> None:
    """A forked child gets a fresh lock: the parent's may be held by a thread not copied.

    The child has only the forking thread; its pending stack is its own and is kept.
    """
    if speedups is not None:
        speedups.after_fork_in_child()  # the fast paths and _Lock share the C lock
        return
    fresh = threading.Lock()
    for name in ("__enter__", "__exit__", "acquire", "release", "locked"):
        setattr(_Lock, name, getattr(fresh, name))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

_MAX_DEPTH = _trampoline.MAX_INLINE_DEPTH
_local = _trampoline.local
_thread_state = _trampoline.state
_getlimit = sys.getrecursionlimit
_setlimit = sys.setrecursionlimit
_HEADROOM = _trampoline.HEADROOM
_MAX_BUMP = _trampoline.MAX_BUMP
_restore_limit = _trampoline.restore_limit
#: ``then`` links marked to run here, under streams already set up.
_HERE = object()


class _PyFutureBase:
    r"""The state every future carries; the public API is :class:`futurekit.Future`.

    ``_cb1`` holds the first registration (most futures have exactly one) and
    ``_cbs`` the next ones, in order (``then`` and ``add_done_callback`` share this
    FIFO). ``_rm`` holds removable registrations of the any-of combinators and
    ``await`` as ``{id(registration): registration}``: O(1) to remove, run after
    the FIFO. ``_waiters`` is ``{id(waiter): waiter}`` for blocked ``wait()`` calls.
    """

    __slots__ = (
        "__weakref__",
        "_cb1",
        "_cbs",
        "_dev",
        "_guard",
        "_observed",
        "_rm",
        "_state",
        "_value",
        "_waiters",
    )

    _state: int
    _value: Any
    _cb1: Any
    _cbs: list[Any] | None
    _rm: dict[int, Any] | None
    _waiters: dict[int, Any] | None
    _dev: DeviceState | None
    _guard: ErrorGuard | None
    _observed: bool


if TYPE_CHECKING:
    FutureBase = _PyFutureBase
else:  # the accelerator's FutureBase has the same fields, as a C struct
    FutureBase = _PyFutureBase if speedups is None else speedups.FutureBase


class InternalCallback:
    """Base for the core's own callbacks: they never touch device data or streams.

    They must be idempotent (``rerun``): one hit by an interrupt is run again, so
    an interrupt can never lose its effect (a counter, a forward, a wake-up).
    """

    __slots__ = ()
    rerun = True

    def __call__(self, fut: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


# -- publishing ------------------------------------------------------------------------
def complete(
    fut: FutureBase, state: int, value: Any, prepared: Any = None, run: bool = True
) -> bool:
    """Publish ``state``/``value`` and run the registrations; False if already complete.

    ``prepared`` is the :class:`DeviceState` from ``DeviceState.prepare``; it is
    published together with the state. With ``run=False`` the registrations are only
    pushed on this thread's pending stack (:func:`drain` completing a ``then`` child:
    its loop takes them next, in the same order, one frame less per link). Raises
    only an interrupt (``KeyboardInterrupt``, ``SystemExit``) that a callback raised,
    after every registration was handed on.
    """
    batch: list[Any] | None = None
    one: Any = None
    pending: Any = None
    st: Any = None
    while True:
        if fut._cb1 is not None or fut._rm is not None:  # a peek: allocate outside the lock
            batch = [fut, -1, None, None, 0, None]
            one = (batch,)
            try:
                st = _local.state
            except AttributeError:
                st = _thread_state()
            pending = st.pending
        with lock:
            if fut._state:
                return False
            if batch is not None or (fut._cb1 is None and fut._rm is None):
                if prepared is not None:  # the device state with the recorded events;
                    fut._dev = prepared  # the old one is its plan's (never freed here)
                fut._value = value
                fut._state = state
                waiters = fut._waiters
                fut._waiters = None
                if batch is not None:
                    batch[2] = fut._cb1
                    batch[3] = fut._cbs
                    batch[5] = fut._rm
                    fut._cb1 = fut._cbs = fut._rm = None
                    pending += one  # handed to this thread: drained below or later
                break
        # A registration arrived between the peek and the lock: allocate, then retry.
    # Drain here, unless the caller's drain takes the batch next or it is too deep.
    here = batch is not None and run and st.depth < _MAX_DEPTH
    try:
        if waiters is not None:
            wake(waiters)
        if state == FAILED and not fut._observed:
            _arm_guard(fut, value)
        if here:
            drain(st, len(pending) - 1 if st.depth else 0)
    except BaseException as exc:
        # Published, then interrupted (a signal at a function entry) or out of stack
        # before the hand-off finished: finish it, then let the interrupt through.
        extra = _HEADROOM if exc.__class__ is RecursionError else 0  # absorbed below
        if extra:
            _setlimit(_getlimit() + extra)
        try:
            if waiters is not None:
                wake(waiters)
            if here and _holds(pending, batch):
                drain(st, len(pending) - 1 if st.depth else 0)
        finally:
            if extra:
                _restore_limit(extra)
        if not extra:
            raise
    return True


def _holds(pending: list[Any], batch: object) -> bool:
    """Whether ``batch`` is still waiting on the pending stack (it was never drained)."""
    return any(item is batch for item in pending)


def resolve(fut: FutureBase, value: Any, run: bool = True) -> bool:
    """Complete with ``value``; for a device future, find its buffers and record events.

    A buffer on a device outside the future's devices, or a backend error, completes
    the future with that error instead (as torch does).
    """
    dev = fut._dev
    if dev is None:
        return complete(fut, DONE, value, None, run)
    if fut._state:
        return False
    try:
        prepared = dev.prepare(value)
    except Exception as exc:
        return complete(fut, FAILED, exc, None, run)
    return complete(fut, DONE, value, prepared, run)


def wake(waiters: dict[int, Any]) -> None:
    """Wake blocked ``wait()`` calls (each waiter is released at most once)."""
    for waiter in waiters.values():
        try:
            waiter.release()
        except RuntimeError:  # released already (a retry after an interrupt)
            pass


def _arm_guard(fut: FutureBase, value: Any) -> None:
    """Give a failed, unobserved future a guard that warns if nobody retrieves the error."""
    try:
        if from_cancellation(value):
            return
        guard = ErrorGuard(value, id(fut))
    except Exception:  # pragma: no cover - a hostile exception object
        return
    fut._guard = guard
    if fut._observed:  # retrieved meanwhile by another thread
        guard.exc = None


def drain_leftovers() -> None:
    """Run what an interrupt left on this thread's pending stack (nothing, usually)."""
    st = _local.__dict__.get("state")  # no AttributeError raised and caught: ~1 µs less
    if st is not None and st.pending:
        drain(st, 0)


def run_now(fut: FutureBase, reg: Any, here: bool = False) -> None:
    """Run one registration of a completed future in this thread, like a completion.

    Nested deeper than the inline limit it waits on this thread's pending stack for
    the outer drain, unless ``here`` (streams set up for it are current now).
    """
    st = _thread_state()
    pending = st.pending
    pending += ([fut, -1, reg, None, 0, None],)
    if here or st.depth < _MAX_DEPTH:
        mark = len(pending) - 1 if st.depth else 0
        try:
            drain(st, mark)
        except RecursionError:  # drain() could not even start or retry: one frame up, more room
            _setlimit(_getlimit() + _HEADROOM)
            try:
                drain(st, mark)
            finally:
                _restore_limit(_HEADROOM)


# -- running ----------------------------------------------------------------------------
def link_error(parent: FutureBase, exc: BaseException) -> CallbackError:
    """The error of a ``then`` child whose callback raised ``exc``.

    torch wraps every level again, so a failing chain costs quadratic memory; the
    parent's own :class:`CallbackError` is passed on as is (its traceback dropped).
    """
    if exc.__class__ is CallbackError and exc is parent._value:
        exc.__traceback__ = None
        return exc
    return CallbackError.from_exception(exc)


def drain(st: _trampoline.ThreadState, mark: int) -> None:
    """Run this thread's pending registrations above ``mark``, innermost batch first.

    A batch is ``[future, count, first, rest, index, removable]``; each registration is claimed
    with a store into the batch (or by dropping a one-registration batch) before it
    is called, so an interrupt anywhere leaves the stack consistent and a later
    drain continues where this one stopped. An internal callback hit by an interrupt
    is run again (they are idempotent); a user callback counts as run.
    """
    pending = st.pending
    depth = st.depth
    st.depth = depth + 1
    interrupt: BaseException | None = None
    bumped = 0
    # What an interrupt must not lose: ``owed``, a then-child being completed (with
    # ``cstate``, ``outcome`` and ``adopt``, set together with it), and ``running``,
    # the callback in progress (with ``fut``).
    owed: Any = None
    running: Any = None
    try:
        while True:
            try:
                while (len(pending) > mark) if mark else pending:
                    batch = pending[-1]
                    reg = batch[2]
                    if reg is not None:  # claim it: a store, or dropping a one-callback batch
                        if batch[3] is None and batch[5] is None:
                            del pending[-1]
                        else:
                            batch[2] = None
                    else:
                        rest = batch[3]
                        if rest is None:
                            removable = batch[5]
                            if removable is None:
                                del pending[-1]
                                continue
                            batch[3] = list(removable.values())
                            batch[5] = None
                            continue
                        i = batch[4]
                        n = batch[1]
                        if n < 0:
                            n = batch[1] = len(rest)
                        if i >= n:  # this list is done: on to the removable ones
                            batch[3] = None
                            batch[4] = 0
                            batch[1] = -1
                            continue
                        reg = rest[i]
                        batch[4] = i + 1
                    fut = batch[0]
                    running = reg  # cleared once it ran: an interrupt meanwhile finds it
                    if reg.__class__ is tuple:
                        fn, owed, where, adopt = reg
                        cstate = PENDING
                        if where is not _HERE and (where is not None or fut._dev is not None):
                            _run_link_elsewhere(fut, reg)
                            running = owed = None
                            continue
                        try:
                            outcome = fn(fut)
                            cstate = DONE
                        except BaseException as exc:
                            tb = exc.__traceback__
                            if exc.__class__ is RecursionError and tb and not tb.tb_next:
                                raise  # fn never started: the handler below retries it
                            outcome = link_error(fut, exc)
                            cstate = FAILED
                            if interrupt is None and not isinstance(exc, Exception):
                                interrupt = exc
                        running = None
                        # the child's callbacks go on the stack: this loop runs them next
                        if cstate != DONE:
                            complete(owed, cstate, outcome, None, False)
                        elif adopt is not None:
                            adopt(owed, outcome)
                        elif owed._dev is None:
                            complete(owed, DONE, outcome, None, False)
                        else:
                            resolve(owed, outcome, False)
                        owed = None
                    elif fut._dev is None or isinstance(reg, InternalCallback):
                        try:
                            reg(fut)
                        except Exception as exc:  # torch swallows and logs these errors
                            tb = exc.__traceback__
                            if exc.__class__ is RecursionError and tb and not tb.tb_next:
                                raise  # never started: the handler below retries it
                            running = None
                            report_callback_error(exc)
                        running = None
                    else:
                        running = None
                        _run_on_streams(fut, reg)
                break
            except BaseException as exc:  # an interrupt: keep draining, raise it after
                tb = exc.__traceback__
                if exc.__class__ is RecursionError and bumped < _MAX_BUMP:
                    if running is not None and tb and not tb.tb_next:
                        # It never started: put it back first, with no call at all (at
                        # the very limit even a builtin call fails).
                        if not pending or pending[-1] is not batch:
                            pending += (batch,)
                        batch[2] = running
                        running = owed = None
                    # More stack, then retry; if even this call fails, the work is on
                    # the stack and the caller, a frame up, retries the drain.
                    _setlimit(_getlimit() + _HEADROOM)
                    bumped += _HEADROOM
                    if running is None and owed is None:
                        continue
                elif interrupt is None:
                    interrupt = exc
                if owed is not None:  # complete() is idempotent: settling twice is harmless
                    child, owed = owed, None
                    if cstate == PENDING:
                        cstate, outcome = FAILED, CallbackError.from_exception(exc)
                    running = None
                    try:
                        _settle(child, cstate, outcome, adopt)
                    except BaseException as again:
                        interrupt = interrupt or again
                if running is not None:
                    again_cb, running = running, None
                    if isinstance(again_cb, InternalCallback) and again_cb.rerun:
                        try:
                            again_cb(fut)  # idempotent: running it twice is harmless
                        except BaseException as again:
                            if not isinstance(again, Exception):
                                interrupt = interrupt or again
    finally:
        st.depth = depth
        if bumped:
            _restore_limit(bumped)
    if interrupt is not None:
        raise interrupt


def _settle(child: FutureBase, state: int, outcome: Any, adopt: Any) -> None:
    """Complete a ``then`` child with its callback's outcome (unwrapping if asked)."""
    if state != DONE:
        complete(child, state, outcome)
    elif adopt is not None:
        adopt(child, outcome)
    else:
        resolve(child, outcome)


def under_streams(
    enter: Callable[[], Any], fn: Callable[..., object], *args: Any
) -> Exception | None:
    """Run ``fn(*args)`` inside the streams context manager that ``enter()`` returns.

    Returns the backend's error if the streams could not be set up (``fn`` did not
    run), None once ``fn`` ran; ``fn``'s own exceptions propagate.
    """
    try:
        streams = enter()
        streams.__enter__()
    except Exception as exc:
        return exc
    try:
        fn(*args)
    finally:
        streams.__exit__(None, None, None)
    return None


def _run_on_streams(fut: FutureBase, cb: Any) -> None:
    """Run a user callback of a device future under fresh, synchronized pool streams.

    Called by :func:`drain` only, which has claimed the callback: it runs here, in
    this frame (no nested drain); its error is reported as any callback's, and an
    interrupt propagates to the drain, which runs the remaining callbacks first.
    """
    dev = fut._dev
    assert dev is not None
    try:
        streams = dev.callback_streams()
        streams.__enter__()
    except Exception as err:  # the backend cannot give this callback its streams
        report_stream_error(cb, err)
        return
    try:
        cb(fut)
    except Exception as exc:  # torch swallows and logs these errors
        report_callback_error(exc)
    finally:
        streams.__exit__(None, None, None)


def _run_device_link(fut: FutureBase, fn: Any, child: Any, adopt: Any) -> None:
    """Run a device future's ``then`` link here, under its callback streams.

    Called by :func:`drain` only, which has claimed the link and still holds
    ``child`` (an interrupt that escapes settles it there; ``complete`` is
    idempotent). The child completes inside the streams, so its events are recorded
    on the pool streams; its own registrations go on this thread's pending stack
    (``run=False``) and the drain that called this runs them next, each under the
    child's streams, as a CPU link's would.
    """
    dev = fut._dev
    try:
        streams = dev.callback_streams()  # type: ignore[union-attr]
        streams.__enter__()
    except Exception as err:  # the backend cannot set up streams: the child fails with it
        report_stream_error(fn, err)
        complete(child, FAILED, err)
        return
    try:
        try:
            outcome = fn(fut)
        except BaseException as exc:
            complete(child, FAILED, link_error(fut, exc), None, False)
            if not isinstance(exc, Exception):
                raise  # Ctrl-C, SystemExit: the drain raises it after the other callbacks
            return
        if adopt is not None:
            adopt(child, outcome)
        elif child._dev is None:
            complete(child, DONE, outcome, None, False)
        else:
            resolve(child, outcome, False)
    finally:
        streams.__exit__(None, None, None)


def _run_link_elsewhere(fut: FutureBase, link: tuple[Any, Any, Any, Any]) -> None:
    """Run a ``then`` link on its executor, or under device streams, or fail its child."""
    fn, child, executor, adopt = link
    if executor is None:
        _run_device_link(fut, fn, child, adopt)
        return
    here = (fn, child, _HERE, adopt)
    try:
        job = executor.submit(_run_link_on_streams, fut, here)
    except Exception as exc:  # executor shut down, etc.
        err = RuntimeError(f"then(): the executor {executor!r} refused the callback: {exc}")
        err.__cause__ = exc
        complete(child, FAILED, err)
        return
    add = getattr(job, "add_done_callback", None)
    if add is not None:
        add(_JobDone(child, executor))


def _run_link_on_streams(fut: FutureBase, link: tuple[Any, Any, Any, Any]) -> None:
    dev = fut._dev
    if dev is None:
        run_now(fut, link)
        return
    err = under_streams(dev.callback_streams, run_now, fut, link, True)
    if err is not None:  # the backend cannot set up streams: the child fails with it
        report_stream_error(link[0], err)
        complete(link[1], FAILED, err)


class _JobDone:
    """Fails a ``then`` child whose executor job was cancelled or died before running it."""

    __slots__ = ("child", "executor")

    def __init__(self, child: FutureBase, executor: Any) -> None:
        self.child = child
        self.executor = executor

    def __call__(self, job: Any) -> None:
        child = self.child
        if child._state:
            return
        if job.cancelled():  # e.g. shutdown(cancel_futures=True) before it ran
            err: BaseException = RuntimeError(
                f"then(): the executor {self.executor!r} cancelled the callback"
            )
        else:
            exc = job.exception()
            if exc is None:
                return
            err = exc
        complete(child, FAILED, err)


#: The pure-Python :func:`complete`, the accelerator's fallback.
py_complete = complete
if not TYPE_CHECKING and speedups is not None:
    complete = speedups.complete  # the compiled complete() falls back to py_complete
