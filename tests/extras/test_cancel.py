"""cancel() and cancelled(): pending, complete, callbacks, children, races."""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections.abc import Callable

import pytest

import futurekit
from futurekit import Future


def test_cancelled_error_is_concurrent_subclass() -> None:
    assert issubclass(futurekit.CancelledError, cf.CancelledError)


def test_cancel_pending() -> None:
    fut: Future[int] = Future()
    assert not fut.cancelled()
    assert fut.cancel() is True
    assert fut.cancelled()
    assert fut.done()
    assert fut.cancel() is False  # only once
    with pytest.raises(futurekit.CancelledError):
        fut.wait()
    with pytest.raises(cf.CancelledError):
        fut.result(timeout=0)
    with pytest.raises(futurekit.CancelledError):
        fut.exception()
    with pytest.raises(futurekit.CancelledError):
        fut.value()
    assert "cancelled" in repr(fut)


def test_cancel_complete_changes_nothing() -> None:
    fut: Future[int] = Future()
    fut.set_result(1)
    assert fut.cancel() is False
    assert not fut.cancelled()
    assert fut.wait() == 1

    failed: Future[int] = Future()
    err = ValueError("x")
    failed.set_exception(err)
    assert failed.cancel() is False
    assert not failed.cancelled()
    assert failed.exception() is err


def test_complete_after_cancel_raises_and_keeps_cancellation() -> None:
    fut: Future[int] = Future()
    fut.cancel()
    with pytest.raises(futurekit.InvalidStateError):
        fut.set_result(1)
    with pytest.raises(RuntimeError):
        fut.set_exception(ValueError())
    assert fut.cancelled()


def test_cancel_runs_callbacks_in_order() -> None:
    fut: Future[int] = Future()
    order: list[str] = []
    fut.add_done_callback(lambda f: order.append(f"a:{f.cancelled()}"))
    fut.then(lambda f: order.append("then"))
    fut.add_done_callback(lambda f: order.append("b"))
    fut.cancel()
    assert order == ["a:True", "then", "b"]
    late: list[bool] = []
    fut.add_done_callback(lambda f: late.append(f.cancelled()))
    assert late == [True]


def test_cancel_wakes_waiters() -> None:
    fut: Future[int] = Future()
    errors: list[BaseException] = []
    started = threading.Barrier(4)

    def waiter() -> None:
        started.wait(5)
        try:
            fut.wait(timeout=10)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=waiter, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    started.wait(5)
    fut.cancel()
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    assert len(errors) == 3
    assert all(isinstance(e, futurekit.CancelledError) for e in errors)


def test_children_reading_a_cancelled_future_fail() -> None:
    fut: Future[int] = Future()
    child = fut.then(lambda f: f.wait() + 1)
    grandchild = child.then(lambda f: f.value() * 2)
    ignoring = fut.then(lambda f: "did not read")
    fut.cancel()
    with pytest.raises(futurekit.CallbackError) as info:
        child.wait()
    assert isinstance(info.value.__cause__, futurekit.CancelledError)
    assert not child.cancelled()  # the child failed; it was not cancelled itself
    with pytest.raises(futurekit.CallbackError):
        grandchild.wait()
    assert ignoring.wait() == "did not read"


def test_cancel_propagates_through_collect_all() -> None:
    a: Future[int] = Future()
    b: Future[int] = Future()
    both = futurekit.collect_all([a, b])
    a.cancel()
    assert both.done()
    with pytest.raises(futurekit.CancelledError):
        both.wait()
    with pytest.raises(futurekit.CancelledError):
        futurekit.wait_all([a, b])


def test_cancel_a_then_child() -> None:
    fut: Future[int] = Future()
    ran: list[int] = []
    child = fut.then(lambda f: ran.append(f.wait()))
    assert child.cancel()
    fut.set_result(3)  # the callback still runs; its result is dropped
    assert ran == [3]
    assert child.cancelled()


def test_cancel_from_callback_of_another_future() -> None:
    trigger: Future[None] = Future()
    target: Future[int] = Future()
    trigger.add_done_callback(lambda _: target.cancel())
    trigger.set_result(None)
    assert target.cancelled()


def _race_once() -> None:
    fut: Future[int] = Future()
    outcomes: list[str] = []
    lock = threading.Lock()
    go = threading.Barrier(4)

    def canceller() -> None:
        go.wait(5)
        won = fut.cancel()
        with lock:
            outcomes.append("cancel" if won else "lost")

    def setter(n: int) -> None:
        go.wait(5)
        try:
            fut.set_result(n)
        except futurekit.InvalidStateError:
            with lock:
                outcomes.append("lost")
            return
        with lock:
            outcomes.append(f"set{n}")

    workers = [
        threading.Thread(target=canceller, daemon=True),
        threading.Thread(target=canceller, daemon=True),
        threading.Thread(target=setter, args=(1,), daemon=True),
        threading.Thread(target=setter, args=(2,), daemon=True),
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(10)
        assert not w.is_alive()
    winners = [o for o in outcomes if o != "lost"]
    assert len(outcomes) == 4
    assert len(winners) == 1, outcomes
    if winners[0] == "cancel":
        assert fut.cancelled()
        with pytest.raises(futurekit.CancelledError):
            fut.wait(0)
    else:
        assert fut.wait(0) == int(winners[0][3:])
        assert not fut.cancelled()


@pytest.mark.timeout(60)
def test_race_cancel_vs_set_result_exactly_one_wins() -> None:
    for _ in range(200):
        _race_once()


def _callbacks_once() -> None:
    fut: Future[int] = Future()
    calls: list[bool] = []
    fut.add_done_callback(lambda f: calls.append(f.cancelled()))
    go = threading.Barrier(3)

    def act(fn: Callable[[], object]) -> None:
        go.wait(5)
        try:
            fn()
        except futurekit.InvalidStateError:
            pass

    actions: list[Callable[[], object]] = [
        fut.cancel,
        lambda: fut.set_result(1),
        lambda: fut.set_exception(ValueError()),
    ]
    workers = [threading.Thread(target=act, args=(a,), daemon=True) for a in actions]
    for w in workers:
        w.start()
    for w in workers:
        w.join(10)
        assert not w.is_alive()
    assert calls == [fut.cancelled()]  # exactly one completion ran the callback
    if not fut.cancelled():
        fut.exception(0)


@pytest.mark.timeout(60)
def test_race_cancel_callbacks_run_once() -> None:
    for _ in range(100):
        _callbacks_once()
