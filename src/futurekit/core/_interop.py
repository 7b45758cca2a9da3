"""Bridges to torch, concurrent.futures and asyncio futures, and ``then(unwrap=True)``.

Every conversion is non-blocking and propagates values, errors and cancellation.
torch and asyncio are imported only when a conversion needs them.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import sys
from typing import TYPE_CHECKING, Any, TypeVar

from ._errors import CancelledError
from ._future import _CANCELLED, _DONE, _FAILED, Future, InternalCallback

if TYPE_CHECKING:
    from ._devices import DeviceLike

__all__ = [
    "adopt",
    "from_asyncio",
    "from_concurrent",
    "from_torch",
    "is_torch_future",
    "to_asyncio",
    "to_concurrent",
    "to_torch",
]

T = TypeVar("T")


def is_torch_future(obj: object) -> bool:
    """Whether ``obj`` is a torch future (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch._C.Future)


def _is_asyncio_future(obj: object) -> bool:
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and asyncio.isfuture(obj)


class _Forward:
    """Completes ``target`` with the outcome of the future it is registered on.

    Not an internal callback: on a device future it runs under synchronized pool
    streams, so the target's events are ordered after the source's.
    """

    __slots__ = ("target", "unwrap")

    def __init__(self, target: Future[Any], unwrap: bool) -> None:
        self.target = target
        self.unwrap = unwrap

    def __call__(self, src: Future[Any]) -> None:
        state = src._state
        if state == _DONE:
            if self.unwrap:
                adopt(self.target, src._value)
            else:
                self.target._set_result_quietly(src._value)
        elif state == _CANCELLED:
            self.target._complete_quietly(_CANCELLED, src._value)
        else:
            self.target._complete_quietly(_FAILED, src._value)


def adopt(child: Future[Any], result: Any) -> None:
    """Complete ``child`` with ``result``, or with its outcome if it is a future.

    Futures are followed however deeply they nest (a future of a future ...).
    """
    if isinstance(result, Future):
        result._register(_Forward(child, True))
    elif isinstance(result, cf.Future):
        from_concurrent(result)._register(_Forward(child, True))
    elif is_torch_future(result):
        from_torch(result)._register(_Forward(child, True))
    else:
        child._set_result_quietly(result)


# -- torch -------------------------------------------------------------------------
def from_torch(
    torch_future: Any,
    *,
    devices: list[DeviceLike] | tuple[DeviceLike, ...] | None = None,
    backend: str | None = None,
) -> Future[Any]:
    """A futurekit Future completed when ``torch_future`` completes (never blocks).

    The value is the torch future's value (the same object); its error (including
    one set with ``set_exception``) becomes this future's error, the same object. A
    ``concurrent.futures.CancelledError`` from torch makes this future cancelled.

    Difference from torch: a ``torch.futures.Future`` does not tell Python which
    devices it has, so pass the same ``devices=`` to get a device future. The value
    is then handed over on the streams torch made current for its callback (already
    synchronized with torch's events) and this future records its own events there,
    so ``wait()`` and callbacks are ordered after the torch work.

    Args:
        torch_future: a ``torch.futures.Future`` (for example from
            ``Work.get_future()`` or ``torch.distributed.rpc.rpc_async``).
        devices: the devices of the returned future (as for :class:`Future`).
        backend: the backend name for those devices (as for :class:`Future`).

    Raises:
        TypeError: ``torch_future`` is not a ``torch.futures.Future``.
    """
    if not is_torch_future(torch_future):
        raise TypeError(
            f"from_torch() expects a torch.futures.Future, got {type(torch_future).__name__}; "
            "use from_concurrent() or from_asyncio() for other futures"
        )
    fut: Future[Any] = Future(devices=devices, backend=backend)
    torch_future.add_done_callback(_FromTorch(fut))
    return fut


class _FromTorch:
    __slots__ = ("fut",)

    def __init__(self, fut: Future[Any]) -> None:
        self.fut = fut

    def __call__(self, tf: Any) -> None:
        fut = self.fut
        try:
            value = tf.value()
        except cf.CancelledError as exc:
            fut._complete_quietly(_CANCELLED, exc)
            return
        except Exception as exc:
            fut._complete_quietly(_FAILED, exc)
            return
        fut._set_result_quietly(value)


