"""The timed operations of the benchmark suite (the cases and targets: :mod:`.suite`).

Each ``time_*`` function builds its inputs, then times only the operation being
measured, and returns seconds per operation. The same function body runs for every
implementation (futurekit, ``torch.futures``, ``concurrent.futures``), which is
described by an :class:`Impl` of unbound methods so that no implementation pays
for an adapter layer the others do not.
"""

from __future__ import annotations

import functools
import gc
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Impl",
    "alternate",
    "available_impls",
    "noop",
    "passthru",
    "time_add_done_callback",
    "time_collect_all",
    "time_create_set_wait",
    "time_cross_thread",
    "time_lock_pingpong",
    "time_then_chain",
    "time_then_on_done",
    "time_wait_all",
    "torch_missing",
]

_perf = time.perf_counter

#: How long a cross-thread run may take before it is abandoned (a benchmark must end).
_THREAD_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Impl:
    """One futures implementation.

    Futures are driven through their own methods (``fut.set_result(v)``,
    ``fut.wait()``, ``fut.add_done_callback(cb)``, ``fut.then(cb)``), as users call
    them: torch's ``then`` returns a ``torch._C.Future`` whose methods are not the
    Python wrapper's. ``has_then`` is False where there is no ``then``;
    ``collect_all`` / ``wait_all`` are ``None`` where there is no such function.
    """

    name: str
    future: Callable[[], Any]
    has_then: bool
    collect_all: Callable[[Any], Any] | None
    wait_all: Callable[[Any], Any] | None


def _cf_wait_all(futures: Sequence[Any]) -> list[Any]:
    import concurrent.futures as cf

    cf.wait(futures)
    return [fut.result() for fut in futures]


def _cf_future() -> Callable[[], Any]:
    """``concurrent.futures.Future`` with ``wait`` spelled as torch spells it."""
    import concurrent.futures as cf

    class Future(cf.Future):  # type: ignore[type-arg]
        wait = cf.Future.result

    return Future


@functools.cache
def torch_missing() -> str | None:
    """Why ``torch.futures`` cannot be compared here, or ``None`` when torch imports."""
    try:
        import torch.futures  # noqa: F401
    except Exception as exc:  # torch is optional: its columns stay empty
        return f"{type(exc).__name__}: {exc}"
    return None


def available_impls() -> list[Impl]:
    """futurekit, torch.futures (when torch imports) and concurrent.futures."""
    import futurekit as fk

    impls = [Impl("futurekit", fk.Future, True, fk.collect_all, fk.wait_all)]
    if torch_missing() is None:
        import torch.futures as tf

        impls.append(Impl("torch", tf.Future, True, tf.collect_all, tf.wait_all))
    impls.append(Impl("concurrent", _cf_future(), False, None, _cf_wait_all))
    return impls


