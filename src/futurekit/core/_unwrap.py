"""``then(unwrap=True)``: complete a child with the outcome of the future its callback returned.

Futures are followed however deeply they nest (a future of a future ...), through
futurekit, ``concurrent.futures`` and torch futures. A future met twice on the way
is a cycle (``a.set_result(a)``, or a -> b -> a): the child fails with
:class:`UnwrapCycleError` instead of looping forever.

The forwarders are internal callbacks: they never need device streams. A device
value is handed over with the source's recorded events when the target can take
them (same backend, devices among the target's); otherwise the target records
its own events under the source's callback streams, and a backend that cannot
provide them fails the target with its error.
"""

from __future__ import annotations

import sys

from . import _errors
from ._completion import (
    CANCELLED,
    DONE,
    FAILED,
    FutureBase,
    InternalCallback,
    complete,
    resolve,
    under_streams,
)
from ._errors import UnwrapCycleError, is_concurrent_cancellation
from ._registration import register

TYPE_CHECKING = False  # importing typing costs ~10 ms at import futurekit
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Follow", "FollowTorch", "adopt", "hand_over"]


def adopt(
    child: FutureBase, result: Any, seen: dict[Any, Any] | None = None, came_from: Any = None
) -> None:
    """Complete ``child`` with ``result``, or with its outcome if it is a future.

    ``seen`` maps each future already followed for this child to the future whose
    value led to it. Meeting a future again from another future is a cycle; meeting
    it again from the same one is a forwarder run twice after an interrupt (it
    registers again, which is harmless: completing is idempotent).
    """
    if isinstance(result, FutureBase):
        if seen is None:
            seen = {}
        elif result in seen and seen[result] is not came_from:
            complete(child, FAILED, UnwrapCycleError(_cycle_message(result, seen)))
            return
        seen[result] = came_from
        register(result, _Forward(child, seen))
    elif _is_concurrent_future(result):
        result.add_done_callback(Follow(child, "concurrent", seen))
    elif _is_torch_future(result):
        result.add_done_callback(FollowTorch(child, seen))
    else:
        resolve(child, result)


def _cycle_message(again: Any, seen: dict[Any, Any]) -> str:
    return (
        f"then(unwrap=True): the callback's result leads back to a future already "
        f"followed ({again!r}); {len(seen)} future(s) form a cycle, so the child "
        "could never complete"
    )


def _is_concurrent_future(obj: object) -> bool:
    cf = sys.modules.get("concurrent.futures")  # not imported: no such future exists
    return cf is not None and isinstance(obj, cf.Future)


def _is_torch_future(obj: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch._C.Future)


class _Forward(InternalCallback):
    """Completes ``target`` with the outcome of the future it is registered on."""

    __slots__ = ("seen", "target")

    def __init__(self, target: FutureBase, seen: dict[Any, Any]) -> None:
        self.target = target
        self.seen = seen

    def __call__(self, src: FutureBase) -> None:
        target = self.target
        state = src._state
        if state != DONE:
            complete(target, state, src._value)
            return
        value = src._value
        if isinstance(value, FutureBase) or _is_concurrent_future(value) or _is_torch_future(value):
            adopt(target, value, self.seen, src)
        else:
            hand_over(src, target, value)


def hand_over(src: FutureBase, target: FutureBase, value: Any) -> None:
    """Complete ``target`` with ``src``'s value, ordered after ``src``'s device work."""
    sdev = src._dev
    tdev = target._dev
    if sdev is None or tdev is None:
        resolve(target, value)
        return
    if sdev.backend is tdev.backend and all(d in tdev.devices for d, _ in sdev.events):
        complete(target, DONE, value, sdev.retarget(tdev))
        return
    err = under_streams(sdev.callback_streams, resolve, target, value)
    if err is not None:  # the backend cannot order the hand-over: fail loudly
        complete(target, FAILED, err)


class _Follower:
    """Done-callback of a foreign future: passes its outcome on to a futurekit future.

    With ``unwrap`` a future in the value is followed too (``then(unwrap=True)``);
    without, the value is the target's result as is (``from_concurrent`` and friends).
    """

    __slots__ = ("seen", "target", "unwrap")

    def __init__(
        self, target: FutureBase, seen: dict[Any, Any] | None = None, unwrap: bool = True
    ) -> None:
        self.target = target
        self.seen = seen
        self.unwrap = unwrap

    def _pass_on(self, value: Any) -> None:
        if self.unwrap:
            adopt(self.target, value, self.seen)
        else:
            resolve(self.target, value)


class Follow(_Follower):
    """Follows a ``concurrent.futures`` or asyncio future (``what`` names it in errors)."""

    __slots__ = ("what",)

    def __init__(
        self,
        target: FutureBase,
        what: str,
        seen: dict[Any, Any] | None = None,
        unwrap: bool = True,
    ) -> None:
        super().__init__(target, seen, unwrap)
        self.what = what

    def __call__(self, src: Any) -> None:
        if src.cancelled():
            error = _errors.CancelledError(f"{self.what} future was cancelled")
            complete(self.target, CANCELLED, error)
            return
        exc = src.exception()
        if exc is not None:
            complete(self.target, FAILED, exc)
        else:
            self._pass_on(src.result())


class FollowTorch(_Follower):
    """Follows a torch future; the value is passed on under the streams torch made current.

    For ``from_torch`` and for ``then(unwrap=True)`` alike: a backend with its own
    current-stream table (cuda-python) records the target's events on torch's streams.
    """

    __slots__ = ()

    def __call__(self, tf: Any) -> None:
        target = self.target
        try:
            value = tf.value()
        except Exception as exc:  # torch's cancellation is concurrent.futures'
            complete(target, CANCELLED if is_concurrent_cancellation(exc) else FAILED, exc)
            return
        dev = target._dev
        if dev is None:
            self._pass_on(value)
            return
        err = under_streams(dev.torch_streams, self._pass_on, value)
        if err is not None:
            complete(target, FAILED, err)
