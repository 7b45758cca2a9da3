"""The Future: torch.futures semantics, thread-safe, with optional device sync.

This module is the public face only: state changes go through
:mod:`._completion`, blocking through :mod:`._waiting`, ``unwrap`` through
:mod:`._unwrap` and conversions through :mod:`._bridges`.
"""

from __future__ import annotations

import sys

from . import _bridges, _device_plan, _errors
from ._accelerator import speedups
from ._completion import (
    CANCELLED,
    DONE,
    FAILED,
    PENDING,
    FutureBase,
    InternalCallback,
    complete,
    link_error,
)
from ._device_plan import plan_for
from ._errors import (
    ALREADY_COMPLETED,
    NotAnExceptionError,
    TimeoutError,
)
from ._registration import register, register_removable, retrieved, unregister
from ._trampoline import HEADROOM, fix_limit, late_limit, restore_limit
from ._unwrap import adopt
from ._waiting import block, check_timeout

TYPE_CHECKING = False  # importing typing costs ~10 ms at import futurekit
if TYPE_CHECKING:
    from collections.abc import Callable, Generator
    from concurrent.futures import Executor
    from typing import Any, Generic, NoReturn, TypeVar

    from ._devices import Device, DeviceLike

    T = TypeVar("T")
    S = TypeVar("S")

    class _GenericBase(Generic[T]):
        __slots__ = ()
else:
    T = S = "T"

    class _GenericBase:
        """Makes ``Future[int]`` work without importing typing."""

        __slots__ = ()
        __class_getitem__ = classmethod(type(list[int]))  # types.GenericAlias, unimported


__all__ = ["Future", "InternalCallback"]

_device_plan.FUTURE_TYPES = (FutureBase,)  # a device value walk never enters a future

_new = FutureBase.__new__
_getlimit = sys.getrecursionlimit
_setlimit = sys.setrecursionlimit


