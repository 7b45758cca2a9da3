"""Bridges into futurekit: ``from_torch``, ``from_concurrent``, ``from_asyncio``.

Each returns a new :class:`~futurekit.Future` that follows the foreign future
without blocking, passing on values, errors (the same objects) and cancellation.
The other direction lives in :mod:`._bridges`.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import sys
from typing import TYPE_CHECKING, Any, TypeVar

from ._bridges import to_asyncio, to_concurrent, to_torch
from ._completion import CANCELLED, InternalCallback
from ._future import Future
from ._registration import register
from ._unwrap import Follow, FollowTorch

if TYPE_CHECKING:
    from ._devices import DeviceLike

__all__ = [
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
    torch_future.add_done_callback(FollowTorch(fut, unwrap=False))
    return fut


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
    register(fut, _CancelOther(cf_future), observe=False)
    cf_future.add_done_callback(Follow(fut, "concurrent", unwrap=False))
    return fut


class _CancelOther(InternalCallback):
    __slots__ = ("other",)

    def __init__(self, other: Any) -> None:
        self.other = other

    def __call__(self, src: Future[Any]) -> None:
        if src._state == CANCELLED:
            self.other.cancel()


# -- asyncio -------------------------------------------------------------------------
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
    register(fut, _CancelInLoop(aio_future.get_loop(), aio_future), observe=False)
    aio_future.add_done_callback(Follow(fut, "asyncio", unwrap=False))
    return fut


class _CancelInLoop(InternalCallback):
    """Cancels an asyncio future, on its loop, when ours is cancelled."""

    __slots__ = ("aio_future", "loop")

    def __init__(self, loop: Any, aio_future: Any) -> None:
        self.loop = loop
        self.aio_future = aio_future

    def __call__(self, src: Future[Any]) -> None:
        if src._state == CANCELLED and not self.aio_future.done():
            with contextlib.suppress(RuntimeError):  # loop closed
                self.loop.call_soon_threadsafe(self.aio_future.cancel)
