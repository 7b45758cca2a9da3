"""torch's own ``test/test_futures.py`` (22 tests, reference §4.1) written for futurekit.

Each test keeps the scenario and the assertion of the torch test of the same name.
The CPU path of futurekit never inspects values, so plain Python numbers stand in
for ``torch.ones(...)`` except where the test is about tensors themselves.
"""

from __future__ import annotations

import io
import pickle
import threading
import time

import pytest

from futurekit import Future, collect_all, wait_all

pytestmark = pytest.mark.timeout(30)


def add_one(fut: Future[int]) -> int:
    return fut.wait() + 1


def test_set_exception() -> None:
    error_msg = "Intentional Value Error"
    value_error = ValueError(error_msg)

    f: Future[int] = Future()
    f.set_exception(value_error)
    with pytest.raises(ValueError, match="Intentional"):
        f.wait()

    f = Future()
    f.set_exception(value_error)
    with pytest.raises(ValueError, match="Intentional"):
        f.value()

    def cb(fut: Future[int]) -> int:
        return fut.value()

    f = Future()
    f.set_exception(value_error)
    with pytest.raises(RuntimeError, match="Got the following error"):
        f.then(cb).wait()


def test_set_exception_multithreading() -> None:
    f: Future[int] = Future()
    error_msg = "Intentional Value Error"
    value_error = ValueError(error_msg)
    errors: list[BaseException] = []

    def wait_future(fut: Future[int]) -> None:
        try:
            fut.wait()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=wait_future, args=(f,))
    t.start()
    f.set_exception(value_error)
    t.join(10)
    assert not t.is_alive()
    assert len(errors) == 1 and errors[0] is value_error

    def cb(fut: Future[int]) -> int:
        return fut.value()

    f = Future()
    child_errors: list[BaseException] = []

    def then_future(fut: Future[int]) -> None:
        fut2 = fut.then(cb)
        try:
            fut2.wait()
        except BaseException as exc:
            child_errors.append(exc)

    t = threading.Thread(target=then_future, args=(f,))
    t.start()
    f.set_exception(value_error)
    t.join(10)
    assert not t.is_alive()
    assert len(child_errors) == 1
    assert isinstance(child_errors[0], RuntimeError)
    assert "Got the following error" in str(child_errors[0])


def test_done() -> None:
    f: Future[list[list[float]]] = Future()
    assert not f.done()
    f.set_result([[1.0, 1.0], [1.0, 1.0]])
    assert f.done()


def test_done_exception() -> None:
    err_msg = "Intentional Value Error"

    def raise_exception(unused_future: Future[int]) -> None:
        raise RuntimeError(err_msg)

    f1: Future[int] = Future()
    assert not f1.done()
    f1.set_result(1)
    assert f1.done()

    f2 = f1.then(raise_exception)
    assert f2.done()
    with pytest.raises(RuntimeError, match=err_msg):
        f2.wait()


def test_wait() -> None:
    f: Future[list[int]] = Future()
    value = [1, 1, 1, 1]
    f.set_result(value)
    assert f.wait() is value


def test_wait_multi_thread() -> None:
    def slow_set_future(fut: Future[list[int]], value: list[int]) -> None:
        time.sleep(0.5)
        fut.set_result(value)

    f: Future[list[int]] = Future()
    value = [1, 1]
    t = threading.Thread(target=slow_set_future, args=(f, value))
    t.start()
    assert f.wait() is value
    t.join(10)


def test_mark_future_twice() -> None:
    fut: Future[int] = Future()
    fut.set_result(1)
    with pytest.raises(RuntimeError, match="Future can only be marked completed once"):
        fut.set_result(1)


def test_pickle_future() -> None:
    fut: Future[int] = Future()
    errMsg = "Can not pickle futurekit.Future"
    with pytest.raises(RuntimeError, match=errMsg):
        pickle.dumps(fut)
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match=errMsg):
        torch.save(fut, io.BytesIO())


def test_then() -> None:
    fut: Future[int] = Future()
    then_fut = fut.then(lambda x: x.wait() + 1)
    fut.set_result(1)
    assert fut.wait() == 1
    assert then_fut.wait() == 2


def test_chained_then() -> None:
    fut: Future[int] = Future()
    futs = []
    last_fut = fut
    for _ in range(20):
        last_fut = last_fut.then(add_one)
        futs.append(last_fut)

    fut.set_result(1)
    for i in range(len(futs)):
        assert futs[i].wait() == i + 2


def _test_error(cb: object, errMsg: str) -> None:
    fut: Future[int] = Future()
    then_fut = fut.then(cb)  # type: ignore[arg-type]
    fut.set_result(5)
    assert fut.wait() == 5
    with pytest.raises(RuntimeError, match=errMsg):
        then_fut.wait()


