"""The Future's API: construction, completion, errors, callbacks, repr, pickling."""

from __future__ import annotations

import copy
import logging
import pickle
import threading
from typing import Any

import pytest

import futurekit
from futurekit import (
    CallbackError,
    Future,
    InvalidStateError,
    NotAnExceptionError,
)

pytestmark = pytest.mark.timeout(30)

ALREADY = (
    "Attempting to mark a completed Future as complete again. "
    "Note that a Future can only be marked completed once."
)


def test_public_api() -> None:
    for name in ("Future", "collect_all", "wait_all", "Device", "CallbackError"):
        assert name in futurekit.__all__
        assert getattr(futurekit, name).__module__ == "futurekit"
    for method in (
        "set_result",
        "set_exception",
        "done",
        "value",
        "wait",
        "then",
        "add_done_callback",
    ):
        assert callable(getattr(Future, method))


def test_generic_subscription() -> None:
    f = Future[int]()
    assert type(f) is Future
    f.set_result(3)
    assert f.wait() == 3
    assert Future[list[str]] is not None


def test_new_future_is_pending() -> None:
    f: Future[int] = Future()
    assert not f.done()
    assert f.devices == ()


def test_set_result_and_wait_return_the_same_object() -> None:
    obj = object()
    f: Future[object] = Future()
    assert f.set_result(obj) is None
    assert f.done()
    assert f.wait() is obj and f.value() is obj and f.wait() is obj


def test_set_result_none_is_a_value() -> None:
    f: Future[None] = Future()
    f.set_result(None)
    assert f.done() and f.wait() is None and f.value() is None


def test_double_set_result_keeps_first() -> None:
    first, second = object(), object()
    f: Future[object] = Future()
    f.set_result(first)
    with pytest.raises(RuntimeError) as info:
        f.set_result(second)
    assert str(info.value) == ALREADY
    assert isinstance(info.value, InvalidStateError)
    assert f.wait() is first


def test_set_exception_after_set_result_keeps_result() -> None:
    f: Future[int] = Future()
    f.set_result(1)
    with pytest.raises(RuntimeError, match="Future can only be marked completed once"):
        f.set_exception(ValueError("late"))
    assert f.wait() == 1 and f.value() == 1


def test_set_result_after_set_exception_keeps_error() -> None:
    e = ValueError("first")
    f: Future[int] = Future()
    f.set_exception(e)
    with pytest.raises(RuntimeError, match="Future can only be marked completed once"):
        f.set_result(1)
    with pytest.raises(RuntimeError, match="Future can only be marked completed once"):
        f.set_exception(KeyError("second"))
    with pytest.raises(ValueError) as info:
        f.wait()
    assert info.value is e


def test_wait_and_value_raise_the_exception_itself() -> None:
    e = KeyError("k")
    f: Future[int] = Future()
    f.set_exception(e)
    for getter in (f.wait, f.value, f.wait):
        with pytest.raises(KeyError) as info:
            getter()
        assert info.value is e


@pytest.mark.parametrize(
    "bad",
    ["oops", 3, None, ValueError, KeyboardInterrupt(), SystemExit(), GeneratorExit()],
    ids=repr,
)
def test_set_exception_type_check(bad: Any) -> None:
    f: Future[int] = Future()
    with pytest.raises(TypeError) as info:
        f.set_exception(bad)
    assert isinstance(info.value, NotAnExceptionError)
    assert isinstance(info.value, AssertionError)  # torch's type
    assert str(info.value) == f"{bad} is of type {type(bad)}, not an Exception."
    assert not f.done()
    f.set_result(1)  # still usable
    assert f.wait() == 1


def test_value_before_completion_is_a_clean_error() -> None:
    f: Future[int] = Future()
    with pytest.raises(RuntimeError) as info:
        f.value()
    assert isinstance(info.value, InvalidStateError)
    assert "value()" in str(info.value) and "wait()" in str(info.value)
    assert "INTERNAL ASSERT" not in str(info.value)
    assert not f.done()


def test_then_returns_a_full_future_with_parents_devices() -> None:
    f: Future[int] = Future()
    child = f.then(lambda x: x.value() * 2)
    assert type(child) is Future
    assert child.devices == f.devices == ()
    assert not child.done()
    f.set_result(21)
    assert child.done() and child.wait() == 42


def test_then_on_completed_future_runs_inline() -> None:
    f: Future[int] = Future()
    f.set_result(1)
    ident: list[int] = []
    child = f.then(lambda x: ident.append(threading.get_ident()) or 5)
    assert child.done() and child.value() == 5
    assert ident == [threading.get_ident()]


def test_then_does_not_flatten_a_returned_future() -> None:
    inner: Future[int] = Future()
    f: Future[int] = Future()
    child = f.then(lambda x: inner)
    f.set_result(0)
    assert child.value() is inner


def test_callback_error_message_and_cause() -> None:
    original = ValueError("Expected error")

    def cb(fut: Future[int]) -> int:
        raise original

    f: Future[int] = Future()
    child = f.then(cb)
    f.set_result(1)
    with pytest.raises(CallbackError) as info:
        child.wait()
    err = info.value
    assert isinstance(err, RuntimeError)
    assert str(err).startswith(
        "Got the following error when running the callback: ValueError: Expected error"
    )
    assert err.__cause__ is original
    assert err.original is original
    assert f.wait() == 1  # the parent is unaffected


