"""Robustness of the redesigned core: cycles, long failing chains, flat memory, fairness,
interrupts inside callbacks, failing backends, odd arguments, never-retrieved warnings
and a thread stress test."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import os
import random
import subprocess
import sys
import textwrap
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

import futurekit
from futurekit import (
    CallbackError,
    Future,
    UnwrapCycleError,
    as_completed,
    collect_all,
    collect_any,
    wait_any,
)
from thread_helpers import run_in_thread

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _no_callbacks(fut: Future[Any]) -> bool:
    return fut._cb1 is None and not fut._cbs and not fut._rm


# -- unwrap cycles -------------------------------------------------------------------------
@pytest.mark.timeout(20)
def test_unwrap_self_referential_future_fails_with_cycle_error() -> None:
    a: Future[Any] = Future()
    a.set_result(a)
    child = a.then(lambda f: f, unwrap=True)
    with pytest.raises(UnwrapCycleError):
        child.wait(timeout=5)


@pytest.mark.timeout(20)
def test_unwrap_two_future_cycle_fails_with_cycle_error() -> None:
    a: Future[Any] = Future()
    b: Future[Any] = Future()
    parent: Future[None] = Future()
    child = parent.then(lambda f: a, unwrap=True)
    parent.set_result(None)
    a.set_result(b)
    b.set_result(a)
    with pytest.raises(UnwrapCycleError):
        child.wait(timeout=5)


@pytest.mark.timeout(30)
def test_unwrap_ten_thousand_nested_futures() -> None:
    innermost: Future[str] = Future()
    innermost.set_result("bottom")
    outer: Future[Any] = innermost
    for _ in range(10_000):
        wrapper: Future[Any] = Future()
        wrapper.set_result(outer)
        outer = wrapper
    parent: Future[None] = Future()
    child = parent.then(lambda f: outer, unwrap=True)
    parent.set_result(None)
    assert child.wait(timeout=20) == "bottom"


@pytest.mark.timeout(30)
def test_unwrap_ten_thousand_nested_pending_futures() -> None:
    """Nested futures completed after the child followed the first one."""
    chain: list[Future[Any]] = [Future() for _ in range(10_000)]
    parent: Future[None] = Future()
    child = parent.then(lambda f: chain[0], unwrap=True)
    parent.set_result(None)
    for outer, inner in itertools.pairwise(chain):
        outer.set_result(inner)
    chain[-1].set_result(42)
    assert child.wait(timeout=20) == 42


# -- long failing chains ---------------------------------------------------------------------
def _chain_peak(n: int, fail: bool) -> tuple[int, Future[Any], Future[Any]]:
    gc.collect()
    tracemalloc.start()
    try:
        root: Future[int] = Future()
        node: Future[Any] = root
        first: Future[Any] | None = None
        for _ in range(n):
            node = node.then(lambda f: f.wait())
            if first is None:
                first = node
        tracemalloc.reset_peak()
        if fail:
            root.set_exception(ValueError("root cause"))
        else:
            root.set_result(1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert first is not None
    return peak, first, node


@pytest.mark.timeout(120)
def test_failing_chain_of_100k_links_shares_one_error_and_memory_stays_linear() -> None:
    n = 100_000
    ok_peak, _, ok_last = _chain_peak(n, fail=False)
    assert ok_last.wait() == 1
    fail_peak, first, last = _chain_peak(n, fail=True)
    err = first.exception()
    assert isinstance(err, CallbackError)
    assert str(err).startswith(
        "Got the following error when running the callback: ValueError: root cause"
    )
    assert isinstance(err.__cause__, ValueError)
    assert str(err.__cause__) == "root cause"
    assert last.exception() is err
    assert fail_peak <= 3 * max(ok_peak, 1), (fail_peak, ok_peak)


# -- memory flat: any-of combinators unregister --------------------------------------------
@pytest.mark.timeout(60)
def test_collect_any_with_a_long_lived_input_leaves_no_callbacks() -> None:
    long_lived: Future[int] = Future()
    for i in range(100_000):
        fresh: Future[int] = Future()
        res = collect_any([long_lived, fresh])
        fresh.set_result(i)
        assert res.value() is fresh
    assert _no_callbacks(long_lived)
    # and it still works
    res = collect_any([long_lived])
    long_lived.set_result(-1)
    assert res.value() is long_lived


@pytest.mark.timeout(60)
def test_wait_any_timeouts_and_closed_as_completed_leave_no_callbacks() -> None:
    long_lived: Future[int] = Future()
    other: Future[int] = Future()
    for _ in range(2_000):
        with pytest.raises(futurekit.TimeoutError):
            wait_any([long_lived, other], timeout=0)
    for _ in range(20):
        with pytest.raises(futurekit.TimeoutError):
            wait_any([long_lived, other], timeout=0.001)
    assert _no_callbacks(long_lived) and _no_callbacks(other)
    for i in range(20_000):
        fresh: Future[int] = Future()
        fresh.set_result(i)
        it = as_completed([long_lived, fresh])
        assert next(it) is fresh
        it.close()
    assert _no_callbacks(long_lived)
    for _ in range(1_000):
        with pytest.raises(futurekit.TimeoutError):
            next(as_completed([long_lived], timeout=0))
    gc.collect()
    assert _no_callbacks(long_lived)


@pytest.mark.timeout(60)
def test_asyncio_wait_for_timeouts_leave_no_callbacks() -> None:
    long_lived: Future[int] = Future()

    async def main() -> None:
        for _ in range(5_000):
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(long_lived, 0)
        for _ in range(20):
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(long_lived, 0.0005)

    asyncio.run(main())
    assert _no_callbacks(long_lived)


# -- collect_all does not starve other threads -----------------------------------------------
@pytest.mark.timeout(120)
def test_collect_all_registration_interleaves_with_other_threads() -> None:
    n = 300_000
    inputs: list[Future[int]] = [Future() for _ in range(n)]
    others: list[Future[int]] = [Future() for _ in range(200_000)]
    started = threading.Event()
    returned = threading.Event()
    ran_before_return = [0]

    def other_thread() -> None:
        started.set()
        for fut in others:
            if returned.is_set():
                break
            fut.set_result(0)
            ran_before_return[0] += 1

    thread = threading.Thread(target=other_thread, daemon=True)
    thread.start()
    started.wait(10)
    res = collect_all(inputs)
    returned.set()
    count = ran_before_return[0]
    thread.join(60)
    assert count >= 100, f"the other thread completed only {count} futures during collect_all"
    for i, fut in enumerate(inputs):
        fut.set_result(i)
    assert res.wait(timeout=30) is not None


# -- interrupts inside callbacks -------------------------------------------------------------
@pytest.mark.timeout(60)
def test_sys_exit_in_a_callback_exits_the_process_with_its_status() -> None:
    code = textwrap.dedent(
        """
        import sys
        from futurekit import Future
        f = Future()
        ran = []
        f.add_done_callback(lambda fut: sys.exit(3))
        f.add_done_callback(lambda fut: ran.append(1))
        try:
            f.set_result(1)
        finally:
            print("remaining callbacks ran:", ran == [1], flush=True)
        print("not reached", flush=True)
        """
    )
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30
    )
    assert proc.returncode == 3, proc.stderr
    assert "remaining callbacks ran: True" in proc.stdout
    assert "not reached" not in proc.stdout


@pytest.mark.timeout(20)
def test_keyboard_interrupt_in_a_callback_propagates_after_the_rest_ran() -> None:
    fut: Future[int] = Future()
    calls: list[str] = []

    def interrupt(f: Future[int]) -> None:
        calls.append("interrupt")
        raise KeyboardInterrupt

    fut.add_done_callback(lambda f: calls.append("before"))
    fut.add_done_callback(interrupt)
    interrupted_child = fut.then(interrupt)
    after_child = fut.then(lambda f: f.value() + 1)
    nested = after_child.then(lambda f: f.value() + 1)
    fut.add_done_callback(lambda f: calls.append("after"))
    with pytest.raises(KeyboardInterrupt):
        fut.set_result(1)
    assert calls == ["before", "interrupt", "interrupt", "after"]
    assert after_child.value() == 2 and nested.value() == 3
    err = interrupted_child.exception(timeout=0)
    assert isinstance(err, CallbackError)
    assert isinstance(err.__cause__, KeyboardInterrupt)
    # nothing deferred is left behind
    from futurekit.core import _trampoline

    assert not _trampoline.has_queued_work()


# -- a backend that cannot give callback streams --------------------------------------------
@pytest.fixture
def broken_streams(monkeypatch: pytest.MonkeyPatch) -> Future[Any]:
    from futurekit.backends.sim import get_backend
    from futurekit.core import _resolver

    backend = get_backend()

    def refuse(device: Any) -> Any:
        raise RuntimeError("sim: no pool stream today")

    monkeypatch.setattr(backend, "stream_from_pool", refuse)
    _resolver.bump()  # device plans bind a backend's methods once: make new ones
    fut: Future[Any] = Future(devices=["sim:0"])
    return fut


@pytest.mark.timeout(30)
def test_backend_failing_streams_reports_callback_and_fails_child(
    broken_streams: Future[Any], caplog: pytest.LogCaptureFixture
) -> None:
    fut = broken_streams
    ran: list[Any] = []
    fut.add_done_callback(ran.append)
    child = fut.then(lambda f: "never")
    unwrapped = fut.then(lambda f: f, unwrap=True)
    other: Future[Any] = Future(devices=["sim:0"])
    gathered = collect_all([fut, other])
    with caplog.at_level(logging.ERROR, logger="futurekit"):
        fut.set_result(5)
        other.set_result(6)
    assert ran == []
    assert any(
        r.levelno == logging.ERROR and "no pool stream today" in r.getMessage()
        for r in caplog.records
    ), caplog.text
    err = child.exception(timeout=5)
    assert isinstance(err, RuntimeError) and "no pool stream today" in str(err)
    # internal callbacks never need streams (then itself ran the user's callback
    # under streams: it fails too; the combinators and await do not)
    assert gathered.wait(timeout=5) == [fut, other]
    assert isinstance(unwrapped.exception(timeout=5), RuntimeError)

    async def main() -> Any:
        return await fut

    assert asyncio.run(main()) == 5


@pytest.mark.timeout(30)
def test_backend_failing_streams_unwrap_of_a_device_future_completes(
    broken_streams: Future[Any],
) -> None:
    inner = broken_streams
    parent: Future[None] = Future()
    child = parent.then(lambda f: inner, unwrap=True)
    parent.set_result(None)
    inner.set_result(9)
    assert child.wait(timeout=5) == 9


# -- odd arguments -----------------------------------------------------------------------------
@pytest.mark.timeout(10)
def test_huge_timeout_means_forever() -> None:
    fut: Future[int] = Future()
    fut.set_result(1)
    assert fut.wait(timeout=10**400) == 1
    pending: Future[int] = Future()
    threading.Timer(0.05, pending.set_result, args=(2,)).start()
    assert pending.wait(timeout=10**400) == 2


@pytest.mark.timeout(10)
def test_to_asyncio_on_a_closed_loop_raises_value_error() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    with pytest.raises(ValueError):
        Future().to_asyncio(loop=loop)


@pytest.mark.timeout(10)
def test_backend_without_a_name_or_devices_raises_clearly() -> None:
    with pytest.raises(ValueError, match="names no backend"):
        Future(backend="")
    with pytest.raises(ValueError, match="without devices"):
        Future(backend="sim")


# -- never-retrieved warnings ----------------------------------------------------------------
def _never_retrieved(caplog: pytest.LogCaptureFixture, what: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "never retrieved" in (m := r.getMessage()) and what in m]


@pytest.mark.timeout(20)
def test_timed_out_wait_does_not_count_as_retrieval(caplog: pytest.LogCaptureFixture) -> None:
    fut: Future[int] = Future()
    with pytest.raises(futurekit.TimeoutError):
        fut.wait(timeout=0.01)
    with caplog.at_level(logging.WARNING, logger="futurekit"):
        fut.set_exception(ValueError("nobody looked"))
        del fut
        gc.collect()
    assert len(_never_retrieved(caplog, "nobody looked")) == 1, caplog.text


@pytest.mark.timeout(20)
def test_shared_exception_warns_for_the_unretrieved_future(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exc = ValueError("shared")
    a: Future[int] = Future()
    b: Future[int] = Future()
    with caplog.at_level(logging.WARNING, logger="futurekit"):
        a.set_exception(exc)
        b.set_exception(exc)
        assert a.exception() is exc
        del a, b
        gc.collect()
    assert len(_never_retrieved(caplog, "'shared'")) == 1, caplog.text


@pytest.mark.timeout(20)
def test_shared_exception_neither_retrieved_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    exc = ValueError("shared, unseen")
    a: Future[int] = Future()
    b: Future[int] = Future()
    with caplog.at_level(logging.WARNING, logger="futurekit"):
        a.set_exception(exc)
        b.set_exception(exc)
        del a, b
        gc.collect()
    assert len(_never_retrieved(caplog, "shared, unseen")) == 1, caplog.text


# -- thread stress --------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_thread_stress_exactly_once_and_no_lost_completion() -> None:
    n_threads, rounds, width = 8, 150, 12
    lock = threading.Lock()
    errors: list[str] = []

    for round_no in range(rounds):
        shared: list[Future[int]] = [Future() for _ in range(width)]
        counts = [[0] for _ in range(width)]
        registered = [0] * width

        def count(i: int, counts: list[list[int]] = counts) -> Any:
            def cb(f: Future[int]) -> None:
                with lock:
                    counts[i][0] += 1

            return cb

        barrier = threading.Barrier(n_threads)

        def worker(
            seed: int,
            shared: list[Future[int]] = shared,
            registered: list[int] = registered,
            barrier: threading.Barrier = barrier,
        ) -> None:
            rng = random.Random(seed)
            barrier.wait()
            for _ in range(60):
                i = rng.randrange(width)
                op = rng.randrange(6)
                fut = shared[i]
                if op == 0:
                    fut.add_done_callback(count(i))
                    with lock:
                        registered[i] += 1
                elif op == 1:
                    res = collect_any([fut, shared[(i + 1) % width]])
                    if res.done():
                        assert res.value() in (fut, shared[(i + 1) % width])
                elif op == 2:
                    try:
                        fut.set_result(i)
                    except futurekit.InvalidStateError:
                        pass
                elif op == 3:
                    fut.cancel()
                elif op == 4:
                    try:
                        wait_any([fut, shared[(i + 3) % width]], timeout=0.0005)
                    except (futurekit.TimeoutError, futurekit.CancelledError):
                        pass
                else:
                    try:
                        fut.wait(timeout=0.0005)
                    except (futurekit.TimeoutError, futurekit.CancelledError):
                        pass

        threads = [
            threading.Thread(target=worker, args=(round_no * 100 + t,), daemon=True)
            for t in range(n_threads)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
            assert not t.is_alive(), "a stress thread hung"
        for fut in shared:
            fut.cancel()  # complete what is left
        for i, fut in enumerate(shared):
            assert fut.done()
            if counts[i][0] != registered[i]:
                errors.append(
                    f"round {round_no}: future {i}: {registered[i]} callbacks registered, "
                    f"{counts[i][0]} ran"
                )
            if not _no_callbacks(fut):
                errors.append(f"round {round_no}: future {i} keeps registrations after completion")
    assert not errors, errors[:10]


@pytest.mark.timeout(60)
def test_many_threads_complete_while_others_wait() -> None:
    """No completion is lost: every waiter of every future wakes."""

    def body() -> None:
        for _ in range(30):
            futs: list[Future[int]] = [Future() for _ in range(50)]
            results: list[Any] = []
            res_lock = threading.Lock()

            def waiter(
                futs: list[Future[int]] = futs,
                results: list[Any] = results,
                res_lock: threading.Lock = res_lock,
            ) -> None:
                got = [f.wait(timeout=20) for f in futs]
                with res_lock:
                    results.append(got)

            def completer(futs: list[Future[int]] = futs) -> None:
                for i, f in enumerate(futs):
                    try:
                        f.set_result(i)
                    except futurekit.InvalidStateError:
                        pass

            threads = [threading.Thread(target=waiter) for _ in range(4)]
            threads += [threading.Thread(target=completer) for _ in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert results == [list(range(50))] * 4

    run_in_thread(body, timeout=50)
