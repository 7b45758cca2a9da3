"""Combinators: collect_all, wait_all (torch) and collect_any, wait_any, as_completed."""

from __future__ import annotations

import itertools
import time

from ._errors import InvalidFutureError, TimeoutError
from ._future import (
    _DONE,
    _FAILED,
    _PENDING,
    Future,
    InternalCallback,
    _acquire,
    _check_timeout,
    _release,
)

TYPE_CHECKING = False  # importing typing costs ~10 ms at import futurekit
if TYPE_CHECKING:
    import queue
    from collections.abc import Iterable, Iterator, Sequence
    from typing import Any, TypeVar

    T = TypeVar("T")

__all__ = ["as_completed", "collect_all", "collect_any", "wait_all", "wait_any"]


def _validate(futures: object, fn: str) -> list[Future[Any]]:
    if futures is None or isinstance(futures, (str, bytes, Future)):
        raise TypeError(
            f"{fn}() expects a sequence of futurekit.Future objects, got {type(futures).__name__}"
        )
    try:
        futs: list[Future[Any]] = list(futures)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(
            f"{fn}() expects a sequence of futurekit.Future objects, got {type(futures).__name__}"
        ) from None
    for i, fut in enumerate(futs):
        if type(fut) is Future:
            continue
        if fut is None:
            raise InvalidFutureError("Future can't be None")
        if not isinstance(fut, Future):
            raise InvalidFutureError(
                f"{fn}() expects futurekit.Future objects, got {type(fut).__name__} at "
                f"index {i}; wrap torch or concurrent.futures futures with "
                "futurekit.from_torch() / futurekit.from_concurrent()"
            )
    return futs


class _Gather(InternalCallback):
    __slots__ = ("count", "futures", "last", "result")

    def __init__(self, result: Future[list[Future[Any]]], futures: list[Future[Any]]) -> None:
        self.result = result
        self.futures = futures
        self.last = len(futures) - 1
        self.count = itertools.count()  # next() is atomic: no lock per input

    def __call__(self, fut: Future[Any]) -> None:
        if fut._state != _DONE:  # first error wins, at once (torch: callback errors only)
            self.result._complete_quietly(_FAILED, fut._value)
        elif next(self.count) == self.last:
            self.result._complete_quietly(_DONE, self.futures)


def collect_all(futures: Sequence[Future[Any]]) -> Future[list[Future[Any]]]:
    """A future completed with the list of the input futures once all complete.

    The list holds the same future objects, in input order. If any input fails,
    the result fails at once with that error (the same exception object); torch
    only exits early for callback errors. Empty input gives a completed ``[]``.

    Raises:
        InvalidFutureError: an element is ``None`` (torch's ``"Future can't be
            None"``) or not a futurekit Future; a ``RuntimeError`` and ``TypeError``.
        TypeError: ``futures`` is not a sequence.
    """
    futs = _validate(futures, "collect_all")
    result: Future[list[Future[Any]]] = Future()
    if not futs:
        result._complete(_DONE, [])
        return result
    gather = _Gather(result, futs)
    done: list[Future[Any]] = []
    _acquire()  # register on every pending input under one lock hold
    try:
        for fut in futs:
            if fut._state:
                done.append(fut)
                continue
            fut._observed = True
            callbacks = fut._callbacks
            if callbacks is None:
                fut._callbacks = [gather]
            else:
                callbacks.append(gather)
    finally:
        _release()
    for fut in done:  # already complete: count them now, in input order
        fut._register(gather)
    return result


def wait_all(futures: Sequence[Future[Any]]) -> list[Any]:
    """Wait for every future and return their values in input order.

    Raises:
        Exception: the first error, as soon as any input fails.
    """
    if type(futures) is list or type(futures) is tuple:
        # Fast path: every input is a completed CPU future.
        values: list[Any] = []
        append = values.append
        for fut in futures:
            if type(fut) is not Future or fut._state != _DONE or fut._dev is not None:
                break
            append(fut._value)
        else:
            return values
    return [fut.wait() for fut in collect_all(futures).wait()]


class _First(InternalCallback):
    __slots__ = ("result",)

    def __init__(self, result: Future[Future[Any]]) -> None:
        self.result = result

    def __call__(self, fut: Future[Any]) -> None:
        if self.result._state == _PENDING:
            self.result._complete(_DONE, fut)


def collect_any(futures: Sequence[Future[T]]) -> Future[Future[T]]:
    """A future completed with the first input future to complete (the same object).

    Raises:
        ValueError: ``futures`` is empty.
        InvalidFutureError: an element is ``None`` or not a futurekit Future.
    """
    return _collect_any(futures, "collect_any")


def _collect_any(futures: Sequence[Future[T]], fn: str) -> Future[Future[T]]:
    futs = _validate(futures, fn)
    if not futs:
        raise ValueError(f"{fn}() needs at least one future")
    result: Future[Future[T]] = Future()
    first = _First(result)
    for fut in futs:
        fut._register(first)
        if result._state:
            break
    return result


def wait_any(futures: Sequence[Future[T]], timeout: float | None = None) -> T:
    """The value of the first future to complete (or its error).

    Raises:
        TimeoutError: no future completed within ``timeout`` seconds.
        ValueError: ``futures`` is empty or ``timeout`` is negative.
        InvalidFutureError: an element is ``None`` or not a futurekit Future.
    """
    if timeout is not None:
        timeout = _check_timeout(timeout)
    return _collect_any(futures, "wait_any").wait(timeout).wait()


class _Enqueue(InternalCallback):
    __slots__ = ("queue",)

    def __init__(self, q: queue.SimpleQueue[Future[Any]]) -> None:
        self.queue = q

    def __call__(self, fut: Future[Any]) -> None:
        self.queue.put(fut)


def as_completed(futures: Iterable[Future[T]], timeout: float | None = None) -> Iterator[Future[T]]:
    """Yield the input futures as they complete (duplicates once).

    Raises:
        TimeoutError: ``timeout`` seconds passed (from the call) before all completed.
    """
    futs = list(dict.fromkeys(_validate(futures, "as_completed")))
    if timeout is not None:
        timeout = _check_timeout(timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    return _as_completed(futs, timeout, deadline)


def _as_completed(
    futs: list[Future[T]], timeout: float | None, deadline: float | None
) -> Iterator[Future[T]]:
    import queue

    q: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()
    enqueue = _Enqueue(q)
    for fut in futs:
        fut._register(enqueue)
    for _ in range(len(futs)):
        if deadline is None:
            yield q.get()
            continue
        try:
            yield q.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(
                f"as_completed(): futures did not all complete within {timeout} seconds"
            ) from None
