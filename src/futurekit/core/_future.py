"""The Future: torch.futures semantics, thread-safe, with optional device sync."""

from __future__ import annotations

import logging
import math
import threading
from concurrent.futures import CancelledError as _AnyCancelledError
from types import GenericAlias

from . import _dispatch
from ._errors import (
    ALREADY_COMPLETED,
    CALLBACK_ERROR_PREFIX,
    CallbackError,
    CancelledError,
    InvalidStateError,
    NotAnExceptionError,
    TimeoutError,
)

TYPE_CHECKING = False  # importing typing costs ~10 ms at import futurekit
if TYPE_CHECKING:
    from collections.abc import Callable, Generator
    from concurrent.futures import Executor
    from typing import Any, Generic, NoReturn, TypeVar

    from ._device_state import DeviceState
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
        __class_getitem__ = classmethod(GenericAlias)


__all__ = ["Future"]


logger = logging.getLogger("futurekit")

_PENDING = 0
_DONE = 1
_FAILED = 2
_CANCELLED = 3

#: One lock for every future's state transitions: held for a few bytecodes, never
#: while user code, backend code or a waiter runs. Futures carry no lock of their own.
_lock = threading.Lock()
_acquire = _lock.acquire
_release = _lock.release
_new_waiter = threading.Lock
_TIMEOUT_MAX = threading.TIMEOUT_MAX
_new_future = object.__new__


