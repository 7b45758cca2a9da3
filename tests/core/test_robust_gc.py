"""Finalizers that use futures, run by the garbage collector at any allocation.

With ``gc.set_threshold(1)`` a collection can start at almost every allocation, so
``__del__`` methods of objects in reference cycles run inside futurekit's own code
paths (outside its lock, by design). They complete, cancel, register on and poll
futures while other threads do the same; nothing may deadlock and every callback
must run exactly once.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import random
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import futurekit
from futurekit import Future, collect_all, collect_any
from futurekit.core import _accelerator
from thread_helpers import run_in_thread

TESTS = Path(__file__).resolve().parents[1]
SRC = str(TESTS.parent / "src")


def _in_a_fresh_interpreter(body: Callable[[], None], pure: bool | None = None) -> None:
    """Run ``body`` (a function of this module) in a subprocess with gc.set_threshold(1).

    A full collection there costs a millisecond; in the test session, with torch and
    pytest's objects to traverse, about 0.1 s. ``pure`` picks the core (None: this
    session's). A failure is the body's AssertionError, re-raised with its output.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, str(TESTS)])}
    if pure is not None:
        env.pop(_accelerator.ENV_VAR, None)
        if pure:
            env[_accelerator.ENV_VAR] = "1"
    script = textwrap.dedent(
        f"""
        import gc, json
        from core import {__name__.rsplit(".", 1)[-1]} as tests
        from futurekit.core import _accelerator
        gc.set_threshold(1)
        tests.{body.__name__}()
        print(json.dumps({{"core": _accelerator.status}}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    core = json.loads(proc.stdout.strip().splitlines()[-1])["core"]
    assert (core == "compiled accelerator") is (
        not pure if pure is not None else _accelerator.speedups is not None
    ), core


@pytest.fixture(autouse=True)
def _gc_every_allocation() -> Iterator[None]:
    old = gc.get_threshold()
    gc.set_threshold(1)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.collect()


class Book:
    """Registrations made anywhere (finalizers included) and how often each ran."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[Future[Any], list[Future[Any]]]] = []
        self.children: list[tuple[Future[Any], Future[Any]]] = []
        self.errors: list[str] = []

    def count_on(self, fut: Future[Any]) -> None:
        calls: list[Future[Any]] = []
        fut.add_done_callback(calls.append)  # a builtin: runs to completion
        with self.lock:
            self.calls.append((fut, calls))

    def child_of(self, fut: Future[Any]) -> None:
        child = fut.then(lambda f: f.done())
        with self.lock:
            self.children.append((fut, child))

    def check(self) -> list[str]:
        problems = list(self.errors)
        for fut, calls in self.calls:
            if not fut.done():
                problems.append(f"{fut!r} is not done")
            elif len(calls) != 1:
                problems.append(f"a callback on {fut!r} ran {len(calls)} times")
        for parent, child in self.children:
            if parent.done() and not child.done():
                problems.append(f"a then-child of {parent!r} is pending")
        return problems[:20]


class Finalizer:
    """Does something with a future when collected; kept alive by a reference cycle."""

    def __init__(self, book: Book, fut: Future[Any], action: int) -> None:
        self.book = book
        self.fut = fut
        self.action = action
        self.cycle = self  # only the cyclic collector frees it

    finalized = 0

    def __del__(self) -> None:
        fut, book = self.fut, self.book
        Finalizer.finalized += 1
        try:
            action = self.action
            if action == 0:
                try:
                    fut.set_result("from __del__")
                except futurekit.InvalidStateError:
                    pass
            elif action == 1:
                fut.cancel()
            elif action == 2:
                book.count_on(fut)
            elif action == 3:
                book.child_of(fut)
            elif action == 4:
                try:
                    fut.wait(timeout=0)
                except (futurekit.TimeoutError, futurekit.CancelledError):
                    pass
            else:
                collect_any([fut, Future()])
        except Exception as exc:  # an unraisable error would be lost: record it
            with book.lock:
                book.errors.append(f"__del__ action {self.action}: {exc!r}")


@pytest.mark.timeout(200)
def test_finalizers_using_futures_while_threads_complete_them() -> None:
    book = Book()
    Finalizer.finalized = 0
    futures: list[Future[Any]] = [Future() for _ in range(400)]
    stop = threading.Event()

    def garbage_maker(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            for _ in range(50):
                Finalizer(book, rng.choice(futures), rng.randrange(6))

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(8000):
            fut = rng.choice(futures)
            op = rng.randrange(6)
            if op == 0:
                try:
                    fut.set_result(op)
                except futurekit.InvalidStateError:
                    pass
            elif op == 1:
                fut.cancel()
            elif op == 2:
                book.count_on(fut)
            elif op == 3:
                book.child_of(fut)
            elif op == 4:
                try:
                    fut.wait(timeout=0.0002)
                except (futurekit.TimeoutError, futurekit.CancelledError):
                    pass
            else:
                collect_all([fut, rng.choice(futures)])
                Finalizer(book, rng.choice(futures), rng.randrange(6))

    def body() -> None:
        makers = [threading.Thread(target=garbage_maker, args=(i,)) for i in range(2)]
        workers = [threading.Thread(target=worker, args=(10 + i,)) for i in range(4)]
        for t in makers + workers:
            t.start()
        for t in workers:
            t.join(60)
            assert not t.is_alive(), "a worker deadlocked"
        stop.set()
        for t in makers:
            t.join(30)
            assert not t.is_alive(), "a garbage maker deadlocked"

    run_in_thread(body, timeout=190)
    for fut in futures:
        fut.cancel()
    gc.collect()  # finalizers still pending run now, on completed futures
    for fut in futures:
        assert fut.done()
    problems = book.check()
    assert len(book.calls) > 100 and len(book.children) > 100
    assert Finalizer.finalized > 10_000
    assert not problems, problems


@pytest.mark.timeout(150)
def test_finalizers_in_cycles_with_pending_futures_then_completed() -> None:
    """Finalizers register on pending futures; completing them later runs everything once."""
    book = Book()
    futures: list[Future[Any]] = [Future() for _ in range(50)]

    def body() -> None:
        rng = random.Random(7)
        for _ in range(20_000):
            Finalizer(book, rng.choice(futures), rng.choice((2, 3, 4, 5)))
        gc.collect()
        for i, fut in enumerate(futures):
            if i % 2:
                fut.set_result(i)
            else:
                fut.cancel()
        gc.collect()

    run_in_thread(body, timeout=140)
    assert not book.check(), book.check()


class _TouchyError(Exception):
    """An exception whose repr/str cancel another future (with callbacks of its own)."""

    def __init__(self, other: Future[Any]) -> None:
        super().__init__("touchy")
        self.other = other

    def __repr__(self) -> str:
        self.other.cancel()
        return "_TouchyError(touchy)"

    def __str__(self) -> str:
        self.other.cancel()
        return "touchy"


@pytest.mark.timeout(150)
def test_set_exception_whose_repr_cancels_another_future(caplog: pytest.LogCaptureFixture) -> None:
    book = Book()

    def body() -> None:
        for _ in range(40):
            other: Future[Any] = Future()
            book.count_on(other)
            book.child_of(other)
            fut: Future[Any] = Future()
            child = fut.then(lambda f: f.value())
            book.count_on(fut)
            fut.set_exception(_TouchyError(other))
            assert isinstance(child.exception(), futurekit.CallbackError)
            repr(fut)  # Future.__repr__ shows the error's repr
            assert other.cancelled()
            third: Future[Any] = Future()
            book.count_on(third)
            lost: Future[Any] = Future()
            lost.set_exception(_TouchyError(third))
            del lost  # never retrieved: the warning's repr cancels `third`
            gc.collect()
            assert third.cancelled()

    with caplog.at_level(logging.WARNING, logger="futurekit"):
        run_in_thread(body, timeout=140)
    assert not book.check(), book.check()


def _drops_last_reference_body() -> None:
    """300 completions whose callback drops the last reference to a cyclic finalizer."""
    book = Book()

    class Completer:
        def __init__(self, fut: Future[Any], other: Future[Any]) -> None:
            self.fut = fut
            self.other = other
            self.cycle = self

        def __del__(self) -> None:
            try:
                try:
                    self.fut.set_result("again")  # being dispatched: already complete
                except futurekit.InvalidStateError:
                    pass
                book.count_on(self.fut)  # completed: runs at once, nested in the dispatch
                book.child_of(self.fut)
                self.other.set_result("from __del__")
            except Exception as exc:
                book.errors.append(f"Completer.__del__: {exc!r}")

    def body() -> None:
        for i in range(300):
            fut: Future[Any] = Future()
            other: Future[Any] = Future()
            book.count_on(other)
            book.child_of(other)
            holder = [Completer(fut, other)]

            def drop(f: Future[Any], holder: list[Any] = holder, i: int = i) -> None:
                holder.clear()  # the last (non-cyclic) reference: a cycle left for gc
                if i % 2:
                    gc.collect()

            book.count_on(fut)
            fut.add_done_callback(drop)
            book.child_of(fut)
            book.count_on(fut)
            del holder
            fut.set_result(i)
            gc.collect()
            assert other.done()

    run_in_thread(body, timeout=100)
    assert not book.check(), book.check()
    assert len(book.calls) >= 300 * 4


@pytest.mark.timeout(150)
def test_callback_drops_last_reference_to_a_finalizer_that_uses_the_dispatched_future() -> None:
    """The finalizer completes, registers on and chains the future being dispatched.

    Its 450 full collections run in a fresh interpreter (a second each here, with
    torch loaded), with the same work and the same checks.
    """
    _in_a_fresh_interpreter(_drops_last_reference_body)


@pytest.mark.timeout(150)
def test_plain_finalizer_completing_the_dispatched_future_without_a_cycle() -> None:
    """The last reference dropped inside a callback: ``__del__`` runs right there."""
    results: list[str] = []

    class Dropper:
        def __init__(self, fut: Future[Any]) -> None:
            self.fut = fut

        def __del__(self) -> None:
            try:
                self.fut.set_result("x")
            except futurekit.InvalidStateError:
                results.append("already complete")
            calls: list[Any] = []
            self.fut.add_done_callback(calls.append)
            results.append(f"ran {len(calls)}")

    for _ in range(500):
        fut: Future[Any] = Future()
        box = [Dropper(fut)]
        fut.add_done_callback(lambda f, box=box: box.clear())
        fut.set_result(1)
    assert results == ["already complete", "ran 1"] * 500


class _Watcher:
    """Cyclic garbage whose finalizer notes whether the core's lock is held, then uses
    a future (which, the lock held by this very thread, would deadlock)."""

    __slots__ = ("cycle", "fut", "seen")

    def __init__(self, fut: Future[Any], seen: list[bool]) -> None:
        self.fut = fut
        self.seen = seen
        self.cycle = self

    def __del__(self) -> None:
        from futurekit.core import _completion

        held = _completion.lock.locked()
        self.seen.append(held)
        if not held:
            self.fut.set_result("from __del__")


def _no_collection_under_the_lock_body() -> None:
    """Every critical section of the core, entered with the 3-tuple free list empty."""
    seen: list[bool] = []
    noop: Any = lambda f: None  # noqa: E731

    def pending() -> Future[Any]:
        return Future()

    ops: list[Callable[[Future[Any]], object]] = [
        lambda f: f.add_done_callback(noop),
        lambda f: f.then(noop),
        lambda f: f.set_result(1),
        lambda f: f.cancel(),
        lambda f: (f.set_exception(KeyError("x")), f.exception()),
        lambda f: collect_all([f]),
        lambda f: collect_any([f, pending()]),
        lambda f: f.exception(timeout=0.0001),
    ]
    for i in range(8 * len(ops)):
        fut = pending()
        if i % 3 == 0:
            fut.add_done_callback(noop)
        op = ops[i % len(ops)]
        other = pending()
        keep = [(j, j, j) for j in range(3000)]  # no 3-tuple left in the free list
        gc.collect()
        for _ in range(i // len(ops)):  # shift the next collection by one allocation
            [].append(0)
        _Watcher(other, seen)  # garbage, collected at the next collection
        try:
            op(fut)
        except futurekit.TimeoutError:
            pass
        del keep
    gc.collect()
    assert len(seen) >= 8 * len(ops), len(seen)
    assert not any(seen), f"{sum(seen)} of {len(seen)} finalizers ran under the core's lock"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("pure", [True, False], ids=["pure", "compiled"])
def test_no_garbage_collection_starts_while_the_core_lock_is_held(pure: bool) -> None:
    """3.11 collects at a tuple allocation when the free list is empty; ``with lock:``
    exits through a call that packs its three arguments into a tuple, the lock still
    held, unless a spare one is there (see ``_completion._Lock``)."""
    if not pure and _accelerator.speedups is None:
        pytest.skip(_accelerator.status)
    _in_a_fresh_interpreter(_no_collection_under_the_lock_body, pure=pure)
