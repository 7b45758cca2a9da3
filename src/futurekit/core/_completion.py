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

import _thread
import os
import sys

from . import _trampoline
from ._accelerator import speedups
from ._errors import CALLBACK_ERROR_PREFIX, CallbackError
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
_raw_lock = _thread.allocate_lock() if speedups is None else speedups.lock


class _Lock:
    """``with lock:`` on one lock (``threading.Lock``, or the accelerator's), allocation-free.

    The lock's own bound ``__enter__``/``__exit__`` are stored on the class; being
    builtin methods they are not re-bound on lookup, so entering allocates nothing.
    ``with`` keeps its guarantee: nothing can run between the acquire and the block.

    Leaving is ``__exit__(None, None, None)``: for ``threading.Lock`` (a ``METH_VARARGS``
    builtin) CPython packs those three arguments into a new tuple *while the lock is
    still held*, and on 3.11 allocating a tuple when the 3-tuple free list is empty can
    start a garbage collection whose finalizers would then run under the lock (one that
    touches a future deadlocks). So every critical section of the core builds a 3-tuple
    ``spare`` before taking the lock and drops it as its last statement: the exit then
    reuses it from the free list and allocates nothing. (The accelerator's ``__exit__``
    takes its arguments without a tuple; 3.12+ collects only at eval-breaker checks.)
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
    fresh = _thread.allocate_lock()
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
        spare = (fut, state, value)  # see _Lock: freed last under the lock, for its exit
        with lock:
            if fut._state:
                del spare
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
                del spare
                break
            del spare
        # A registration arrived between the peek and the lock: allocate, then retry.
    # Drain here, unless the caller's drain takes the batch next or it is too deep.
    here = batch is not None and run and st.depth < _MAX_DEPTH
    try:
        if waiters is not None:
            wake(waiters)
        if state == FAILED and not fut._observed:
            _arm_guard(fut, value)
        if here:
            _drain(st, len(pending) - 1 if st.depth else 0)
    except BaseException as exc:
        # Published, then interrupted (a signal at a function entry) or out of stack
        # before the hand-off finished: finish it, as often as it takes (each step is
        # idempotent), then raise the first interrupt. A RecursionError is absorbed:
        # more recursion limit, and again.
        first = None if exc.__class__ is RecursionError else exc
        again: BaseException = exc
        extra = 0
        while True:
            try:
                if again.__class__ is RecursionError:
                    if extra >= _MAX_BUMP:  # not for lack of stack: give up, loudly
                        first = first or again
                        break
                    _setlimit(_getlimit() + _HEADROOM)
                    extra += _HEADROOM
                if waiters is not None:
                    wake(waiters)
                if state == FAILED:
                    _arm_guard(fut, value)  # idempotent; not if observed meanwhile
                if here:
                    at = _position(pending, batch)
                    if at >= 0:
                        _drain(st, at if st.depth else 0)
                break
            except BaseException as exc2:
                if exc2.__class__ is not RecursionError:
                    if first is None:
                        first = exc2
                    if isinstance(exc2, Exception):  # no interrupt: an error, not retried
                        break
                again = exc2
        if extra:
            _restore_limit(extra)
        if first is not None:
            raise first  # noqa: B904 - the interrupt as it was raised, nothing chained
    return True


def _position(pending: list[Any], batch: object) -> int:
    """Where ``batch`` waits on the pending stack, or -1 if it was drained already."""
    i = len(pending)
    while i:
        i -= 1
        if pending[i] is batch:
            return i
    return -1


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
        prepared = dev.prepare(value) if _prepare is None else _prepare(dev, value)
    except Exception as exc:
        return complete(fut, FAILED, exc, None, run)
    return complete(fut, DONE, value, prepared, run)


#: The accelerator's ``prepare(state, value)``: ``state.prepare(value)`` in C for one
#: buffer (None with the pure-Python core).
_prepare = None if speedups is None else speedups.prepare


def wake(waiters: dict[int, Any]) -> None:
    """Wake blocked ``wait()`` calls (each waiter is released at most once)."""
    for waiter in waiters.values():
        try:
            waiter.release()
        except RuntimeError:  # released already (a retry after an interrupt)
            pass


def _arm_guard(fut: FutureBase, value: Any) -> None:
    """Give a failed, unobserved future a guard that warns if nobody retrieves the error.

    Idempotent: a retry after an interrupt keeps the guard already armed.
    """
    try:
        if fut._guard is not None or fut._observed or from_cancellation(value):
            return
        guard = ErrorGuard(value, id(fut))
        fut._guard = guard
        if fut._observed:  # retrieved meanwhile by another thread
            guard.exc = None
    except Exception:  # a hostile exception object, a deleted field: no guard
        return


#: The accelerator's ``spill``: hands the registrations its running completions hold
#: in C over to the pending stack (None with the pure-Python core, which has none).
_spill = None if speedups is None else speedups.spill


def drain_leftovers() -> None:
    """Run everything queued on this thread: a blocking wait's first step.

    That is deferred work (nesting deeper than the inline limit, an interrupt) and,
    inside a callback, the registrations its completion has not run yet: one of them
    may be what completes the awaited future.

    It empties the stack under the marks of the drains around it: ``st.flushes``
    tells them that all that is on the stack afterwards is theirs (see :func:`drain`).
    """
    st = _local.__dict__.get("state")  # no AttributeError raised and caught: ~1 µs less
    if st is None:
        return
    if _spill is not None:
        _spill(st)
    if st.pending:
        try:
            _drain(st, 0)
        finally:
            st.flushes += 1


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
            _drain(st, mark)
        except RecursionError:  # drain() could not even start or retry: one frame up, more room
            _setlimit(_getlimit() + _HEADROOM)
            try:
                _drain(st, mark)
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


def _fail_child(fut: FutureBase, child: FutureBase, exc: BaseException) -> None:
    """Fail a then-child whose callback raised ``exc`` (the RAISED step).

    The message needs ``str(exc)``, which can raise; an error there still fails the
    child (with a message saying so), and an interrupt there is raised once the child
    is complete: a second run of this step then finds it complete and stops.
    """
    if child._state:
        return
    interrupt = None
    try:
        err = link_error(fut, exc)
    except BaseException as again:  # an exception whose __str__ raises
        name = type(again).__name__
        text = f"{CALLBACK_ERROR_PREFIX}{type(exc).__name__}: <str() raised {name}>"
        err = CallbackError(text, exc)
        err.__cause__ = exc
        if not isinstance(again, Exception):
            interrupt = again
    complete(child, FAILED, err, None, False)
    if interrupt is not None:
        raise interrupt


class _Step:
    """Marks a registration tuple ``(payload, child, step, adopt)`` as the core's own work.

    An interrupt must never lose what was in progress, and an exception handler can
    only store (any call in it could be interrupted in turn), so :func:`drain`'s
    handler pushes the unfinished work back on the pending stack as one of these
    steps, built from stores alone; the drain loop, or any later one, runs it. Each
    step is idempotent, so running one twice is harmless.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<futurekit step {self.name}>"


