"""collect_any, wait_any and as_completed."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import futurekit
from futurekit import Future

from .extras_helpers import later, run_in_thread

COMBINATORS = [
    ("collect_any", lambda fs: futurekit.collect_any(fs)),
    ("wait_any", lambda fs: futurekit.wait_any(fs, timeout=0)),
    ("as_completed", lambda fs: list(futurekit.as_completed(fs, timeout=0))),
    ("collect_all", lambda fs: futurekit.collect_all(fs)),
    ("wait_all", lambda fs: futurekit.wait_all(fs)),  # its errors name wait_all, not collect_all
]


# -- validation (same as collect_all) -----------------------------------------------
@pytest.mark.parametrize(("name", "call"), COMBINATORS)
def test_none_element(name: str, call: Any) -> None:
    with pytest.raises(futurekit.InvalidFutureError, match="Future can't be None"):
        call([Future(), None])
    with pytest.raises(RuntimeError):  # torch's type for None
        call([None])


@pytest.mark.parametrize(("name", "call"), COMBINATORS)
def test_non_future_element(name: str, call: Any) -> None:
    with pytest.raises(futurekit.InvalidFutureError, match=rf"^{name}\(\) .* index 1"):
        call([Future(), 3])
    with pytest.raises(TypeError, match="from_concurrent"):
        import concurrent.futures as cf

        call([cf.Future()])


@pytest.mark.parametrize(("name", "call"), COMBINATORS)
@pytest.mark.parametrize("bad", [None, 5, "ab", Future()])
def test_not_a_sequence(name: str, call: Any, bad: Any) -> None:
    with pytest.raises(TypeError, match=name):
        call(bad)


@pytest.mark.parametrize(("name", "call"), COMBINATORS[:3])
def test_empty_any_is_value_error(name: str, call: Any) -> None:
    if name == "as_completed":
        assert call([]) == []  # nothing to yield
        return
    with pytest.raises(ValueError, match="at least one"):
        call([])


@pytest.mark.parametrize("bad", [-1, float("nan")])
def test_bad_timeouts(bad: float) -> None:
    fut: Future[int] = Future()
    with pytest.raises(ValueError):
        futurekit.wait_any([fut], timeout=bad)
    with pytest.raises(ValueError):
        futurekit.as_completed([fut], timeout=bad)  # raised at the call, not on iteration
    with pytest.raises(TypeError):
        futurekit.as_completed([fut], timeout="1")  # type: ignore[arg-type]


# -- collect_any ------------------------------------------------------------------
def test_collect_any_returns_first_same_object() -> None:
    a: Future[int] = Future()
    b: Future[int] = Future()
    c: Future[int] = Future()
    first = futurekit.collect_any([a, b, c])
    assert not first.done()
    b.set_result(2)
    assert first.done()
    assert first.wait() is b
    a.set_result(1)
    assert first.wait() is b


def test_collect_any_already_complete_and_generator() -> None:
    a: Future[int] = Future()
    b: Future[int] = Future()
    b.set_result(1)
    assert futurekit.collect_any(x for x in (a, b)).wait() is b


def test_collect_any_failed_first_is_still_a_value() -> None:
    a: Future[int] = Future()
    b: Future[int] = Future()
    first = futurekit.collect_any([a, b])
    err = ValueError("x")
    a.set_exception(err)
    assert first.wait() is a  # the result is the future, errors stay inside it
    assert first.wait().exception() is err


def test_collect_any_threads_exactly_one_winner() -> None:
    for _ in range(50):
        futs: list[Future[int]] = [Future() for _ in range(4)]
        first = futurekit.collect_any(futs)
        go = threading.Barrier(4)

        def complete(i: int, futs: list[Future[int]] = futs, go: Any = go) -> None:
            go.wait(5)
            futs[i].set_result(i)

        workers = [threading.Thread(target=complete, args=(i,), daemon=True) for i in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(10)
            assert not w.is_alive()
        winner = first.wait(timeout=10)
        assert winner in futs
        assert winner.wait() == futs.index(winner)


# -- wait_any -----------------------------------------------------------------------
def test_wait_any_value_and_error() -> None:
    a: Future[int] = Future()
    b: Future[int] = Future()
    later(0.01, lambda: b.set_result(7))
    assert run_in_thread(lambda: futurekit.wait_any([a, b], timeout=10)) == 7

    c: Future[int] = Future()
    err = KeyError("k")
    c.set_exception(err)
    with pytest.raises(KeyError) as info:
        futurekit.wait_any([a, c])
    assert info.value is err


def test_wait_any_timeout() -> None:
    a: Future[int] = Future()
    with pytest.raises(futurekit.TimeoutError):
        futurekit.wait_any([a], timeout=0.01)
    a.set_result(1)
    assert futurekit.wait_any([a], timeout=0) == 1


# -- as_completed ---------------------------------------------------------------------
def test_as_completed_order() -> None:
    futs: list[Future[int]] = [Future() for _ in range(3)]
    futs[1].set_result(1)
    order: list[Future[int]] = []
    gen = futurekit.as_completed(futs, timeout=10)
    order.append(next(gen))
    futs[2].set_result(2)
    order.append(next(gen))
    later(0.01, lambda: futs[0].set_result(0))
    order.append(next(gen))
    with pytest.raises(StopIteration):
        next(gen)
    assert order == [futs[1], futs[2], futs[0]]
    assert all(a is b for a, b in zip(order, [futs[1], futs[2], futs[0]], strict=True))


def test_as_completed_duplicates_once_and_failures_yielded() -> None:
    a: Future[int] = Future()
    b: Future[int] = Future()
    a.set_exception(ValueError())
    b.set_result(1)
    got = list(futurekit.as_completed([a, b, a, b]))
    assert got == [a, b]


def test_as_completed_from_threads() -> None:
    futs: list[Future[int]] = [Future() for _ in range(8)]

    def complete_all() -> None:
        for i in reversed(range(8)):
            futs[i].set_result(i)

    later(0.01, complete_all)
    values = run_in_thread(lambda: [f.wait() for f in futurekit.as_completed(futs, timeout=10)])
    assert values == list(reversed(range(8)))


def test_as_completed_timeout() -> None:
    a: Future[int] = Future()
    b: Future[int] = Future()
    a.set_result(1)
    gen = futurekit.as_completed([a, b], timeout=0.05)
    assert next(gen) is a
    with pytest.raises(futurekit.TimeoutError):
        next(gen)
    assert not b.done()  # untouched
    b.set_result(2)


def test_as_completed_timeout_counts_from_the_call() -> None:
    import time

    a: Future[int] = Future()
    gen = futurekit.as_completed([a], timeout=0.05)
    time.sleep(0.1)  # the deadline passed before iteration started
    with pytest.raises(futurekit.TimeoutError):
        next(gen)
