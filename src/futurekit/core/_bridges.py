"""Bridges from futurekit futures to torch, concurrent.futures and asyncio futures.

Every conversion is non-blocking and propagates values, errors and cancellation.
torch and asyncio are imported only when a conversion needs them. These functions
take any futurekit future and never construct one (see :mod:`._interop` for the
other direction). :mod:`._future` imports this module, so this module names the
part of ``Future`` it uses by its shape (:class:`Source`), never by importing it.
"""

from __future__ import annotations

from ._completion import CANCELLED, DONE, FutureBase, InternalCallback
from ._registration import register, retrieved

TYPE_CHECKING = False  # importing typing costs ~10 ms at import futurekit
if TYPE_CHECKING:
    import concurrent.futures as cf
    from typing import Any, Protocol, TypeVar

    from ._devices import Device

    T = TypeVar("T")
    T_co = TypeVar("T_co", covariant=True)

    class Source(Protocol[T_co]):
        """What the bridges use of a ``futurekit.Future`` beyond its ``FutureBase``."""

        @property
        def devices(self) -> tuple[Device, ...]:
            """The future's devices."""

        def cancel(self) -> bool:
            """Cancel the future if it is pending."""

        def value(self) -> T_co:
            """The future's value."""


__all__ = ["to_asyncio", "to_concurrent", "to_torch"]


def _check(fut: object, fn: str) -> FutureBase:
    """``fut`` itself, as the core's future it must be (else a TypeError naming ``fn``)."""
    if not isinstance(fut, FutureBase):
        raise TypeError(f"{fn}() expects a futurekit.Future, got {type(fut).__name__}")
    return fut


# -- torch ---------------------------------------------------------------------------
class _ToTorch(InternalCallback):
    """Completes a torch future from ours.

    A device value is handed over under pool streams synchronized with our events,
    so the events torch records are ordered after ours; a backend that cannot set
    up those streams fails the torch future with its error.
    """

    __slots__ = ("torch_future",)

    def __init__(self, torch_future: Any) -> None:
        self.torch_future = torch_future

    def __call__(self, src: FutureBase) -> None:
        tf = self.torch_future
        if tf.done():
            return
        dev = src._dev
        try:
            if src._state != DONE:
                tf.set_exception(src._value)
            elif dev is None:
                tf.set_result(src._value)
            else:
                with dev.callback_streams():
                    tf.set_result(src._value)
        except Exception as exc:  # torch rejected the value, or the backend failed
            if not tf.done():
                tf.set_exception(exc)


def to_torch(fut: Source[Any]) -> Any:
    """A ``torch.futures.Future`` completed when ``fut`` completes (value or error).

    It can be returned wherever torch expects a ``torch.futures.Future`` (a DDP
    communication hook, an RPC function decorated with ``@rpc.functions.async_execution``).
    Never blocks. A device future gives a torch future with the same devices,
    completed on pool streams that wait on ``fut``'s events, so torch's own stream
    synchronization follows. Cancelling ``fut`` fails the torch future with
    :class:`CancelledError` (torch futures cannot be cancelled).

    Raises:
        ModuleNotFoundError: torch is not installed (the ``torch`` extra).
        ValueError: ``fut`` has devices of a type torch does not know (such as ``sim``).
    """
    core = _check(fut, "to_torch")
    try:
        import torch
    except ModuleNotFoundError as exc:  # pragma: no cover - torch is a test dependency
        raise ModuleNotFoundError(
            "to_torch() needs torch: install the futurekit[torch] extra "
            "(pip install '.[torch]' from a futurekit checkout)"
        ) from exc
    devices = [str(d) for d in fut.devices] or None
    try:
        tf: Any = torch.futures.Future(devices=devices)  # type: ignore[arg-type]
    except RuntimeError as exc:
        raise ValueError(
            f"to_torch(): torch futures cannot hold the devices {devices} of this future "
            f"({exc}); wait() on it and complete a CPU torch future instead"
        ) from exc
    register(core, _ToTorch(tf))
    return tf


# -- concurrent.futures --------------------------------------------------------------
def to_concurrent(fut: Source[T]) -> cf.Future[T]:
    """A ``concurrent.futures.Future`` completed when ``fut`` completes (never blocks).

    Cancelling the returned future cancels ``fut`` and vice versa.

    Raises:
        TypeError: ``fut`` is not a futurekit Future.
    """
    import concurrent.futures  # imported on first use: it is most of import futurekit

    core = _check(fut, "to_concurrent")
    out: cf.Future[T] = concurrent.futures.Future()

    def _back(other: cf.Future[T]) -> None:
        if other.cancelled():
            fut.cancel()

    out.add_done_callback(_back)
    register(core, _ToConcurrent(out))
    return out


class _ToConcurrent(InternalCallback):
    __slots__ = ("out",)

    def __init__(self, out: cf.Future[Any]) -> None:
        self.out = out

    def __call__(self, src: FutureBase) -> None:
        out = self.out
        if src._state == CANCELLED:
            out.cancel()
            return
        dev = src._dev
        if src._state != DONE:
            self._finish(src._value, False)
        elif dev is None:
            self._finish(src._value, True)
        else:  # concurrent.futures knows no streams: complete once the device is done
            value = src._value
            dev.call_when_ready(
                lambda err: self._finish(value, True) if err is None else self._finish(err, False)
            )

    def _finish(self, outcome: Any, ok: bool) -> None:
        try:
            if ok:
                self.out.set_result(outcome)
            else:
                self.out.set_exception(outcome)
        except Exception as exc:
            import concurrent.futures  # imported already: self.out is one of its futures

            if not isinstance(exc, concurrent.futures.InvalidStateError):
                raise  # else it was cancelled meanwhile


# -- asyncio -------------------------------------------------------------------------
def to_asyncio(fut: Source[Any], loop: Any = None) -> Any:
    """An ``asyncio.Future`` on ``loop`` (default: the running loop) following ``fut``.

    Completion is handed to the loop thread-safely. Cancelling the asyncio future
    cancels ``fut``. For device futures, ``await``-ing ``fut`` directly also
    synchronizes streams; the asyncio future carries the value only.
    """
    import asyncio

    core = _check(fut, "to_asyncio")
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
    if loop.is_closed():
        raise ValueError(
            f"to_asyncio(): the event loop {loop!r} is closed, so the asyncio future "
            "could never complete; pass a running or open loop"
        )
    aio = loop.create_future()

    def _copy() -> None:
        if aio.done():
            return
        if core._state == CANCELLED:
            aio.cancel()
        elif core._state == DONE:
            aio.set_result(core._value)
        else:
            retrieved(core)
            aio.set_exception(core._value)

    def _on_aio_done(a: Any) -> None:
        if a.cancelled():
            fut.cancel()

    aio.add_done_callback(_on_aio_done)
    register(core, _CallInLoop(loop, _copy))
    return aio


class _CallInLoop(InternalCallback):
    __slots__ = ("fn", "loop")

    def __init__(self, loop: Any, fn: Any) -> None:
        self.loop = loop
        self.fn = fn

    def __call__(self, src: FutureBase) -> None:
        try:
            self.loop.call_soon_threadsafe(self.fn)
        except RuntimeError:  # loop closed
            pass