class _ToTorch:
    """Completes a torch future from ours.

    Not an internal callback: on a device future it runs under the pool streams
    (synchronized with our events), so the events torch records are ordered after
    ours.
    """

    __slots__ = ("torch_future",)

    def __init__(self, torch_future: Any) -> None:
        self.torch_future = torch_future

    def __call__(self, src: Future[Any]) -> None:
        tf = self.torch_future
        if tf.done():
            return
        try:
            if src._state == _DONE:
                tf.set_result(src._value)
            else:
                tf.set_exception(src._value)
        except Exception as exc:  # torch rejected the value (e.g. a tensor on a bad device)
            if not tf.done():
                tf.set_exception(exc)


def to_torch(fut: Future[Any]) -> Any:
    """A ``torch.futures.Future`` completed when ``fut`` completes (value or error).

    It can be returned wherever torch expects a ``torch.futures.Future`` (a DDP
    communication hook, an RPC function decorated with ``@rpc.functions.async_execution``).
    Never blocks. A device future gives a torch future with the same devices,
    completed on pool streams that wait on ``fut``'s events, so torch's own stream
    synchronization follows. Cancelling ``fut`` fails the torch future with
    :class:`CancelledError` (torch futures cannot be cancelled).

    Raises:
        ModuleNotFoundError: torch is not installed (``pip install 'futurekit[torch]'``).
        ValueError: ``fut`` has devices of a type torch does not know (such as ``sim``).
    """
    if not isinstance(fut, Future):
        raise TypeError(f"to_torch() expects a futurekit.Future, got {type(fut).__name__}")
    try:
        import torch
    except ModuleNotFoundError as exc:  # pragma: no cover - torch is a test dependency
        raise ModuleNotFoundError("to_torch() needs torch: pip install 'futurekit[torch]'") from exc
    devices = [str(d) for d in fut.devices] or None
    try:
        tf: Any = torch.futures.Future(devices=devices)  # type: ignore[arg-type]
    except RuntimeError as exc:
        raise ValueError(
            f"to_torch(): torch futures cannot hold the devices {devices} of this future "
            f"({exc}); wait() on it and complete a CPU torch future instead"
        ) from exc
    fut._register(_ToTorch(tf))
    return tf


# -- concurrent.futures --------------------------------------------------------------
def from_concurrent(cf_future: cf.Future[T]) -> Future[T]:
    """A futurekit Future that follows a ``concurrent.futures.Future`` (never blocks).

    Values and errors are passed on as the same objects. Cancelling either one
    cancels the other; a ``concurrent.futures`` future that is already running
    cannot be cancelled, but ours is cancelled at once anyway and its later
    outcome is ignored.

    Raises:
        TypeError: ``cf_future`` is not a ``concurrent.futures.Future``.
    """
    if not isinstance(cf_future, cf.Future):
        raise TypeError(
            f"from_concurrent() expects a concurrent.futures.Future, got {type(cf_future).__name__}"
        )
    fut: Future[T] = Future()

    def _done(src: cf.Future[T]) -> None:
        if src.cancelled():
            fut._complete_quietly(_CANCELLED, CancelledError("concurrent future was cancelled"))
            return
        exc = src.exception()
        if exc is not None:
            fut._complete_quietly(_FAILED, exc)
        else:
            fut._set_result_quietly(src.result())

    fut._register(_CancelOther(cf_future))
    fut._observed = False  # our own hook is not a retrieval by the user
    cf_future.add_done_callback(_done)
    return fut


class _CancelOther(InternalCallback):
    __slots__ = ("other",)

    def __init__(self, other: Any) -> None:
        self.other = other

    def __call__(self, src: Future[Any]) -> None:
        if src._state == _CANCELLED:
            self.other.cancel()