class Future(_GenericBase[T], FutureBase):
    """A value that will be available later, with torch.futures semantics.

    ``Future(*, devices=None, backend=None)``: ``devices`` lists the devices the
    value may live on (ints, ``"type:index"`` strings, or objects with ``.type`` and
    ``.index`` such as ``torch.device``). ``None``, ``[]`` or CPU devices make a CPU
    future. ``backend`` picks a backend by name for the device type.

    Differences from torch: ``"cpu"`` is accepted; ``then`` returns a full
    :class:`Future`; a callback's error keeps its type as ``__cause__``; chains of any
    length complete; ``wait()`` can be interrupted with Ctrl-C and takes a timeout.
    """

    __slots__ = ()

    def __init__(
        self,
        *,
        devices: list[DeviceLike] | tuple[DeviceLike, ...] | None = None,
        backend: str | None = None,
    ) -> None:
        self._state = PENDING
        self._value = self._cb1 = self._cbs = self._rm = self._waiters = self._guard = None
        self._observed = False
        if backend is not None:
            _check_backend(backend, devices)
        self._dev = None if devices is None else plan_for(devices, backend)

    # -- completion -------------------------------------------------------------
    def set_result(self, result: T) -> None:
        """Complete the future with ``result`` (the very object ``wait()`` returns).

        Waiters are woken first, then callbacks run in this thread, in registration
        order, before ``set_result`` returns. For a device future the buffers in
        ``result`` are found and one event per used device is recorded on that
        device's current stream; a buffer on a device outside ``devices`` (or a
        backend error) completes the future with that error instead.

        Raises:
            InvalidStateError: the future is already complete (a ``RuntimeError``
                with torch's message); the first outcome is kept.
        """
        dev = self._dev
        if dev is None:
            if not complete(self, DONE, result):
                raise _errors.InvalidStateError(ALREADY_COMPLETED)
            return
        if self._state:  # resolve(), inlined: the device hot path
            raise _errors.InvalidStateError(ALREADY_COMPLETED)
        try:
            prepared = dev.prepare(result)
        except Exception as exc:  # a buffer on a foreign device, a backend error
            if not complete(self, FAILED, exc):
                raise _errors.InvalidStateError(ALREADY_COMPLETED) from None
            return
        if not complete(self, DONE, result, prepared):
            raise _errors.InvalidStateError(ALREADY_COMPLETED)

    def set_exception(self, result: BaseException) -> None:
        """Complete the future with an error: ``wait()``/``value()`` raise ``result`` itself.

        Raises:
            NotAnExceptionError: ``result`` is not an ``Exception`` instance (both a
                ``TypeError`` and torch's ``AssertionError``).
            InvalidStateError: the future is already complete; unlike torch, the
                first outcome is left untouched.
        """
        if not isinstance(result, Exception):
            raise NotAnExceptionError(f"{result} is of type {type(result)}, not an Exception.")
        done = complete(self, FAILED, result)
        if late_limit[1]:  # extra recursion limit a frame at the limit could not take back
            fix_limit()
        if not done:
            raise _errors.InvalidStateError(ALREADY_COMPLETED)

    def cancel(self) -> bool:
        """Cancel a pending future: it fails with :class:`CancelledError` and runs callbacks.

        Returns:
            True if the future was pending and is now cancelled; False if it had
            already completed (it is not changed).
        """
        if self._state:
            return False
        done = complete(self, CANCELLED, _errors.CancelledError("Future was cancelled"))
        if late_limit[1]:
            fix_limit()
        return done

    # -- state ------------------------------------------------------------------
    def done(self) -> bool:
        """Whether the future has completed (value, error or cancellation).

        Like torch, this ignores device events: see :meth:`is_ready`.
        """
        return self._state != PENDING

    def cancelled(self) -> bool:
        """Whether :meth:`cancel` cancelled the future."""
        return self._state == CANCELLED

    def running(self) -> bool:
        """Always False (``concurrent.futures`` compatibility: no running state)."""
        return False

    def is_ready(self) -> bool:
        """Done, and every device event recorded at completion has completed."""
        if not self._state:
            return False
        dev = self._dev
        return dev is None or dev.is_ready()

    @property
    def devices(self) -> tuple[Device, ...]:
        """The future's devices, sorted; empty for a CPU future."""
        dev = self._dev
        return () if dev is None else dev.devices

    # -- waiting ------------------------------------------------------------------
    def _raise(self) -> NoReturn:
        retrieved(self)
        raise self._value

    def wait(self, timeout: float | None = None) -> T:
        """Block until complete, synchronize device streams, and return the value.

        Returns the very object given to ``set_result``. For a device future the
        calling thread's current streams are made to wait on the recorded events
        (the host does not block on the device). The GIL is released while
        blocking and Ctrl-C interrupts the wait, leaving the future usable.

        Args:
            timeout: seconds to wait at most (``0`` polls); ``None`` waits forever.

        Raises:
            TimeoutError: the time passed first (``futurekit.TimeoutError``, a
                subclass of the built-in); the future is unaffected.
            Exception: the future's error (the very object given to
                ``set_exception``, or a :class:`CallbackError`).
        """
        if self._state == DONE and self._dev is None and timeout is None:
            return self._value  # type: ignore[no-any-return]
        if timeout is not None:
            timeout = check_timeout(timeout)
        if not self._state and not block(self, timeout):  # a done future: nothing runs
            _timed_out(timeout)  # type: ignore[arg-type]
        if late_limit[1]:
            fix_limit()
        if self._state != DONE:
            self._raise()
        dev = self._dev
        if dev is not None:
            dev.sync_current()
        value: T = self._value
        return value

    def value(self) -> T:
        """The result without blocking or device synchronization.

        Raises:
            InvalidStateError: the future is not complete yet (a ``RuntimeError``).
            Exception: the future's error.
        """
        state = self._state
        if state == DONE:
            value: T = self._value
            return value
        if state:
            self._raise()
        raise _errors.InvalidStateError(
            "Future.value() was called before the future completed; call wait() to "
            "block until it completes, or check done() first"
        )

    def result(self, timeout: float | None = None) -> T:
        """``concurrent.futures`` spelling of :meth:`wait`."""
        return self.wait(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Block until complete and return the error, or ``None`` after a success.

        Raises:
            CancelledError: the future was cancelled (``concurrent.futures`` style).
            TimeoutError: the time passed first.
        """
        if timeout is not None:
            timeout = check_timeout(timeout)
        if not self._state and not block(self, timeout):
            raise TimeoutError(f"Future did not complete within {timeout} seconds")
        if self._state == CANCELLED:
            raise self._value
        if self._state == FAILED:
            retrieved(self)
            exc: BaseException = self._value
            return exc
        return None

    def synchronize(self) -> None:
        """Block the host until complete and until the device work it recorded is done.

        torch's ``done()`` is true while kernels still run; after ``synchronize()``
        they have finished. Does not raise the future's error.
        """
        if not self._state:
            block(self, None)
        dev = self._dev
        if dev is not None:
            dev.synchronize()

    def __await__(self) -> Generator[Any, None, T]:
        """``await fut``: wait without blocking the event loop, then :meth:`wait`.

        A cancelled ``await`` (``asyncio.wait_for`` timing out) removes its wake-up
        callback from this future, so repeated timeouts cost no memory.
        """
        if not self._state:
            import asyncio

            loop = asyncio.get_running_loop()
            aio_future = loop.create_future()
            handle = register_removable(self, _AwaitWaker(loop, aio_future))
            try:
                yield from aio_future.__await__()
            finally:
                unregister(self, handle)
        return self.wait()

    # -- callbacks ---------------------------------------------------------------
    def then(
        self,
        callback: Callable[[Future[T]], S],
        *,
        executor: Executor | None = None,
        unwrap: bool = False,
    ) -> Future[S]:
        """Return a child future completed with ``callback(self)``.

        The callback runs when this future completes (in the completing thread,
        after waiters are woken) or at once if it already has. The child has this
        future's devices; for device futures the callback runs with fresh pool
        streams made current, already waiting on this future's events.

        Args:
            callback: called with this future (the same object); its return value
                completes the child. If it raises, the child fails with
                :class:`CallbackError` (torch's message, the original as
                ``__cause__``).
            executor: run the callback there instead of inline.
            unwrap: if the callback returns a future (futurekit, torch or
                ``concurrent.futures``), complete the child with that future's
                outcome, however deeply nested.

        Raises:
            TypeError: ``callback`` is not callable or ``executor`` has no ``submit``.
        """
        if not callable(callback):
            raise TypeError(
                f"then() expects a callable that takes the future, got "
                f"{type(callback).__name__}: {callback!r}"
            )
        if executor is not None and not callable(getattr(executor, "submit", None)):
            raise TypeError(
                f"executor must be a concurrent.futures.Executor (with submit()), got {executor!r}"
            )
        child: Future[S]
        if speedups is None:  # __init__'s stores, without its argument handling
            child = _new(Future)
            child._value = child._cb1 = child._cbs = child._rm = child._waiters = None
            child._guard = None
            child._observed = False
        else:  # the compiled __init__ of a blank future stores nothing
            child = Future()
        dev = self._dev
        if dev is None:
            child._dev = None
            if self._state == DONE and executor is None and not unwrap:
                # A completed CPU parent and an inline callback: nobody else can see
                # the child yet, so it is filled in directly.
                self._observed = True
                try:
                    child._value = callback(self)
                except BaseException as exc:
                    child._state = PENDING
                    _fail_inline_child(self, child, exc)
                    if not isinstance(exc, Exception):
                        raise  # Ctrl-C and SystemExit are not swallowed
                    return child
                child._state = DONE
                return child
        else:
            child._dev = dev.child()
        child._state = PENDING
        register(self, (callback, child, executor, adopt if unwrap else None))
        return child

    def add_done_callback(self, callback: Callable[[Future[T]], object]) -> None:
        """Run ``callback(self)`` on completion (or at once if already complete).

        Shares one FIFO list with :meth:`then`. An exception in ``callback`` is
        logged on the ``futurekit`` logger with its traceback and affects nothing
        else.

        Raises:
            TypeError: ``callback`` is not callable.
        """
        if not callable(callback):
            raise TypeError(
                f"add_done_callback() expects a callable that takes the future, got "
                f"{type(callback).__name__}: {callback!r}"
            )
        register(self, callback)

    # -- interop ------------------------------------------------------------------
    def to_torch(self) -> Any:
        """A ``torch.futures.Future`` completed when this one completes (value or error)."""
        return _bridges.to_torch(self)

    def to_concurrent(self) -> Any:
        """A ``concurrent.futures.Future`` following this one (cancellation both ways).

        For a device future the host waits for the device work before the
        ``concurrent.futures`` future completes: its consumers know no streams.
        """
        return _bridges.to_concurrent(self)

    def to_asyncio(self, loop: Any = None) -> Any:
        """An ``asyncio.Future`` on ``loop`` (default: the running loop) following this one."""
        return _bridges.to_asyncio(self, loop)

    # -- misc ---------------------------------------------------------------------
    def __repr__(self) -> str:
        state = self._state
        if state == PENDING:
            what = "pending"
        elif state == DONE:
            what = f"done value={type(self._value).__name__}"
        elif state == CANCELLED:
            what = "cancelled"
        else:
            what = f"failed {self._value!r}"
        dev = self._dev
        devices = "" if dev is None else " devices=[" + ", ".join(map(str, dev.devices)) + "]"
        return f"<futurekit.Future {what}{devices} at {id(self):#x}>"

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise RuntimeError("Can not pickle futurekit.Future")

    def __copy__(self) -> NoReturn:
        raise RuntimeError("Can not pickle futurekit.Future (futures cannot be copied)")

    def __deepcopy__(self, memo: Any) -> NoReturn:
        raise RuntimeError("Can not pickle futurekit.Future (futures cannot be copied)")


def _fail_inline_child(parent: Future[Any], child: Future[Any], exc: BaseException) -> None:
    """Fail the child of ``then`` on a completed future whose callback raised ``exc``."""
    try:
        complete(child, FAILED, link_error(parent, exc))
    except RecursionError:  # the callback used up the stack: a little more
        _setlimit(_getlimit() + HEADROOM)
        try:
            complete(child, FAILED, link_error(parent, exc))
        finally:
            restore_limit(HEADROOM)


def _timed_out(timeout: float) -> NoReturn:
    raise TimeoutError(f"Future did not complete within {timeout} seconds")


def _accelerate() -> None:
    """With the compiled accelerator, put its fast paths in front of the Python methods.

    Each fast path handles the common case (a CPU future, no contention) and calls
    the Python method below, kept as the reference, for everything else.
    """
    if speedups is None:
        return
    from . import _completion, _reporting, _resolver, _trampoline, _waiting

    speedups.configure(
        future=Future,
        init=Future.__init__,
        set_result=Future.set_result,
        wait=Future.wait,
        value=Future.value,
        add_done_callback=Future.add_done_callback,
        then=Future.then,
        fail_inline_child=_fail_inline_child,
        complete=_completion.py_complete,
        drain=_completion.drain,
        report=_reporting.report_callback_error,
        state=_trampoline.state,
        internal=InternalCallback,
        timed_out=_timed_out,
        late_limit=_trampoline.late_limit,
        fix_limit=_trampoline.fix_limit,
        max_depth=_trampoline.MAX_INLINE_DEPTH,
        spin_us=_waiting.spin_us(),
    )
    speedups.configure_devices(_device_plan.plan_for, _resolver.generation)  # devices= in C
    delattr(Future, "__init__")  # FutureBase's C __init__ calls the Python one with arguments
    for name in ("set_result", "wait", "value", "done", "add_done_callback", "then"):
        setattr(Future, name, FutureBase.__dict__[name])


def _check_backend(backend: object, devices: object) -> None:
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a backend name (str) or None, got {backend!r}")
    if not backend:
        raise ValueError(
            "backend='' names no backend; pass a backend name such as 'sim' or 'torch', "
            "or leave backend=None to use the default backend for the device type"
        )
    if devices is None:
        raise ValueError(
            f"backend={backend!r} was given without devices=; a future without devices "
            f"is a CPU future and uses no backend: pass devices=[...] as well"
        )


class _AwaitWaker(InternalCallback):
    __slots__ = ("aio_future", "loop")

    def __init__(self, loop: Any, aio_future: Any) -> None:
        self.loop = loop
        self.aio_future = aio_future

    def __call__(self, fut: Future[Any]) -> None:
        try:
            self.loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # loop closed: nobody is awaiting any more
            pass

    def _wake(self) -> None:
        if not self.aio_future.done():
            self.aio_future.set_result(None)


_accelerate()
