"""wait/result/exception with timeouts."""

from __future__ import annotations

import builtins
import threading

import pytest

import futurekit
from futurekit import Future

from .extras_helpers import later, run_in_thread


def test_timeout_error_is_builtin_subclass() -> None:
    assert issubclass(futurekit.TimeoutError, builtins.TimeoutError)
    assert futurekit.TimeoutError is not builtins.TimeoutError


@pytest.mark.parametrize("method", ["wait", "result", "exception"])
def test_zero_polls_pending(method: str) -> None:
    fut: Future[int] = Future()
    with pytest.raises(futurekit.TimeoutError):
        getattr(fut, method)(0)
    with pytest.raises(builtins.TimeoutError):  # catchable as the built-in
        getattr(fut, method)(0.0)
    assert not fut.done()


def test_zero_polls_completed() -> None:
    fut: Future[int] = Future()
    fut.set_result(5)
    assert fut.wait(0) == 5
    assert fut.result(0) == 5
    assert fut.exception(0) is None


def test_zero_polls_failed() -> None:
    fut: Future[int] = Future()
    err = ValueError("boom")
    fut.set_exception(err)
    with pytest.raises(ValueError) as info:
        fut.wait(0)
    assert info.value is err
    assert fut.exception(0) is err
    with pytest.raises(ValueError):
        fut.result(timeout=0)


@pytest.mark.parametrize("method", ["wait", "result", "exception"])
def test_timeout_then_future_still_completes(method: str) -> None:
    fut: Future[str] = Future()
    with pytest.raises(futurekit.TimeoutError):
        getattr(fut, method)(0.01)
    assert not fut.done()
    fut.set_result("late")
    assert fut.wait() == "late"
    assert fut.result(timeout=1) == "late"
    assert fut.exception(timeout=1) is None


def test_timed_out_waiter_does_not_block_other_waiters() -> None:
    fut: Future[int] = Future()
    with pytest.raises(futurekit.TimeoutError):
        fut.wait(0.01)
    got: list[int] = []
    barrier = threading.Event()

    def waiter() -> None:
        barrier.set()
        got.append(fut.wait(timeout=10))

    threads = [threading.Thread(target=waiter, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    barrier.wait(5)
    fut.set_result(7)
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    assert got == [7, 7, 7, 7]


def test_completed_from_thread_within_timeout() -> None:
    fut: Future[int] = Future()
    later(0.02, lambda: fut.set_result(42))
    assert run_in_thread(lambda: fut.wait(timeout=10)) == 42


def test_result_and_exception_from_thread() -> None:
    fut: Future[int] = Future()
    err = KeyError("k")
    later(0.02, lambda: fut.set_exception(err))
    assert run_in_thread(lambda: fut.exception(timeout=10)) is err
    with pytest.raises(KeyError):
        fut.result(timeout=10)


@pytest.mark.parametrize("bad", [-1, -0.001, float("-inf"), float("nan")])
@pytest.mark.parametrize("method", ["wait", "result", "exception"])
def test_negative_timeout_is_value_error(method: str, bad: float) -> None:
    fut: Future[int] = Future()
    with pytest.raises(ValueError, match="timeout"):
        getattr(fut, method)(bad)
    fut.set_result(1)  # validation happens even when complete
    with pytest.raises(ValueError, match="timeout"):
        getattr(fut, method)(bad)


@pytest.mark.parametrize("bad", ["1", b"1", [1], object(), True, 1j])
@pytest.mark.parametrize("method", ["wait", "result", "exception"])
def test_non_numeric_timeout_is_type_error(method: str, bad: object) -> None:
    fut: Future[int] = Future()
    with pytest.raises(TypeError, match="timeout"):
        getattr(fut, method)(bad)


def test_keyword_timeout_and_none() -> None:
    fut: Future[int] = Future()
    fut.set_result(3)
    assert fut.wait(timeout=None) == 3
    assert fut.result(timeout=None) == 3
    assert fut.exception(timeout=None) is None


def test_huge_timeout_accepted() -> None:
    fut: Future[int] = Future()
    later(0.01, lambda: fut.set_result(9))
    assert run_in_thread(lambda: fut.wait(timeout=1e12)) == 9
    assert fut.wait(float("inf")) == 9


def test_duck_types_as_concurrent_future() -> None:
    import concurrent.futures as cf

    fut: Future[int] = Future()
    assert fut.running() is False
    later(0.01, lambda: fut.set_result(1))
    # cf.wait/as_completed need real cf futures; code that only calls result()/
    # exception()/done()/cancel()/add_done_callback works unchanged:
    seen: list[object] = []
    fut.add_done_callback(lambda f: seen.append(f.result()))
    assert fut.result(timeout=10) == 1
    assert seen == [1]
    assert isinstance(futurekit.InvalidStateError("x"), cf.InvalidStateError)