def to_concurrent(fut: Future[T]) -> cf.Future[T]:
    """A ``concurrent.futures.Future`` completed when ``fut`` completes (never blocks).

    Cancelling the returned future cancels ``fut`` and vice versa.

    Raises:
        TypeError: ``fut`` is not a futurekit Future.
    """
    if not isinstance(fut, Future):
        raise TypeError(f"to_concurrent() expects a futurekit.Future, got {type(fut).__name__}")
    out: cf.Future[T] = cf.Future()

    def _back(other: cf.Future[T]) -> None:
        if other.cancelled():
            fut.cancel()

    out.add_done_callback(_back)
    fut._register(_ToConcurrent(out))
    return out


class _ToConcurrent(InternalCallback):
    __slots__ = ("out",)

    def __init__(self, out: cf.Future[Any]) -> None:
        self.out = out

    def __call__(self, src: Future[Any]) -> None:
        out = self.out
        if src._state == _CANCELLED:
            out.cancel()
            return
        try:
            if src._state == _DONE:
                out.set_result(src._value)
            else:
                out.set_exception(src._value)
        except cf.InvalidStateError:  # cancelled meanwhile
            pass


# -- asyncio -------------------------------------------------------------------------
def to_asyncio(fut: Future[T], loop: Any = None) -> Any:
    """An ``asyncio.Future`` on ``loop`` (default: the running loop) following ``fut``.

    Completion is handed to the loop thread-safely. Cancelling the asyncio future
    cancels ``fut``. For device futures, ``await``-ing ``fut`` directly also
    synchronizes streams; the asyncio future carries the value only.
    """
    import asyncio

    if not isinstance(fut, Future):
        raise TypeError(f"to_asyncio() expects a futurekit.Future, got {type(fut).__name__}")
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "to_asyncio() was called outside a running event loop; pass loop= "
                "or call it from a coroutine"
            ) from None
    elif not isinstance(loop, asyncio.AbstractEventLoop):
        raise TypeError(f"loop must be an asyncio event loop or None, got {loop!r}")
    aio = loop.create_future()

    def _copy() -> None:
        if aio.done():
            return
        if fut._state == _CANCELLED:
            aio.cancel()
        elif fut._state == _DONE:
            aio.set_result(fut._value)
        else:
            aio.set_exception(fut._retrieve())

    def _on_aio_done(a: Any) -> None:
        if a.cancelled():
            fut.cancel()

    aio.add_done_callback(_on_aio_done)
    fut._register(_CallInLoop(loop, _copy))
    return aio


class _CallInLoop(InternalCallback):
    __slots__ = ("fn", "loop")

    def __init__(self, loop: Any, fn: Any) -> None:
        self.loop = loop
        self.fn = fn

    def __call__(self, src: Future[Any]) -> None:
        try:
            self.loop.call_soon_threadsafe(self.fn)
        except RuntimeError:  # loop closed
            pass


def from_asyncio(aio_future: Any) -> Future[Any]:
    """A futurekit Future following an asyncio future or task.

    Safe to wait on from other threads. Cancelling the returned future cancels
    the asyncio future (thread-safely, on its loop).
    """
    if not _is_asyncio_future(aio_future):
        raise TypeError(
            f"from_asyncio() expects an asyncio.Future or Task, got {type(aio_future).__name__}"
        )
    fut: Future[Any] = Future()
    loop = aio_future.get_loop()

    def _done(a: Any) -> None:
        if a.cancelled():
            fut._complete_quietly(_CANCELLED, CancelledError("asyncio future was cancelled"))
            return
        exc = a.exception()
        if exc is not None:
            fut._complete_quietly(_FAILED, exc)
        else:
            fut._set_result_quietly(a.result())

    fut._register(_CancelInLoop(loop, aio_future))
    fut._observed = False
    aio_future.add_done_callback(_done)
    return fut


class _CancelInLoop(InternalCallback):
    """Cancels an asyncio future, on its loop, when ours is cancelled."""

    __slots__ = ("aio_future", "loop")

    def __init__(self, loop: Any, aio_future: Any) -> None:
        self.loop = loop
        self.aio_future = aio_future

    def __call__(self, src: Future[Any]) -> None:
        if src._state == _CANCELLED and not self.aio_future.done():
            with contextlib.suppress(RuntimeError):  # loop closed
                self.loop.call_soon_threadsafe(self.aio_future.cancel)
