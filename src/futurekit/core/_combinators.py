"""Combinators: collect_all, wait_all (torch) and collect_any, wait_any, as_completed."""

from __future__ import annotations

import time

from ._accelerator import speedups
from ._completion import (
    DONE,
    FAILED,
    InternalCallback,
    complete,
    lock,
)
from ._errors import InvalidFutureError, TimeoutError
from ._future import Future
from ._registration import register, register_removable, unregister
from ._waiting import check_timeout

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
    """Completes a ``collect_all`` result; the first error fails it at once.

    Idempotent (it may be run again after an interrupt): it counts the inputs that
    are done by scanning them in order from where the last call stopped, not by
    counting calls, so no lock is needed and every call is O(1) amortized.
    """

    __slots__ = ("futures", "next", "result")

    def __init__(self, result: Future[list[Future[Any]]], futures: list[Future[Any]]) -> None:
        self.result = result
        self.futures = futures
        self.next = 0

    def __call__(self, fut: Future[Any]) -> None:
        if fut._state != DONE:  # first error wins, at once (torch: callback errors only)
            complete(self.result, FAILED, fut._value)
            return
        futures = self.futures
        n = len(futures)
        i = self.next
        while i < n and futures[i]._state == DONE:
            i += 1
        self.next = i  # a racing thread may store a smaller index: it only rescans
        if i == n:
            complete(self.result, DONE, futures)


def collect_all(futures: Sequence[Future[Any]]) -> Future[list[Future[Any]]]:
    """A future completed with the list of the input futures once all complete.

    The list holds the same future objects, in input order. If any input fails,
    the result fails at once with that error (the same exception object); torch
    only exits early for callback errors. Empty input gives a completed ``[]``.
    Each input is registered on under its own short lock hold, so completions in
    other threads never wait for a long input list.

    Raises:
        InvalidFutureError: an element is ``None`` (torch's ``"Future can't be
            None"``) or not a futurekit Future; a ``RuntimeError`` and ``TypeError``.
        TypeError: ``futures`` is not a sequence.
    """
    futs = _validate(futures, "collect_all")
    result: Future[list[Future[Any]]] = Future()
    if not futs:
        complete(result, DONE, [])
        return result
    gather = _Gather(result, futs)
    # Every pending input first, then the complete ones (their counter runs at once):
    # an interrupt in one of those leaves no pending input without the counter.
    if speedups is not None:  # the compiled loop appends to every pending input
        for fut in speedups.register_each(futs, gather):
            register(fut, gather)
        return result
    done = []
    for fut in futs:
        if fut._state:
            done.append(fut)
            continue
        spare = (fut, gather, None)  # dropped last under the lock: its exit reuses it (_Lock)
        with lock:  # the common case, inline: a pending input with no registration yet
            if not fut._state and fut._cb1 is None:
                fut._cb1 = gather
                fut._observed = True
                del spare
                continue
            del spare
        register(fut, gather)
    for fut in done:
        register(fut, gather)
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
            if type(fut) is not Future or fut._state != DONE or fut._dev is not None:
                break
            append(fut._value)
        else:
            return values
    return [fut.wait() for fut in collect_all(_validate(futures, "wait_all")).wait()]


class _First(InternalCallback):
    """Completes an any-of result with the first input, then leaves the others."""

    __slots__ = ("handles", "result")

    def __init__(self, result: Future[Future[Any]]) -> None:
        self.result = result
        self.handles: list[tuple[Future[Any], Any]] = []

    def __call__(self, fut: Future[Any]) -> None:
        complete(self.result, DONE, fut)
        self.release()  # always: run again after an interrupt, it must still let go

    def release(self) -> None:
        """Unregister from every input (idempotent; later registrations too)."""
        handles, self.handles = self.handles, []
        for fut, handle in handles:
            unregister(fut, handle)


def collect_any(futures: Sequence[Future[T]]) -> Future[Future[T]]:
    """A future completed with the first input future to complete (the same object).

    Once it completes, its callback is removed from the other inputs, so a
    long-lived input does not accumulate callbacks over many calls.

    Raises:
        ValueError: ``futures`` is empty.
        InvalidFutureError: an element is ``None`` or not a futurekit Future.
    """
    return _collect_any(futures, "collect_any")[0]


def _collect_any(futures: Sequence[Future[T]], fn: str) -> tuple[Future[Future[T]], _First]:
    futs = _validate(futures, fn)
    if not futs:
        raise ValueError(f"{fn}() needs at least one future")
    result: Future[Future[T]] = Future()
    first = _First(result)
    for fut in futs:
        handle = register_removable(fut, first)
        if handle is not None:
            first.handles.append((fut, handle))
        if result._state:
            break
    if result._state:
        first.release()
    return result, first


def wait_any(futures: Sequence[Future[T]], timeout: float | None = None) -> T:
    """The value of the first future to complete (or its error).

    Raises:
        TimeoutError: no future completed within ``timeout`` seconds (the inputs
            are left as they were: no callback stays behind).
        ValueError: ``futures`` is empty or ``timeout`` is negative.
        InvalidFutureError: an element is ``None`` or not a futurekit Future.
    """
    if timeout is not None:
        timeout = check_timeout(timeout)
    result, first = _collect_any(futures, "wait_any")
    try:
        winner = result.wait(timeout)
    finally:
        first.release()
    return winner.wait()


class _Enqueue(InternalCallback):
    __slots__ = ("queue",)

    def __init__(self, q: queue.SimpleQueue[Future[Any]]) -> None:
        self.queue = q

    def __call__(self, fut: Future[Any]) -> None:
        self.queue.put(fut)


def as_completed(futures: Iterable[Future[T]], timeout: float | None = None) -> Iterator[Future[T]]:
    """Yield the input futures as they complete (duplicates once).

    Closing the iterator early (``break``, a timeout, garbage collection) removes
    its callbacks from the futures not yet yielded.

    Raises:
        TimeoutError: ``timeout`` seconds passed (from the call) before all completed.
    """
    futs = list(dict.fromkeys(_validate(futures, "as_completed")))
    if timeout is not None:
        timeout = check_timeout(timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    return _as_completed(futs, timeout, deadline)


def _as_completed(
    futs: list[Future[T]], timeout: float | None, deadline: float | None
) -> Iterator[Future[T]]:
    import queue

    q: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()
    enqueue = _Enqueue(q)
    handles = []
    seen: set[int] = set()  # an interrupted enqueue may be run again: yield each once
    try:
        for fut in futs:
            handles.append((fut, register_removable(fut, enqueue)))
        while len(seen) < len(futs):
            if deadline is None:
                done = q.get()
            else:
                try:
                    done = q.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise TimeoutError(
                        f"as_completed(): futures did not all complete within {timeout} seconds"
                    ) from None
            if id(done) not in seen:
                seen.add(id(done))
                yield done
    finally:
        for fut, handle in handles:
            unregister(fut, handle)