def alternate(timers: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Median seconds per operation of each timer, runs alternating between timers.

    Every timer runs once as a warm-up, then ``rounds`` times; the order rotates each
    round so that no implementation always runs first. The garbage collector is
    collected before and disabled during each run (as ``timeit`` does).
    """
    names = list(timers)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(-1, rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            enabled = gc.isenabled()
            gc.disable()
            try:
                sample = timers[name]()
            finally:
                if enabled:
                    gc.enable()
            if r >= 0:
                samples[name].append(sample)
    return {name: statistics.median(values) for name, values in samples.items()}


def noop(fut: Any) -> None:
    """A callback that does nothing."""
    return None


def passthru(fut: Any) -> Any:
    """A ``then`` callback that passes the value on."""
    return fut.value()


def time_create_set_wait(impl: Impl, n: int) -> float:
    """``Future()``, ``set_result``, ``wait``: seconds per future."""
    new = impl.future
    t0 = _perf()
    for _ in range(n):
        fut = new()
        fut.set_result(1)
        fut.wait()
    return (_perf() - t0) / n


def time_add_done_callback(impl: Impl, futures: int, callbacks: int) -> float:
    """Register ``callbacks`` callbacks on pending futures, then complete them: per callback."""
    futs = [impl.future() for _ in range(futures)]
    per_future = range(callbacks)
    callback = noop  # a local: no global lookup in the loop
    t0 = _perf()
    for fut in futs:
        for _ in per_future:
            fut.add_done_callback(callback)
        fut.set_result(1)
    return (_perf() - t0) / (futures * callbacks)


def time_then_chain(impl: Impl, links: int) -> float:
    """Build a ``then`` chain on a pending future, complete it, wait the end: per link."""
    link = passthru
    t0 = _perf()
    root = impl.future()
    fut = root
    for _ in range(links):
        fut = fut.then(link)
    root.set_result(1)
    fut.wait()
    return (_perf() - t0) / links


def time_then_on_done(impl: Impl, n: int) -> float:
    """``then`` on an already completed future (the callback runs at once): per call."""
    fut = impl.future()
    fut.set_result(1)
    link = passthru
    t0 = _perf()
    for _ in range(n):
        fut.then(link)
    return (_perf() - t0) / n


def time_collect_all(impl: Impl, futures: int, reps: int) -> float:
    """``collect_all`` over pending futures, then complete them and wait: per future."""
    collect_all = impl.collect_all
    assert collect_all is not None
    batches = [[impl.future() for _ in range(futures)] for _ in range(reps)]
    t0 = _perf()
    for futs in batches:
        combined = collect_all(futs)
        for i, fut in enumerate(futs):
            fut.set_result(i)
        combined.wait()
    return (_perf() - t0) / (futures * reps)


def time_wait_all(impl: Impl, futures: int, reps: int) -> float:
    """``wait_all`` over completed futures: per future."""
    wait_all = impl.wait_all
    assert wait_all is not None
    batches = [[impl.future() for _ in range(futures)] for _ in range(reps)]
    for futs in batches:
        for i, fut in enumerate(futs):
            fut.set_result(i)
    t0 = _perf()
    for futs in batches:
        wait_all(futs)
    return (_perf() - t0) / (futures * reps)


def time_cross_thread(impl: Impl, n: int) -> float:
    """Two threads ping-pong ``n`` times (each sets one future and waits the other's).

    Returns seconds per round trip.

    Raises:
        RuntimeError: the other thread failed or did not finish within a minute.
    """
    pings = [impl.future() for _ in range(n)]
    pongs = [impl.future() for _ in range(n)]
    failure: list[BaseException] = []

    def other() -> None:
        try:
            for ping, pong in zip(pings, pongs, strict=True):
                ping.wait()
                pong.set_result(1)
        except BaseException as exc:  # reported by the main thread, which must not hang
            failure.append(exc)
            for pong in pongs:
                try:
                    pong.set_result(None)
                except Exception:  # already completed
                    pass

    thread = threading.Thread(target=other, name="futurekit-bench-pong", daemon=True)
    thread.start()
    t0 = _perf()
    for ping, pong in zip(pings, pongs, strict=True):
        ping.set_result(1)
        pong.wait()
    elapsed = _perf() - t0
    thread.join(_THREAD_TIMEOUT_S)
    if thread.is_alive() or failure:
        raise RuntimeError(f"cross-thread benchmark thread failed: {failure or 'timeout'}")
    return elapsed / n


def time_lock_pingpong(n: int) -> float:
    """The pure-Python floor of a round trip: two raw ``threading.Lock`` handoffs.

    Returns seconds per round trip.

    Raises:
        RuntimeError: the other thread did not finish within a minute.
    """
    mine, theirs = threading.Lock(), threading.Lock()
    mine.acquire()
    theirs.acquire()

    def other() -> None:
        for _ in range(n):
            theirs.acquire()
            mine.release()

    thread = threading.Thread(target=other, name="futurekit-bench-lock", daemon=True)
    thread.start()
    t0 = _perf()
    for _ in range(n):
        theirs.release()
        if not mine.acquire(timeout=_THREAD_TIMEOUT_S):
            break
    elapsed = _perf() - t0
    thread.join(_THREAD_TIMEOUT_S)
    if thread.is_alive():
        raise RuntimeError("lock ping-pong thread did not finish")
    return elapsed / n