def test_then_wrong_arg() -> None:
    def wrong_arg(tensor: int) -> int:
        return tensor + 1  # type: ignore[operator]

    _test_error(wrong_arg, "unsupported operand type.*Future.*int")


def test_then_no_arg() -> None:
    def no_arg() -> int:
        return 1

    _test_error(no_arg, "takes 0 positional arguments but 1 was given")


def test_then_raise() -> None:
    def raise_value_error(fut: Future[int]) -> None:
        raise ValueError("Expected error")

    _test_error(raise_value_error, "Expected error")


def test_add_done_callback_simple() -> None:
    callback_result = False

    def callback(fut: Future[int]) -> None:
        nonlocal callback_result
        fut.wait()
        callback_result = True

    fut: Future[int] = Future()
    fut.add_done_callback(callback)
    assert not callback_result
    fut.set_result(1)
    assert fut.wait() == 1
    assert callback_result


def test_add_done_callback_maintains_callback_order() -> None:
    callback_result = 0

    def callback_set1(fut: Future[int]) -> None:
        nonlocal callback_result
        fut.wait()
        callback_result = 1

    def callback_set2(fut: Future[int]) -> None:
        nonlocal callback_result
        fut.wait()
        callback_result = 2

    fut: Future[int] = Future()
    fut.add_done_callback(callback_set1)
    fut.add_done_callback(callback_set2)
    fut.set_result(1)
    assert fut.wait() == 1
    # The last callback to run sets the value.
    assert callback_result == 2


def _test_add_done_callback_error_ignored(cb: object) -> None:
    fut: Future[int] = Future()
    fut.add_done_callback(cb)  # type: ignore[arg-type]
    fut.set_result(5)
    # error of the callback is ignored, the future keeps its value
    assert fut.wait() == 5


def test_add_done_callback_error_is_ignored() -> None:
    def raise_value_error(fut: Future[int]) -> None:
        raise ValueError("Expected error")

    _test_add_done_callback_error_ignored(raise_value_error)


def test_add_done_callback_no_arg_error_is_ignored() -> None:
    def no_arg() -> int:
        return 1

    _test_add_done_callback_error_ignored(no_arg)


def test_interleaving_then_and_add_done_callback_maintains_callback_order() -> None:
    callback_result = 0

    def callback_set1(fut: Future[int]) -> None:
        nonlocal callback_result
        fut.wait()
        callback_result = 1

    def callback_set2(fut: Future[int]) -> None:
        nonlocal callback_result
        fut.wait()
        callback_result = 2

    def callback_then(fut: Future[int]) -> int:
        nonlocal callback_result
        return fut.wait() + callback_result

    fut: Future[int] = Future()
    fut.add_done_callback(callback_set1)
    then_fut = fut.then(callback_then)
    fut.add_done_callback(callback_set2)
    fut.set_result(1)
    assert fut.wait() == 1
    # then_fut's callback ran between the two add_done_callback callbacks
    assert then_fut.wait() == 2
    assert callback_result == 2


def test_interleaving_then_and_add_done_callback_propagates_error() -> None:
    def raise_value_error(fut: Future[int]) -> None:
        raise ValueError("Expected error")

    fut: Future[int] = Future()
    then_fut = fut.then(raise_value_error)
    fut.add_done_callback(raise_value_error)
    fut.set_result(5)
    # error in add_done_callback's callback is ignored
    assert fut.wait() == 5
    # error in then's callback is surfaced on the child
    with pytest.raises(RuntimeError, match="Expected error"):
        then_fut.wait()


def test_collect_all() -> None:
    fut1: Future[int] = Future()
    fut2: Future[int] = Future()
    fut_all = collect_all([fut1, fut2])

    def slow_in_thread(fut: Future[int], value: int) -> None:
        time.sleep(0.1)
        fut.set_result(value)

    t = threading.Thread(target=slow_in_thread, args=(fut1, 1))
    fut2.set_result(2)
    t.start()

    res = fut_all.wait()
    assert res[0].wait() == 1
    assert res[1].wait() == 2
    t.join(10)


def test_wait_all() -> None:
    fut1: Future[int] = Future()
    fut2: Future[int] = Future()

    fut1.set_result(1)
    fut2.set_result(2)
    res = wait_all([fut1, fut2])
    assert res == [1, 2]

    def raise_in_fut(fut: Future[int]) -> None:
        raise ValueError("Expected error")

    fut3 = fut1.then(raise_in_fut)
    with pytest.raises(RuntimeError, match="Expected error"):
        wait_all([fut1, fut3])


def test_wait_none() -> None:
    fut1: Future[int] = Future()
    # torch also tests torch.jit.wait(None); futurekit has no jit.
    with pytest.raises(RuntimeError, match="Future can't be None"):
        wait_all((None,))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="Future can't be None"):
        collect_all((fut1, None))  # type: ignore[arg-type]
