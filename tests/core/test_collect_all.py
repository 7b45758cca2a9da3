"""collect_all / wait_all: torch semantics plus early exit on any failure."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import pytest

from futurekit import CallbackError, Future, InvalidFutureError, collect_all, wait_all

pytestmark = pytest.mark.timeout(30)


def futures(n: int) -> list[Future[Any]]:
    return [Future() for _ in range(n)]


@pytest.mark.parametrize("container", [list, tuple, deque], ids=["list", "tuple", "deque"])
def test_accepts_any_sequence(container: Any) -> None:
    futs = futures(3)
    for i, f in enumerate(futs):
        f.set_result(i)
    res = collect_all(container(futs)).wait()
    assert type(res) is list
    assert len(res) == 3 and all(r is f for r, f in zip(res, futs, strict=True))
    assert wait_all(container(futs)) == [0, 1, 2]


def test_returns_the_same_futures_in_input_order() -> None:
    futs = futures(5)
    all_fut = collect_all(futs)
    assert type(all_fut) is Future and all_fut.devices == ()
    for i in (4, 1, 3, 0):
        futs[i].set_result(i)
        assert not all_fut.done()
    futs[2].set_result(2)
    assert all_fut.done()
    res = all_fut.value()
    assert [id(r) for r in res] == [id(f) for f in futs]
    assert [r.value() for r in res] == [0, 1, 2, 3, 4]


def test_empty_input_is_already_complete() -> None:
    all_fut = collect_all([])
    assert all_fut.done()
    assert all_fut.value() == []
    assert collect_all(()).wait() == []
    assert wait_all([]) == []


def test_duplicates_are_allowed() -> None:
    f: Future[int] = Future()
    all_fut = collect_all([f, f])
    f.set_result(1)
    res = all_fut.wait()
    assert res[0] is f and res[1] is f
    assert wait_all([f, f]) == [1, 1]


@pytest.mark.parametrize("where", [0, 1, 2])
def test_none_element(where: int) -> None:
    futs: list[Any] = futures(3)
    futs[where] = None
    with pytest.raises(RuntimeError) as info:
        collect_all(futs)
    assert str(info.value) == "Future can't be None"
    assert isinstance(info.value, InvalidFutureError)
    with pytest.raises(RuntimeError, match="Future can't be None"):
        wait_all(futs)


@pytest.mark.parametrize("bad", [1, "f", object(), [Future()]], ids=["int", "str", "obj", "list"])
def test_non_future_element(bad: Any) -> None:
    with pytest.raises(TypeError, match=r"futurekit\.Future") as info:
        collect_all([Future(), bad])
    assert "index 1" in str(info.value)
    with pytest.raises(TypeError):
        wait_all([bad])


def test_torch_future_element_suggests_from_torch() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="from_torch"):
        collect_all([torch.futures.Future()])


@pytest.mark.parametrize("bad", [None, 5, "abc", Future()], ids=["None", "int", "str", "future"])
def test_non_sequence_argument(bad: Any) -> None:
    with pytest.raises(TypeError, match="collect_all"):
        collect_all(bad)


def test_early_exit_on_set_exception() -> None:
    pending, bad, late = futures(3)
    all_fut = collect_all([pending, bad, late])
    e = ValueError("first")
    bad.set_exception(e)
    assert all_fut.done()
    with pytest.raises(ValueError) as info:
        all_fut.wait()
    assert info.value is e
    late.set_exception(KeyError("second"))  # later errors are ignored
    with pytest.raises(ValueError):
        all_fut.wait()
    with pytest.raises(KeyError):
        late.wait()


def test_early_exit_on_callback_error() -> None:
    pending: Future[int] = Future()
    parent: Future[int] = Future()
    bad = parent.then(lambda x: 1 // 0)
    all_fut = collect_all([pending, bad])
    parent.set_result(1)
    assert all_fut.done() and not pending.done()
    with pytest.raises(CallbackError, match="ZeroDivisionError"):
        all_fut.wait()


def test_first_error_by_completion_time_wins() -> None:
    a, b = futures(2)
    all_fut = collect_all([a, b])
    eb, ea = KeyError("b"), ValueError("a")
    b.set_exception(eb)
    a.set_exception(ea)
    with pytest.raises(KeyError) as info:
        all_fut.wait()
    assert info.value is eb


def test_already_failed_input() -> None:
    a, b = futures(2)
    e = ValueError("x")
    b.set_exception(e)
    with pytest.raises(ValueError) as info:
        collect_all([a, b]).wait()
    assert info.value is e


def test_wait_all_values_in_input_order_from_threads() -> None:
    futs = futures(6)

    def complete(i: int) -> None:
        futs[i].set_result(i * i)

    threads = [threading.Thread(target=complete, args=(i,)) for i in reversed(range(6))]
    for t in threads:
        t.start()
    assert wait_all(futs) == [0, 1, 4, 9, 16, 25]
    for t in threads:
        t.join(10)


def test_wait_all_raises_first_error() -> None:
    a, b, c = futures(3)
    a.set_result(1)
    e = ValueError("Expected error")
    b.set_exception(e)
    with pytest.raises(ValueError) as info:
        wait_all([a, b, c])  # c is still pending: early exit
    assert info.value is e
    assert not c.done()


def test_wait_all_with_failing_then_child() -> None:
    f: Future[int] = Future()
    f.set_result(1)
    child = f.then(lambda x: (_ for _ in ()).throw(ValueError("Expected error")))
    with pytest.raises(RuntimeError, match="Expected error"):
        wait_all([f, child])


def test_collect_all_result_callbacks_run_once() -> None:
    futs = futures(3)
    calls: list[int] = []
    all_fut = collect_all(futs)
    all_fut.add_done_callback(lambda x: calls.append(len(x.value())))
    for f in futs:
        f.set_result(0)
    assert calls == [3]
    assert isinstance(all_fut.then(lambda x: x.value()).value(), list)


def test_collect_all_of_cancelled_future_fails() -> None:
    a, b = futures(2)
    all_fut = collect_all([a, b])
    assert a.cancel()
    assert all_fut.done()
    with pytest.raises(Exception, match="cancelled"):
        all_fut.wait()


def test_nested_collect_all() -> None:
    a, b, c = futures(3)
    outer = collect_all([collect_all([a, b]), c])
    a.set_result(1)
    c.set_result(3)
    assert not outer.done()
    b.set_result(2)
    inner, c_res = outer.wait()
    assert [f.value() for f in inner.value()] == [1, 2] and c_res.value() == 3