def test_callback_error_keeps_base_exceptions() -> None:
    f: Future[int] = Future()

    def cb(fut: Future[int]) -> None:
        raise KeyboardInterrupt

    child = f.then(cb)
    with pytest.raises(KeyboardInterrupt):  # not swallowed (torch swallows it)
        f.set_result(1)
    with pytest.raises(CallbackError) as info:
        child.wait()
    assert isinstance(info.value.__cause__, KeyboardInterrupt)


def test_nested_callback_errors_are_passed_on_not_rewrapped() -> None:
    f: Future[int] = Future()
    first = f.then(lambda x: 1 // 0)
    child = first.then(lambda x: x.value())
    f.set_result(1)
    with pytest.raises(CallbackError) as info:
        child.wait()
    assert str(info.value).startswith(
        "Got the following error when running the callback: ZeroDivisionError: "
    )
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    with pytest.raises(CallbackError) as first_info:
        first.wait()
    assert first_info.value is info.value


def test_callback_raising_another_callback_error_is_wrapped() -> None:
    """Only the parent's own error is passed on; any other CallbackError is wrapped."""
    f: Future[int] = Future()
    other = Future[int]()
    other.set_exception(CallbackError("elsewhere"))
    child = f.then(lambda x: other.wait())
    f.set_result(1)
    with pytest.raises(CallbackError) as info:
        child.wait()
    assert str(info.value) == (
        "Got the following error when running the callback: RuntimeError: elsewhere"
    )
    assert info.value.__cause__ is other.exception()


@pytest.mark.parametrize("bad", [None, 5, "cb"])
def test_callbacks_must_be_callable(bad: Any) -> None:
    f: Future[int] = Future()
    with pytest.raises(TypeError, match="then"):
        f.then(bad)
    with pytest.raises(TypeError, match="add_done_callback"):
        f.add_done_callback(bad)


def test_add_done_callback_error_is_logged_with_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []

    def bad_callback(fut: Future[int]) -> None:
        raise ZeroDivisionError("division by zero")

    f: Future[int] = Future()
    f.add_done_callback(bad_callback)
    f.add_done_callback(lambda x: ran.append("second"))
    with caplog.at_level(logging.ERROR, logger="futurekit"):
        f.set_result(5)
    assert f.wait() == 5
    assert ran == ["second"]
    records = [r for r in caplog.records if r.name == "futurekit"]
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        "Got the following error when running the callback: ZeroDivisionError: division by zero"
    )
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError
    assert "bad_callback" in caplog.text  # the traceback is included


def test_add_done_callback_error_logged_when_registered_late(
    caplog: pytest.LogCaptureFixture,
) -> None:
    f: Future[int] = Future()
    f.set_result(1)
    with caplog.at_level(logging.ERROR, logger="futurekit"):
        f.add_done_callback(lambda: None)  # wrong arity, run inline
    assert "takes 0 positional arguments but 1 was given" in caplog.text
    assert f.wait() == 1


def test_repr_shows_state_and_value_type() -> None:
    f: Future[list[int]] = Future()
    assert "pending" in repr(f) and repr(f).startswith("<futurekit.Future")
    f.set_result([1])
    assert "done" in repr(f) and "list" in repr(f)
    g: Future[int] = Future()
    g.set_exception(KeyError("kk"))
    assert "failed" in repr(g) and "KeyError" in repr(g)
    with pytest.raises(KeyError):
        g.wait()


def test_repr_shows_devices(isolated_registry: Any) -> None:
    isolated_registry("fakeacc")
    f: Future[int] = Future(devices=["fakeacc:1", "fakeacc:0"])
    assert "devices=[fakeacc:0, fakeacc:1]" in repr(f)


@pytest.mark.parametrize(
    "op",
    [
        pickle.dumps,
        lambda f: pickle.dumps(f, protocol=0),
        copy.copy,
        copy.deepcopy,
        lambda f: copy.deepcopy([f]),
    ],
    ids=["pickle", "pickle0", "copy", "deepcopy", "deepcopy-nested"],
)
def test_pickle_and_copy_raise(op: Any) -> None:
    f: Future[int] = Future()
    f.set_result(1)
    with pytest.raises(RuntimeError, match=r"Can not pickle futurekit\.Future"):
        op(f)


def test_wait_blocks_until_another_thread_completes() -> None:
    f: Future[str] = Future()
    started = threading.Event()

    def complete() -> None:
        started.wait(5)
        f.set_result("late")

    t = threading.Thread(target=complete)
    t.start()
    started.set()
    assert f.wait() == "late"
    t.join(5)


class _Untouchable:
    """A value that fails on any inspection: pickling, iteration, attribute lookup."""

    def __getattribute__(self, name: str) -> Any:
        if name in ("__class__", "__eq__", "__hash__", "__ne__"):
            return object.__getattribute__(self, name)
        raise AssertionError(f"the CPU fast path inspected the value ({name})")

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise AssertionError("the CPU fast path pickled the value")

    def __iter__(self) -> Any:
        raise AssertionError("the CPU fast path iterated the value")


def test_cpu_futures_never_inspect_values() -> None:
    value = _Untouchable()
    f: Future[Any] = Future()
    child = f.then(lambda x: x.value())
    seen: list[bool] = []
    f.add_done_callback(lambda x: seen.append(x.value() is value))
    f.set_result(value)
    assert f.wait() is value and child.wait() is value and seen == [True]
    assert futurekit.wait_all([f, child])[0] is value