#: Complete ``child`` with ``payload``, its then-callback's return value (unwrapping
#: it if ``adopt``).
SETTLE = _Step("settle")
#: Fail ``child`` with ``link_error(future, payload)``: its then-callback raised
#: ``payload`` or was interrupted by it.
RAISED = _Step("raised")
#: Run ``payload``, a registration an interrupt hit, again if it is an idempotent
#: internal callback (a user callback counts as run).
REDO = _Step("redo")


def _run_step(fut: FutureBase, payload: Any, child: Any, step: _Step, adopt: Any) -> None:
    """Run one of the core's own steps (see :class:`_Step`) for a completed ``fut``."""
    if step is REDO:
        if isinstance(payload, InternalCallback) and payload.rerun:
            payload(fut)
    elif child._state:  # settled already (this step runs again after an interrupt)
        return
    elif step is SETTLE:
        if adopt is not None:
            adopt(child, payload)
        else:  # resolve() is complete() for a CPU child
            resolve(child, payload, False)
    else:
        _fail_child(fut, child, payload)


#: Frames :func:`_room_left` probes for.
_PROBE = 8


def _probe(n: int) -> None:
    if n:
        _probe(n - 1)


def _room_left() -> bool:
    """Whether a few frames still fit below the recursion limit at the caller's depth.

    A call that failed with RecursionError at this depth either never started (the
    limit was reached at its entry: run it again with more limit) or raised it
    itself (its own error, reported once), which the traceback cannot tell apart for
    a builtin. At the very limit this call itself fails with RecursionError.
    """
    try:
        _probe(_PROBE)
    except RecursionError:
        return False
    return True


