"""Thread stress: any interleaving of completion, registration and waiting is safe.

Every test is bounded: worker threads are daemons joined with a timeout, and a
thread that does not finish fails the test instead of hanging it.
"""

from __future__ import annotations

import itertools
import random
import sys
import threading
import time
from collections import Counter
from typing import Any

import pytest

from futurekit import CallbackError, Future, InvalidStateError, collect_all, wait_all

pytestmark = pytest.mark.timeout(120)

JOIN_TIMEOUT = 60.0


@pytest.fixture(autouse=True)
def frequent_thread_switches() -> Any:
    """Switch threads every few bytecodes so that races actually interleave."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


def start_all(targets: list[Any]) -> list[threading.Thread]:
    threads = [threading.Thread(target=t, daemon=True) for t in targets]
    for t in threads:
        t.start()
    return threads


def join_all(threads: list[threading.Thread]) -> None:
    deadline = time.monotonic() + JOIN_TIMEOUT
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    hung = [t.name for t in threads if t.is_alive()]
    assert not hung, f"threads did not finish (hang): {hung}"


def test_interleaved_operations_every_callback_once() -> None:
    n_workers, n_waiters, rounds, per_round = 6, 2, 150, 8
    token = itertools.count()
    ran: list[int] = []  # list.append is atomic
    registered: list[int] = []
    children: list[tuple[Future[Any], int]] = []
    wins: list[tuple[int, int, str]] = []  # (round, index, kind)
    errors: list[BaseException] = []
    all_rounds = [[Future() for _ in range(per_round)] for _ in range(rounds)]
    barrier = threading.Barrier(n_workers + n_waiters, timeout=JOIN_TIMEOUT)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for r, futs in enumerate(all_rounds):
                barrier.wait()
                order = list(range(per_round))
                rng.shuffle(order)
                for i in order:
                    f = futs[i]
                    for _ in range(rng.randint(0, 3)):
                        op = rng.random()
                        t = next(token)
                        registered.append(t)
                        if op < 0.5:
                            f.add_done_callback(lambda x, t=t: ran.append(t))
                        else:

                            def cb(x: Future[Any], t: int = t) -> int:
                                ran.append(t)
                                return t

                            children.append((f.then(cb), t))
                    designated = i % n_workers == seed
                    if designated or rng.random() < 0.2:
                        try:
                            if rng.random() < 0.5:
                                f.set_result((r, i))
                                wins.append((r, i, "result"))
                            else:
                                f.set_exception(ValueError((r, i)))
                                wins.append((r, i, "error"))
                        except InvalidStateError:
                            pass
                for i in order:
                    if rng.random() < 0.5:
                        try:
                            futs[i].wait()
                        except ValueError:
                            pass
        except BaseException as exc:
            errors.append(exc)

    def waiter(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for futs in all_rounds:
                barrier.wait()
                for f in rng.sample(futs, len(futs)):
                    try:
                        f.wait()
                    except ValueError:
                        pass
        except BaseException as exc:
            errors.append(exc)

    threads = start_all(
        [lambda s=s: worker(s) for s in range(n_workers)]
        + [lambda s=s: waiter(100 + s) for s in range(n_waiters)]
    )
    join_all(threads)
    assert not errors, errors[:3]

    # exactly one completion per future
    per_future = Counter((r, i) for r, i, _ in wins)
    assert len(per_future) == rounds * per_round
    assert set(per_future.values()) == {1}
    # every registered callback ran exactly once
    assert len(ran) == len(registered)
    assert sorted(ran) == sorted(registered)
    # every then-child completed with its callback's value
    for child, t in children:
        assert child.done() and child.value() == t
    # outcomes agree with the winning completion
    kinds = {(r, i): kind for r, i, kind in wins}
    for r, futs in enumerate(all_rounds):
        for i, f in enumerate(futs):
            if kinds[(r, i)] == "result":
                assert f.value() == (r, i)
            else:
                with pytest.raises(ValueError):
                    f.value()


def test_racing_completions_one_wins() -> None:
    n_threads, n_futures = 8, 300
    futs: list[Future[int]] = [Future() for _ in range(n_futures)]
    winners: list[tuple[int, int]] = []
    losers = Counter[int]()
    barrier = threading.Barrier(n_threads, timeout=JOIN_TIMEOUT)
    lock = threading.Lock()

    def racer(k: int) -> None:
        barrier.wait()
        for idx, f in enumerate(futs):
            try:
                if k % 2:
                    f.set_result(k)
                else:
                    f.set_exception(RuntimeError(str(k)))
                winners.append((idx, k))
            except InvalidStateError:
                with lock:
                    losers[idx] += 1

    join_all(start_all([lambda k=k: racer(k) for k in range(n_threads)]))
    assert sorted(i for i, _ in winners) == list(range(n_futures))
    assert all(losers[i] == n_threads - 1 for i in range(n_futures))
    for idx, k in winners:
        f = futs[idx]
        if k % 2:
            assert f.value() == k
        else:
            with pytest.raises(RuntimeError, match=f"^{k}$"):
                f.value()


def _register_many(
    f: Future[int], base: int, go: threading.Event, counts: Counter[int], lock: threading.Lock
) -> None:
    go.wait(5)
    for j in range(20):

        def cb(x: Future[int], key: int = base + j) -> None:
            with lock:
                counts[key] += 1

        if j % 2:
            f.add_done_callback(cb)
        else:
            f.then(cb)


def test_registration_racing_completion() -> None:
    """Callbacks added while another thread completes run exactly once, somewhere."""
    for _ in range(200):
        f: Future[int] = Future()
        counts = Counter[int]()
        lock = threading.Lock()
        go = threading.Event()
        args = [(f, b, go, counts, lock) for b in (0, 100)]
        threads = start_all([lambda a=a: _register_many(*a) for a in args])
        go.set()
        f.set_result(1)
        join_all(threads)
        assert sorted(counts) == list(range(20)) + list(range(100, 120))
        assert set(counts.values()) == {1}


def _wait_into(f: Future[str], got: list[str]) -> None:
    got.append(f.wait())


def test_many_waiters_all_wake() -> None:
    for _ in range(20):
        f: Future[str] = Future()
        got: list[str] = []
        threads = start_all([lambda f=f, got=got: _wait_into(f, got) for _ in range(16)])
        f.set_result("v")
        join_all(threads)
        assert got == ["v"] * 16


def test_waiters_with_timeouts_and_failures() -> None:
    f: Future[int] = Future()
    outcomes: list[str] = []

    def waiter() -> None:
        try:
            f.wait(timeout=JOIN_TIMEOUT)
        except KeyError:
            outcomes.append("error")

    threads = start_all([waiter for _ in range(8)])
    f.set_exception(KeyError("k"))
    join_all(threads)
    assert outcomes == ["error"] * 8


def test_chains_and_collect_all_across_threads() -> None:
    heads: list[Future[int]] = [Future() for _ in range(32)]
    tails = []
    for h in heads:
        t = h
        for _ in range(50):
            t = t.then(lambda x: x.value() + 1)
        tails.append(t)
    all_fut = collect_all(tails)
    threads = start_all([lambda h=h, i=i: h.set_result(i) for i, h in enumerate(heads)])
    got = wait_all(all_fut.wait())
    join_all(threads)
    assert got == [i + 50 for i in range(32)]


def test_callback_errors_under_threads_stay_local() -> None:
    futs: list[Future[int]] = [Future() for _ in range(200)]
    kids = [f.then(lambda x: 1 // 0) for f in futs]
    threads = start_all([lambda f=f: f.set_result(1) for f in futs])
    join_all(threads)
    for f, k in zip(futs, kids, strict=True):
        assert f.value() == 1
        with pytest.raises(CallbackError):
            k.value()


def test_wait_blocks_without_busy_waiting() -> None:
    """A blocked waiter uses (almost) no CPU: it sleeps on a lock, GIL released."""
    f: Future[int] = Future()
    cpu: list[float] = []
    progress = 0

    def waiter() -> None:
        start = time.thread_time()
        f.wait()
        cpu.append(time.thread_time() - start)

    (t,) = start_all([waiter])
    # the main thread keeps running Python code while the other thread waits
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        progress += 1
    f.set_result(1)
    join_all([t])
    assert progress > 0
    assert cpu[0] < 0.1, f"the waiter burned {cpu[0]:.3f} s of CPU while blocked"