def _from_cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` is a cancellation or was caused by one (those are not warned about)."""
    for _ in range(32):
        if isinstance(exc, _AnyCancelledError):
            return True
        cause = exc.__cause__
        if cause is None:
            return False
        exc = cause
    return False


def _mark_seen(exc: BaseException) -> None:
    """The user saw ``exc``: no future holding it reports it as never retrieved."""
    try:
        exc._futurekit_reported = True  # type: ignore[attr-defined]
    except Exception:  # pragma: no cover - exotic exception types
        pass


def _check_timeout(timeout: object) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, got {timeout!r}")
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"timeout must be >= 0 seconds, got {timeout!r}")
    return float(timeout)


class _ErrorGuard:
    """Logs a failure nobody retrieved when its future is garbage-collected."""

    __slots__ = ("exc", "where")

    def __init__(self, exc: BaseException, where: str) -> None:
        self.exc: BaseException | None = exc
        self.where = where

    def __del__(self) -> None:
        exc = self.exc
        if exc is None:
            return
        try:
            if getattr(exc, "_futurekit_reported", False):
                return
            try:
                exc._futurekit_reported = True  # type: ignore[attr-defined]
            except Exception:  # pragma: no cover - exotic exception types
                pass
            logger.warning(
                "Future exception was never retrieved: %s",
                self.where,
                exc_info=(type(exc), exc, exc.__traceback__),
            )
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


# A ``then`` registration is a tuple ``(callback, child, executor, unwrap)``: cheaper
# than an object, and never confused with a user callback (tuples are not callable).


def _run_then(fut: Future[Any], link: tuple[Any, Future[Any], Any, bool]) -> None:
    """Run a ``then`` callback and complete its child with the outcome."""
    fn, child, _, unwrap = link
    try:
        result = fn(fut)
    except BaseException as exc:  # torch turns every callback error into the child's
        child._complete_quietly(_FAILED, CallbackError.from_exception(exc))
        return
    if unwrap:
        from ._interop import adopt

        adopt(child, result)
    elif child._dev is None:
        # child._complete(_DONE, result), inlined: the per-link hot path of chains
        _acquire()
        try:
            if child._state:
                logger.debug("result for %r ignored: already completed", child)
                return
            child._value = result
            child._state = _DONE
            callbacks = child._callbacks
            waiters = child._waiters
            if callbacks is not None or waiters is not None:
                child._callbacks = child._waiters = None
        finally:
            _release()
        if waiters:
            for waiter in waiters:
                waiter.release()
        if callbacks:
            _run_callbacks(child, callbacks)
    else:
        child._set_result_quietly(result)


class InternalCallback:
    """Base for the core's own callbacks.

    They never touch device data, so they run without pool streams.
    """

    __slots__ = ()

    def __call__(self, fut: Future[Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def _log_callback_error(exc: BaseException) -> None:
    logger.error(
        "%s%s: %s",
        CALLBACK_ERROR_PREFIX,
        type(exc).__name__,
        exc,
        exc_info=(type(exc), exc, exc.__traceback__),
    )


def _invoke_now(fut: Future[Any], cb: Any) -> None:
    """Run one callback in this thread (under device streams for device futures)."""
    dev = fut._dev
    if type(cb) is tuple:
        if dev is None:
            _run_then(fut, cb)
            return
        try:
            with dev.callback_streams():
                _run_then(fut, cb)
        except BaseException as exc:  # the backend failed to set up streams
            cb[1]._complete_quietly(_FAILED, exc)
        return
    try:
        if dev is None or isinstance(cb, InternalCallback):
            cb(fut)
        else:
            with dev.callback_streams():
                cb(fut)
    except BaseException as exc:  # torch swallows and logs add_done_callback errors
        _log_callback_error(exc)


def _invoke(fut: Future[Any], cb: Any) -> None:
    """Run one callback: the CPU cases inline, the rest through ``_invoke_now``."""
    if fut._dev is None:
        if type(cb) is tuple:
            if cb[2] is None:
                _run_then(fut, cb)
                return
        else:
            try:
                cb(fut)
            except BaseException as exc:  # torch swallows and logs these errors
                _log_callback_error(exc)
            return
    elif type(cb) is not tuple or cb[2] is None:
        _invoke_now(fut, cb)
        return
    _submit_then(fut, cb)


def _submit_then(fut: Future[Any], link: tuple[Any, Future[Any], Any, bool]) -> None:
    """Run a ``then`` link on its executor; the child fails if the executor will not run it."""
    executor = link[2]
    child = link[1]
    try:
        job = executor.submit(_invoke_now, fut, link)
    except BaseException as exc:  # executor shut down, etc.
        err = RuntimeError(f"then(): the executor {executor!r} refused the callback: {exc}")
        err.__cause__ = exc
        child._complete_quietly(_FAILED, err)
        return

    def _job_done(job: Any) -> None:
        if job.cancelled():  # e.g. shutdown(cancel_futures=True) before it ran
            child._complete_quietly(
                _FAILED,
                RuntimeError(f"then(): the executor {executor!r} cancelled the callback"),
            )
        elif not child._state and job.exception() is not None:
            child._complete_quietly(_FAILED, job.exception())

    add = getattr(job, "add_done_callback", None)
    if add is not None:
        add(_job_done)


def _run_all(fut: Future[Any], callbacks: Any) -> None:
    """Run a batch of callbacks of one future (the CPU case inlined)."""
    if fut._dev is None:
        for cb in callbacks:
            if type(cb) is tuple:
                if cb[2] is None:
                    _run_then(fut, cb)
                else:
                    _invoke(fut, cb)
            else:
                try:
                    cb(fut)
                except BaseException as exc:  # torch swallows and logs these errors
                    _log_callback_error(exc)
    else:
        for cb in callbacks:
            _invoke(fut, cb)


_MAX_DEPTH = _dispatch.MAX_INLINE_DEPTH
_local = _dispatch.local
_thread_state = _dispatch.state


def _run_callbacks(fut: Future[Any], callbacks: Any, run_all: Any = _run_all) -> None:
    """Run a future's callbacks now, or on this thread's trampoline when nested deeply.

    This is :func:`futurekit.core._dispatch.run_callbacks` with :func:`_run_all`'s CPU
    loop inlined: one Python call per completion less on the hottest path (chains).
    """
    try:
        st = _local.state
    except AttributeError:
        st = _thread_state()
    depth = st.depth
    if depth >= _MAX_DEPTH:
        st.queue.append((fut, callbacks, run_all))
        return
    st.depth = depth + 1
    try:
        if fut._dev is None and run_all is _run_all:
            for cb in callbacks:
                if type(cb) is tuple:
                    if cb[2] is None:
                        _run_then(fut, cb)
                    else:
                        _invoke(fut, cb)
                else:
                    try:
                        cb(fut)
                    except BaseException as exc:  # torch swallows and logs these errors
                        _log_callback_error(exc)
        else:
            run_all(fut, callbacks)
        if depth == 0:
            queue = st.queue
            while queue:
                qfut, qcbs, qrun_all = queue.popleft()
                qrun_all(qfut, qcbs)
    finally:
        st.depth = depth


class Future(_GenericBase[T]):
    """A value that will be available later, with torch.futures semantics.

    ``Future(*, devices=None, backend=None)``: ``devices`` lists the devices the
    value may live on (ints, ``"type:index"`` strings, or objects with ``.type`` and
    ``.index`` such as ``torch.device``). ``None``, ``[]`` or CPU devices make a CPU
    future. ``backend`` picks a backend by name for the device type.

    Differences from torch: ``"cpu"`` is accepted; ``then`` returns a full
    :class:`Future`; a callback's error keeps its type as ``__cause__``; chains of any
    length complete; ``wait()`` can be interrupted with Ctrl-C and takes a timeout.
    """

    __slots__ = (
        "__weakref__",
        "_callbacks",
        "_dev",
        "_guard",
        "_observed",
        "_state",
        "_value",
        "_waiters",
    )

    _dev: DeviceState | None

    def __init__(
        self,
        *,
        devices: list[DeviceLike] | tuple[DeviceLike, ...] | None = None,
        backend: str | None = None,
    ) -> None:
        self._state = _PENDING
        self._value: Any = None
        self._callbacks: list[Any] | None = None
        self._waiters: list[Any] | None = None
        self._observed = False
        self._guard: _ErrorGuard | None = None
        if devices is None and backend is None:
            self._dev = None
        else:
            from ._device_state import make_device_state

            self._dev = make_device_state(devices, backend)

    @classmethod
    def _child(cls, dev: DeviceState | None) -> Future[Any]:
        child: Future[Any] = cls.__new__(cls)
        child._state = _PENDING
        child._value = None
        child._callbacks = None
        child._waiters = None
        child._observed = False
        child._guard = None
        child._dev = None if dev is None else dev.child()
        return child

    # -- completion -------------------------------------------------------------
    def _complete(self, state: int, value: Any, prepared: Any = None) -> bool:
        """Store the outcome, wake waiters, run callbacks. False if already complete.

        ``prepared`` is ``(events, buffers)`` from ``DeviceState.prepare`` for a device
        future; they are published under the lock together with the state.
        """
        _acquire()
        try:
            if self._state:
                return False
            if prepared is not None:
                dev = self._dev
                assert dev is not None
                dev.events, dev.buffers = prepared
            self._value = value
            self._state = state
            callbacks = self._callbacks
            waiters = self._waiters
            self._callbacks = self._waiters = None
            if state == _FAILED and not self._observed and not _from_cancellation(value):
                self._guard = _ErrorGuard(value, repr(self))
        finally:
            _release()
        if waiters:
            for waiter in waiters:
                waiter.release()
        if callbacks:
            _run_callbacks(self, callbacks)
        return True

    def _complete_device(self, value: Any) -> bool:
        dev = self._dev
        assert dev is not None
        if self._state:
            return False
        try:
            prepared = dev.prepare(value)
        except Exception as exc:  # torch: complete with the extraction/backend error
            return self._complete(_FAILED, exc)
        return self._complete(_DONE, value, prepared)

    def _set_result_quietly(self, value: Any) -> None:
        done = (
            self._complete_device(value) if self._dev is not None else self._complete(_DONE, value)
        )
        if not done:
            logger.debug("result for %r ignored: the future was already completed", self)

    def _complete_quietly(self, state: int, value: Any) -> None:
        if not self._complete(state, value):
            logger.debug("outcome for %r ignored: the future was already completed", self)

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
        if self._dev is not None:
            if not self._complete_device(result):
                raise InvalidStateError(ALREADY_COMPLETED)
            return
        # self._complete(_DONE, result), inlined: the hottest path of all
        _acquire()
        try:
            if self._state:
                raise InvalidStateError(ALREADY_COMPLETED)
            self._value = result
            self._state = _DONE
            callbacks = self._callbacks
            waiters = self._waiters
            if callbacks is not None or waiters is not None:
                self._callbacks = self._waiters = None
        finally:
            _release()
        if waiters:
            for waiter in waiters:
                waiter.release()
        if callbacks:
            _run_callbacks(self, callbacks)

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
        if not self._complete(_FAILED, result):
            raise InvalidStateError(ALREADY_COMPLETED)

    def cancel(self) -> bool:
        """Cancel a pending future: it fails with :class:`CancelledError` and runs callbacks.

        Returns:
            True if the future was pending and is now cancelled; False if it had
            already completed (it is not changed).
        """
        if self._state:
            return False
        return self._complete(_CANCELLED, CancelledError("Future was cancelled"))

    # -- state ------------------------------------------------------------------
    def done(self) -> bool:
        """Whether the future has completed (value, error or cancellation).

        Like torch, this ignores device events: see :meth:`is_ready`.
        """
        return self._state != _PENDING

    def cancelled(self) -> bool:
        """Whether :meth:`cancel` cancelled the future."""
        return self._state == _CANCELLED

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
    def _block(self, timeout: float | None) -> bool:
        """Block until complete; False on timeout. Interruptible by signals."""
        if _dispatch.has_queued_work():
            _dispatch.drain_until(self.done)
            if self._state:
                return True
        if timeout == 0:
            return False
        waiter = _new_waiter()
        waiter.acquire()
        _acquire()
        try:
            if self._state:
                return True
            self._observed = True
            if self._waiters is None:
                self._waiters = [waiter]
            else:
                self._waiters.append(waiter)
        finally:
            _release()
        try:
            if timeout is None:
                acquired = waiter.acquire()
            else:
                acquired = waiter.acquire(timeout=min(timeout, _TIMEOUT_MAX))
        except BaseException:  # KeyboardInterrupt: leave the future usable
            self._drop_waiter(waiter)
            raise
        if not acquired:
            self._drop_waiter(waiter)
            return bool(self._state)
        return True

    def _drop_waiter(self, waiter: Any) -> None:
        _acquire()
        try:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        finally:
            _release()

    def _retrieve(self) -> Any:
        """Mark the outcome as seen (no never-retrieved warning) and return it."""
        self._observed = True
        guard = self._guard
        if guard is not None:
            guard.exc = None
            self._guard = None
        return self._value

    def _raise(self) -> NoReturn:
        exc = self._retrieve()
        _mark_seen(exc)
        raise exc

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
        if self._state == _DONE and self._dev is None and timeout is None:
            return self._value  # type: ignore[no-any-return]
        if timeout is not None:
            timeout = _check_timeout(timeout)
        if not self._state and not self._block(timeout):
            raise TimeoutError(f"Future did not complete within {timeout} seconds")
        if self._state != _DONE:
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
        if state == _DONE:
            value: T = self._value
            return value
        if state:
            self._raise()
        raise InvalidStateError(
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
            timeout = _check_timeout(timeout)
        if not self._state and not self._block(timeout):
            raise TimeoutError(f"Future did not complete within {timeout} seconds")
        if self._state == _CANCELLED:
            raise self._value
        if self._state == _FAILED:
            exc: BaseException = self._retrieve()
            _mark_seen(exc)
            return exc
        return None

    def synchronize(self) -> None:
        """Block the host until complete and until the device work it recorded is done.

        torch's ``done()`` is true while kernels still run; after ``synchronize()``
        they have finished. Does not raise the future's error.
        """
        if not self._state:
            self._block(None)
        dev = self._dev
        if dev is not None:
            dev.synchronize()

    def __await__(self) -> Generator[Any, None, T]:
        """``await fut``: wait without blocking the event loop, then :meth:`wait`."""
        if not self._state:
            import asyncio

            loop = asyncio.get_running_loop()
            aio_future = loop.create_future()
            self._register(_AwaitWaker(loop, aio_future))
            yield from aio_future.__await__()
        return self.wait()

    # -- callbacks ---------------------------------------------------------------
    def _register(self, cb: Any) -> None:
        _acquire()
        try:
            self._observed = True
            if not self._state:
                if self._callbacks is None:
                    self._callbacks = [cb]
                else:
                    self._callbacks.append(cb)
                return
        finally:
            _release()
        self._retrieve()
        _run_callbacks(self, (cb,))

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
        child: Future[S] = _new_future(Future)
        child._state = _PENDING
        child._value = None
        child._callbacks = None
        child._waiters = None
        child._observed = False
        child._guard = None
        dev = self._dev
        if dev is None:
            child._dev = None
            if self._state == _DONE and executor is None and not unwrap:
                # Fast path: completed CPU parent, inline callback, fresh child.
                try:
                    child._value = callback(self)
                except BaseException as exc:
                    child._value = None
                    child._complete_quietly(_FAILED, CallbackError.from_exception(exc))
                    return child
                child._state = _DONE
                return child
        else:
            child._dev = dev.child()
        link = (callback, child, executor, bool(unwrap))
        _acquire()
        try:
            self._observed = True
            if not self._state:
                callbacks = self._callbacks
                if callbacks is None:
                    self._callbacks = [link]
                else:
                    callbacks.append(link)
                return child
        finally:
            _release()
        self._retrieve()
        _run_callbacks(self, (link,))
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
        _acquire()
        try:
            self._observed = True
            if not self._state:
                callbacks = self._callbacks
                if callbacks is None:
                    self._callbacks = [callback]
                else:
                    callbacks.append(callback)
                return
        finally:
            _release()
        self._retrieve()
        _run_callbacks(self, (callback,))

    # -- interop ------------------------------------------------------------------
    def to_torch(self) -> Any:
        """A ``torch.futures.Future`` completed when this one completes (value or error)."""
        from ._interop import to_torch

        return to_torch(self)

    def to_concurrent(self) -> Any:
        """A ``concurrent.futures.Future`` following this one (cancellation both ways)."""
        from ._interop import to_concurrent

        return to_concurrent(self)

    def to_asyncio(self, loop: Any = None) -> Any:
        """An ``asyncio.Future`` on ``loop`` (default: the running loop) following this one."""
        from ._interop import to_asyncio

        return to_asyncio(self, loop)

    # -- misc ---------------------------------------------------------------------
    def __repr__(self) -> str:
        state = self._state
        if state == _PENDING:
            what = "pending"
        elif state == _DONE:
            what = f"done value={type(self._value).__name__}"
        elif state == _CANCELLED:
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
