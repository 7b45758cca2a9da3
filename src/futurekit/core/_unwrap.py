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

import concurrent.futures as cf
import sys

from ._completion import (
    CANCELLED,
    DONE,
    FAILED,
    FutureBase,
    InternalCallback,
    complete,
    resolve,
)
from ._errors import UnwrapCycleError
from ._registration import register

TYPE_CHECKING = False  # importing typing costs ~10 ms at import futurekit
if TYPE_CHECKING:
    from typing import Any

__all__ = ["adopt"]


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
    elif isinstance(result, cf.Future):
        result.add_done_callback(_FollowConcurrent(child, seen))
    elif _is_torch_future(result):
        result.add_done_callback(_FollowTorch(child, seen))
    else:
        resolve(child, result)


def _cycle_message(again: Any, seen: dict[Any, Any]) -> str:
    return (
        f"then(unwrap=True): the callback's result leads back to a future already "
        f"followed ({again!r}); {len(seen)} future(s) form a cycle, so the child "
        "could never complete"
    )


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
        if isinstance(value, (FutureBase, cf.Future)) or _is_torch_future(value):
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
        complete(target, DONE, value, (sdev.events, sdev.buffers))
        return
    try:
        streams = sdev.callback_streams()
        streams.__enter__()
    except Exception as exc:  # the backend cannot order the hand-over: fail loudly
        complete(target, FAILED, exc)
        return
    try:
        resolve(target, value)
    finally:
        streams.__exit__(None, None, None)


class _FollowConcurrent:
    """``concurrent.futures`` done-callback that passes the outcome on to a child."""

    __slots__ = ("child", "seen")

    def __init__(self, child: FutureBase, seen: dict[Any, Any] | None) -> None:
        self.child = child
        self.seen = seen

    def __call__(self, src: cf.Future[Any]) -> None:
        from ._errors import CancelledError

        if src.cancelled():
            complete(self.child, CANCELLED, CancelledError("concurrent future was cancelled"))
            return
        exc = src.exception()
        if exc is not None:
            complete(self.child, FAILED, exc)
        else:
            adopt(self.child, src.result(), self.seen)


class _FollowTorch:
    """torch done-callback that passes the outcome on to a child."""

    __slots__ = ("child", "seen")

    def __init__(self, child: FutureBase, seen: dict[Any, Any] | None) -> None:
        self.child = child
        self.seen = seen

    def __call__(self, tf: Any) -> None:
        try:
            value = tf.value()
        except cf.CancelledError as exc:
            complete(self.child, CANCELLED, exc)
            return
        except Exception as exc:
            complete(self.child, FAILED, exc)
            return
        adopt(self.child, value, self.seen)