def drain(st: _trampoline.ThreadState, mark: int) -> None:
    """Run this thread's pending registrations above ``mark``, innermost batch first.

    A batch is ``[future, count, first, rest, index, removable]``; each registration
    is claimed with a store into the batch (or by dropping a one-registration batch)
    before it is called, and everything drain needs to resume is on the stack, so an
    interrupt anywhere leaves it consistent and this drain, or a later one, goes on
    where it stopped. The handler of an interrupt only stores: what was in progress
    goes back on the stack as a :class:`_Step` (an internal callback to run again, a
    then-child to complete), and the loop goes on. Raises the first interrupt once
    everything ran.
    """
    pending = st.pending
    depth = st.depth
    st.depth = depth + 1
    flushes = st.flushes
    interrupt: BaseException | None = None
    bumped = 0
    # What an interrupt must not lose, stored right after the claim (no call between):
    # ``running``, the callback being run (of ``fut``), ``stepping``, the step being
    # run, and ``owed``, the child of the then-link being run (with ``cstate``, then
    # ``outcome``, and ``adopt``).
    fut: Any = None
    running: Any = None
    stepping: Any = None
    owed: Any = None
    cstate = PENDING
    outcome: Any = None
    adopt: Any = None
    try:
        while True:
            try:
                # Not a no-op: CPython 3.11 looks up the handler of an interrupt raised
                # at a loop's back edge (``continue``) at the instruction *before* the
                # loop's first one; were that the ``try`` itself (outside its own range),
                # the interrupt would skip both handlers, the ``finally`` included.
                batch = None
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
                    if reg.__class__ is tuple:
                        fn, child, where, adopt = reg
                        if where is not None or fut._dev is not None:
                            if where.__class__ is _Step:  # the core's own work
                                stepping = reg
                                try:
                                    _run_step(fut, fn, child, where, adopt)
                                except Exception as exc:
                                    if exc.__class__ is RecursionError and bumped < _MAX_BUMP:
                                        raise  # more stack, then again (the handler)
                                    stepping = None
                                    report_callback_error(exc)
                                stepping = None
                                continue
                            if where is not _HERE:
                                cstate = PENDING
                                owed = child
                                if where is None:  # a device future's inline link
                                    _run_device_link(fut, fn, child, adopt)
                                else:
                                    _run_link_elsewhere(fut, reg)
                                owed = None
                                continue
                        cstate = PENDING
                        owed = child
                        try:
                            outcome = fn(fut)
                            cstate = DONE
                        except BaseException as exc:
                            if exc.__class__ is RecursionError and bumped < _MAX_BUMP:
                                tb = exc.__traceback__
                                if tb is not None and tb.tb_next is None:
                                    # At the limit even the call fails: assume fn never
                                    # started and put the link back first, with stores.
                                    pending += ([fut, -1, reg, None, 0, None],)
                                    owed = None
                                    if not _room_left():
                                        raise  # more stack, then the link again
                                    del pending[-1]  # it had room: its own error
                                    owed = child
                            outcome = exc
                            cstate = FAILED
                            if interrupt is None and not isinstance(exc, Exception):
                                interrupt = exc
                        # the child's callbacks go on the stack: this loop runs them next
                        if cstate == DONE:
                            if adopt is not None:
                                adopt(child, outcome)
                            elif child._dev is None:
                                complete(child, DONE, outcome, None, False)
                            else:
                                resolve(child, outcome, False)
                        else:
                            complete(child, FAILED, link_error(fut, outcome), None, False)
                        owed = None
                    elif fut._dev is None or isinstance(reg, InternalCallback):
                        running = reg
                        try:
                            reg(fut)
                        except Exception as exc:  # torch swallows and logs these errors
                            if exc.__class__ is RecursionError and bumped < _MAX_BUMP:
                                tb = exc.__traceback__
                                if tb is not None and tb.tb_next is None:
                                    pending += ([fut, -1, reg, None, 0, None],)  # as above
                                    running = None
                                    if not _room_left():
                                        raise
                                    del pending[-1]
                                    running = reg
                                if isinstance(reg, InternalCallback) and reg.rerun:
                                    raise  # out of stack inside: again, with more (REDO)
                            running = None
                            report_callback_error(exc)
                        running = None
                    else:
                        _run_on_streams(fut, reg)
                if mark and st.flushes != flushes:
                    # A wait in a callback ran everything queued on this thread, below
                    # ``mark`` too: all on the stack now is this drain's (e.g. the
                    # registrations of a then-child this loop completed since).
                    mark = 0
                    continue
                break
            except BaseException as exc:  # an interrupt: keep draining, raise it after
                # Stores only: what was in progress goes back on the stack as a step.
                if running is not None:
                    pending += ([fut, -1, (running, None, REDO, None), None, 0, None],)
                    running = None
                if stepping is not None:
                    pending += ([fut, -1, stepping, None, 0, None],)
                    stepping = None
                if owed is not None:
                    if cstate == PENDING:  # fn was interrupted (or never returned)
                        cstate, outcome = FAILED, exc
                    owed = (outcome, owed, SETTLE if cstate == DONE else RAISED, adopt)
                    pending += ([fut, -1, owed, None, 0, None],)
                    owed = None
                if exc.__class__ is not RecursionError:
                    if interrupt is None:
                        interrupt = exc
                elif bumped < _MAX_BUMP:  # more stack for what is left, then again
                    _setlimit(_getlimit() + _HEADROOM)
                    bumped += _HEADROOM
                else:  # out of stack even so: the work waits on the stack, the caller
                    raise  # (a frame up) retries
    finally:
        st.depth = depth
        if bumped:
            _restore_limit(bumped)
    if interrupt is not None:
        raise interrupt


#: What the core's own callers use to drain: the accelerator's ``drain``, a C loop
#: around :func:`drain` that leaves nothing behind whatever interrupts land in it; the
#: Python drain itself for the pure core (see "Known limits" in docs/design.md).
_drain = drain if speedups is None else speedups.drain


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
        token = dev.enter_callback()  # dev.callback_streams(), without the object
    except Exception as err:  # the backend cannot give this callback its streams
        report_stream_error(cb, err)
        return
    try:
        cb(fut)
    except Exception as exc:  # torch swallows and logs these errors
        report_callback_error(exc)
    finally:
        dev.exit_callback(token)


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
        token = dev.enter_callback()  # type: ignore[union-attr]
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
        else:  # a device future's child is a device future: resolve() records its events
            resolve(child, outcome, False)
    finally:
        dev.exit_callback(token)  # type: ignore[union-attr]


def _run_link_elsewhere(fut: FutureBase, link: tuple[Any, Any, Any, Any]) -> None:
    """Run a ``then(executor=...)`` link on its executor, or fail its child if refused.

    (A device future's inline link is run by :func:`drain` itself, with
    :func:`_run_device_link`.)
    """
    fn, child, executor, adopt = link
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
