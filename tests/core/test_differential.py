"""The same scenario run against ``torch.futures`` and futurekit, outcomes compared.

Each scenario is a function of an implementation namespace (``Future``,
``collect_all``, ``wait_all``) returning a list of observations. Values are
compared with ``==``; :class:`Err` observations compare by type (futurekit's error
must be an instance of torch's error type) and by the first line of the message.
Where futurekit deliberately differs from torch, the difference is tested
explicitly at the end of this file.
"""

from __future__ import annotations

import copy
import pickle
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

import futurekit

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.timeout(60)

TORCH = SimpleNamespace(
    name="torch",
    Future=torch.futures.Future,
    collect_all=torch.futures.collect_all,
    wait_all=torch.futures.wait_all,
)
FK = SimpleNamespace(
    name="futurekit",
    Future=futurekit.Future,
    collect_all=futurekit.collect_all,
    wait_all=futurekit.wait_all,
)


class Err:
    """An observed exception."""

    def __init__(self, exc: BaseException, *, full: bool = False) -> None:
        self.exc = exc
        self.full = full

    @property
    def first_line(self) -> str:
        return str(self.exc).split("\n")[0]

    def __repr__(self) -> str:
        return f"Err({type(self.exc).__name__}: {self.first_line!r})"


def catch(fn: Callable[[], Any]) -> Any:
    """The value of ``fn()``, or :class:`Err` with what it raised."""
    try:
        return fn()
    except BaseException as exc:
        return Err(exc)


def compare(scenario: Callable[[SimpleNamespace], list[Any]]) -> list[Any]:
    """Run ``scenario`` on both implementations and assert equal observations."""
    expected = scenario(TORCH)
    got = scenario(FK)
    assert len(expected) == len(got), (expected, got)
    for i, (want, have) in enumerate(zip(expected, got, strict=True)):
        if isinstance(want, Err):
            assert isinstance(have, Err), f"observation {i}: torch raised {want}, got {have!r}"
            assert isinstance(have.exc, type(want.exc)), (
                f"observation {i}: {type(have.exc)} is not a {type(want.exc)}"
            )
            assert have.first_line == want.first_line, f"observation {i}: {have} != {want}"
        else:
            assert not isinstance(have, Err), f"observation {i}: expected {want!r}, got {have}"
            assert have == want, f"observation {i}: {have!r} != {want!r}"
    return got


# -- values and completion ------------------------------------------------------


def test_value_identity() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        out = []
        for obj in (object(), [1, [2]], {"a": 1}, None, "text", (1, 2)):
            f = ns.Future()
            f.set_result(obj)
            out += [f.wait() is obj, f.value() is obj, f.wait() is obj]
        return out

    assert all(compare(scenario))


def test_done_flags() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        f = ns.Future()
        out = [f.done()]
        f.set_result(1)
        out.append(f.done())
        g = ns.Future()
        g.set_exception(ValueError("x"))
        out.append(g.done())
        return out

    assert compare(scenario) == [False, True, True]


def test_double_completion_errors() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        f = ns.Future()
        f.set_result(1)
        out = [catch(lambda: f.set_result(2)), f.wait()]
        g = ns.Future()
        e = ValueError("first")
        g.set_exception(e)
        out += [
            catch(lambda: g.set_exception(ValueError("second"))),
            catch(lambda: g.set_result(3)),
        ]
        err = catch(g.wait)
        out.append(err.exc is e)
        return out

    out = compare(scenario)
    assert "Future can only be marked completed once" in out[0].first_line


def test_set_exception_raises_the_same_object() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        f = ns.Future()
        e = KeyError("kk")
        f.set_exception(e)
        a, b, c = catch(f.wait), catch(f.value), catch(f.wait)
        return [a, b, c, a.exc is e, b.exc is e, c.exc is e]

    out = compare(scenario)
    assert out[3:] == [True, True, True]


@pytest.mark.parametrize(
    "bad", ["oops", 1, None, ValueError, KeyboardInterrupt(), SystemExit(2)], ids=repr
)
def test_set_exception_needs_an_exception_instance(bad: object) -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        f = ns.Future()
        return [catch(lambda: f.set_exception(bad)), f.done()]

    out = compare(scenario)
    assert out[0].first_line == f"{bad} is of type {type(bad)}, not an Exception."
    assert isinstance(out[0].exc, TypeError)  # futurekit: also a TypeError


def test_positional_devices_rejected() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        return [isinstance(catch(lambda: ns.Future(["cpu:0"])).exc, TypeError)]

    assert compare(scenario) == [True]


def test_device_error_messages() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        return [
            catch(lambda: ns.Future(devices=["cpu", "cuda:0"])),
            catch(lambda: ns.Future(devices=["cuda:0", "cpu:0"])),
            # "meta": torch's CPU build has a guard for it, so the index check is reached
            catch(lambda: ns.Future(devices=["meta"])),
            catch(lambda: ns.Future(devices=["meta", "meta"])),
        ]

    out = compare(scenario)
    assert out[0].first_line == (
        "Expected all devices to be of the same type, but got a mismatch between cpu and cuda:0"
    )
    assert out[2].first_line == "Expected devices to have indices, got meta"


def test_cpu_with_index_is_a_cpu_future() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        out = []
        for devices in (None, [], (), ["cpu:0"], ["cpu:1", "cpu:0"], [torch.device("cpu", 0)]):
            f = ns.Future(devices=devices)
            f.set_result(devices)
            out.append(f.wait() is devices)
        return out

    assert all(compare(scenario))


# -- then -----------------------------------------------------------------------


def test_then_values_and_child_done_on_return() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        f = ns.Future()
        pending_child = f.then(lambda x: x.wait() + 1)
        out = [pending_child.done()]
        f.set_result(1)
        out += [pending_child.done(), pending_child.wait(), f.wait()]
        late_child = f.then(lambda x: x.value() * 10)
        out += [late_child.done(), late_child.value()]
        return out

    assert compare(scenario) == [False, True, 2, 1, True, 10]


def test_chained_then_values() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        f = ns.Future()
        futs = [f]
        for _ in range(20):
            futs.append(futs[-1].then(lambda x: x.wait() + 1))
        f.set_result(0)
        return [g.wait() for g in futs]

    assert compare(scenario) == list(range(21))


def _raise(exc: BaseException) -> Callable[[Any], Any]:
    def cb(fut: Any) -> Any:
        raise exc

    return cb


@pytest.mark.parametrize(
    "cb",
    [
        _raise(ValueError("Expected error")),
        _raise(KeyError("kk")),
        _raise(ZeroDivisionError("division by zero")),
        _raise(RuntimeError("rt")),
        lambda: 1,
        lambda x: x + 1,
        lambda x: x.value().missing,
    ],
    ids=[
        "ValueError",
        "KeyError",
        "ZeroDivision",
        "RuntimeError",
        "no-arg",
        "wrong-arg",
        "attribute",
    ],
)
def test_then_callback_errors(cb: Callable[..., Any]) -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        f = ns.Future()
        before = f.then(cb)
        f.set_result(5)
        after = f.then(cb)
        return [catch(before.wait), catch(after.value), before.done(), after.done(), f.wait()]

    out = compare(scenario)
    assert out[0].first_line.startswith("Got the following error when running the callback: ")


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt()], ids=["SystemExit", "Ctrl-C"])
def test_then_interrupt_fails_child_like_torch_but_is_not_swallowed(exc: BaseException) -> None:
    """torch swallows SystemExit/KeyboardInterrupt in a callback; futurekit fails the
    child exactly as torch does, then lets the interrupt propagate from set_result."""
    import futurekit as fk

    f = fk.Future()
    before = f.then(_raise(exc))
    later = f.then(lambda x: x.wait() + 1)
    with pytest.raises(type(exc)):
        f.set_result(5)
    assert later.wait() == 6  # the remaining callbacks were still run
    with pytest.raises(fk.CallbackError) as info:
        before.wait()
    assert info.value.__cause__ is exc
    with pytest.raises(type(exc)):
        f.then(_raise(exc))  # registered on a completed future: same rule


def test_then_on_failed_parent() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        f = ns.Future()
        e = ValueError("boom")
        f.set_exception(e)
        ignores = f.then(lambda x: 5)
        touches = f.then(lambda x: x.value())
        seen: list[Any] = []

        def inspect(x: Any) -> None:
            try:
                x.value()
            except BaseException as inner:
                seen.append((type(inner), inner is e))

        f.add_done_callback(inspect)
        return [ignores.wait(), catch(touches.wait), seen]

    out = compare(scenario)
    assert out[0] == 5 and out[2] == [(ValueError, True)]
    assert out[1].first_line == (
        "Got the following error when running the callback: ValueError: boom"
    )


def test_callback_completing_its_own_parent() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        f = ns.Future()
        child = f.then(lambda x: x.set_result(2))
        f.set_result(1)
        return [
            f.wait(),
            isinstance(catch(child.wait).exc, RuntimeError),
            "marked completed once" in str(catch(child.wait).exc),
        ]

    assert compare(scenario) == [1, True, True]


def test_returned_future_is_not_flattened() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        inner = ns.Future()
        f = ns.Future()
        child = f.then(lambda x: inner)
        f.set_result(1)
        return [child.value() is inner, inner.done()]

    assert compare(scenario) == [True, False]


def test_callbacks_receive_the_same_object() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        f = ns.Future()
        seen: list[bool] = []
        child = f.then(lambda x: seen.append(x is f))
        child.add_done_callback(lambda y: seen.append(y is child))
        f.add_done_callback(lambda x: seen.append(x is f))
        f.set_result(1)
        f.add_done_callback(lambda x: seen.append(x is f))
        return seen

    assert compare(scenario) == [True, True, True, True]


# -- callback order, threads, timing ----------------------------------------------


def test_fifo_order_across_then_and_add_done_callback() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        order: list[str] = []
        f = ns.Future()
        f.add_done_callback(lambda x: order.append("a1"))
        c1 = f.then(lambda x: order.append("t1"))
        c1.add_done_callback(lambda x: order.append("t1.a"))
        c1.then(lambda x: order.append("t1.t"))
        f.add_done_callback(lambda x: order.append("a2"))
        f.then(lambda x: order.append("t2"))
        f.set_result(0)
        return order

    assert compare(scenario) == ["a1", "t1", "t1.a", "t1.t", "a2", "t2"]


def test_nested_registration_on_completed_future_runs_inline() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        order: list[str] = []
        f = ns.Future()

        def cb1(x: Any) -> None:
            order.append("cb1")
            x.add_done_callback(lambda y: order.append("nested"))
            order.append("cb1-end")

        f.add_done_callback(cb1)
        f.add_done_callback(lambda x: order.append("cb2"))
        f.set_result(0)

        # once complete, a registration inside a callback still runs inline
        def cb3(x: Any) -> None:
            order.append("cb3")
            x.then(lambda y: order.append("nested-then"))
            order.append("cb3-end")

        f.add_done_callback(cb3)
        return order

    assert compare(scenario) == ["cb1", "nested", "cb1-end", "cb2", "cb3", "nested-then", "cb3-end"]


def test_callbacks_run_in_completing_or_registering_thread() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        threads: list[int] = []
        f = ns.Future()
        f.add_done_callback(lambda x: threads.append(threading.get_ident()))
        completer: list[int] = []

        def complete() -> None:
            completer.append(threading.get_ident())
            f.set_result(1)

        t = threading.Thread(target=complete)
        t.start()
        t.join(10)
        f.add_done_callback(lambda x: threads.append(threading.get_ident()))
        return [threads[0] == completer[0], threads[1] == threading.get_ident()]

    assert compare(scenario) == [True, True]


def test_callbacks_have_run_when_set_result_returns() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        ran: list[int] = []
        f = ns.Future()
        f.add_done_callback(lambda x: ran.append(1))
        child = f.then(lambda x: ran.append(2))
        out = [list(ran), child.done()]
        f.set_result(None)
        return [*out, list(ran), child.done()]

    assert compare(scenario) == [[], False, [1, 2], True]


def test_waiters_are_woken_before_callbacks_run() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        f = ns.Future()
        waiter_returned = threading.Event()
        waiter_ready = threading.Event()
        seen: list[bool] = []

        def waiter() -> None:
            waiter_ready.set()
            f.wait()
            waiter_returned.set()

        f.add_done_callback(lambda x: seen.append(waiter_returned.wait(10)))
        t = threading.Thread(target=waiter)
        t.start()
        waiter_ready.wait(10)
        # give the waiter time to block inside wait()
        t.join(0.2)
        f.set_result(1)
        t.join(10)
        return seen

    assert compare(scenario) == [True]


def test_add_done_callback_error_does_not_affect_future() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        f = ns.Future()
        ran: list[str] = []
        f.add_done_callback(_raise(ZeroDivisionError("division by zero")))
        f.add_done_callback(lambda: None)
        f.add_done_callback(lambda x: ran.append("after"))
        f.set_result(5)
        return [f.wait(), ran]

    assert compare(scenario) == [5, ["after"]]


def test_invalid_callbacks_rejected() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        f = ns.Future()
        return [
            isinstance(catch(lambda: f.then(5)).exc, TypeError),
            isinstance(catch(lambda: f.then(None)).exc, TypeError),
            isinstance(catch(lambda: f.add_done_callback(5)).exc, TypeError),
            isinstance(catch(lambda: f.add_done_callback(None)).exc, TypeError),
        ]

    assert compare(scenario) == [True] * 4


def test_pickle_and_copy_rejected() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        f = ns.Future()
        return [
            isinstance(catch(lambda: pickle.dumps(f)).exc, RuntimeError),
            isinstance(catch(lambda: copy.copy(f)).exc, RuntimeError),
            isinstance(catch(lambda: copy.deepcopy(f)).exc, RuntimeError),
            "Can not pickle" in str(catch(lambda: pickle.dumps(f)).exc),
        ]

    assert compare(scenario) == [True, True, True, True]


# -- collect_all / wait_all ---------------------------------------------------------


def test_collect_all_results() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        futs = [ns.Future() for _ in range(4)]
        all_fut = ns.collect_all(futs)
        out = [all_fut.done()]
        for i in (2, 0, 3, 1):
            futs[i].set_result(i * 10)
        res = all_fut.wait()
        out += [all_fut.done(), type(res) is list, [r.wait() for r in res]]
        empty = ns.collect_all([])
        out += [empty.done(), empty.wait(), ns.collect_all(tuple(futs)).wait()[3].wait()]
        return out

    assert compare(scenario) == [False, True, True, [0, 10, 20, 30], True, [], 30]


def test_wait_all_values_and_errors() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        a, b = ns.Future(), ns.Future()
        a.set_result("a")
        b.set_result("b")
        bad = a.then(_raise(ValueError("Expected error")))
        e = KeyError("first")
        s1, s2 = ns.Future(), ns.Future()
        s1.set_exception(e)
        s2.set_exception(KeyError("second"))
        err = catch(lambda: ns.wait_all([a, s1, s2]))
        return [
            ns.wait_all([a, b]),
            ns.wait_all([]),
            catch(lambda: ns.wait_all([a, bad])),
            err,
            err.exc is e,
        ]

    out = compare(scenario)
    assert out[:2] == [["a", "b"], []]
    assert out[4] is True


def test_collect_all_early_exit_on_callback_error() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        pending = ns.Future()
        parent = ns.Future()
        bad = parent.then(_raise(ValueError("Expected error")))
        all_fut = ns.collect_all([pending, bad])
        parent.set_result(1)
        out = [all_fut.done(), catch(all_fut.wait)]
        pending.set_result(2)
        return out

    out = compare(scenario)
    assert out[0] is True
    assert "Expected error" in out[1].first_line


def test_none_and_non_futures_rejected() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        f = ns.Future()
        return [
            catch(lambda: ns.collect_all([f, None])),
            catch(lambda: ns.wait_all((None,))),
            isinstance(catch(lambda: ns.collect_all([1])).exc, TypeError),
            isinstance(catch(lambda: ns.wait_all([f, "x"])).exc, TypeError),
        ]

    out = compare(scenario)
    assert out[0].first_line == "Future can't be None"
    assert out[2:] == [True, True]


# -- deliberate differences ---------------------------------------------------------


def test_difference_cpu_without_index_accepted() -> None:
    err = catch(lambda: torch.futures.Future(devices=["cpu"]))
    assert isinstance(err.exc, ValueError)
    assert err.first_line == "Expected devices to have indices, got cpu"
    f = futurekit.Future(devices=["cpu"])
    assert f.devices == ()
    f.set_result(1)
    assert f.wait() == 1


def test_difference_set_exception_on_completed_keeps_result() -> None:
    tf = torch.futures.Future()
    tf.set_result(1)
    assert isinstance(catch(lambda: tf.set_exception(ValueError("late"))).exc, RuntimeError)
    assert isinstance(catch(tf.wait).exc, TypeError)  # torch corrupts the future

    ff: futurekit.Future[int] = futurekit.Future()
    ff.set_result(1)
    err = catch(lambda: ff.set_exception(ValueError("late")))
    assert isinstance(err.exc, RuntimeError)
    assert "marked completed once" in err.first_line
    assert ff.wait() == 1 and ff.value() == 1


def test_difference_callback_error_keeps_cause() -> None:
    original = KeyError("kk")

    def cb(fut: Any) -> None:
        raise original

    tf = torch.futures.Future()
    tf.set_result(1)
    terr = catch(tf.then(cb).wait).exc
    assert type(terr) is RuntimeError and terr.__cause__ is None

    ff: futurekit.Future[int] = futurekit.Future()
    ff.set_result(1)
    ferr = catch(ff.then(cb).wait).exc
    assert isinstance(ferr, futurekit.CallbackError) and isinstance(ferr, RuntimeError)
    assert ferr.__cause__ is original
    assert str(ferr).split("\n")[0] == str(terr).split("\n")[0]


def test_difference_collect_all_early_exit_on_set_exception() -> None:
    e = ValueError("early")
    tp, tbad = torch.futures.Future(), torch.futures.Future()
    tall = torch.futures.collect_all([tp, tbad])
    tbad.set_exception(e)
    assert not tall.done()  # torch waits for every input
    tp.set_result(1)
    assert catch(tall.wait).exc is e

    fp, fbad = futurekit.Future(), futurekit.Future()
    fall = futurekit.collect_all([fp, fbad])
    fbad.set_exception(e)
    assert fall.done()  # futurekit exits at once
    assert catch(fall.wait).exc is e
    assert catch(lambda: futurekit.wait_all([fp, fbad])).exc is e
    assert not fp.done()


def test_difference_value_before_completion() -> None:
    terr = catch(torch.futures.Future().value).exc
    assert isinstance(terr, RuntimeError) and "INTERNAL ASSERT FAILED" in str(terr)

    ferr = catch(futurekit.Future().value).exc
    assert isinstance(ferr, futurekit.InvalidStateError) and isinstance(ferr, RuntimeError)
    assert "INTERNAL ASSERT" not in str(ferr)
    assert "before the future completed" in str(ferr)


def test_difference_then_returns_full_future_and_collect_all_same_objects() -> None:
    tf = torch.futures.Future()
    assert not isinstance(tf.then(lambda x: 1), torch.futures.Future)
    t_inputs = [torch.futures.Future()]
    t_inputs[0].set_result(1)
    assert torch.futures.collect_all(t_inputs).wait()[0] is not t_inputs[0]

    ff: futurekit.Future[int] = futurekit.Future()
    child = ff.then(lambda x: 1)
    assert type(child) is futurekit.Future
    child.set_exception(ValueError("the child is a full Future"))
    ff.set_result(0)  # the callback's result is ignored: the child was completed first
    assert isinstance(catch(child.wait).exc, ValueError)
    f_inputs = [futurekit.Future(), futurekit.Future()]
    for f in f_inputs:
        f.set_result(1)
    res = futurekit.collect_all(f_inputs).wait()
    assert res[0] is f_inputs[0] and res[1] is f_inputs[1]


def test_callback_error_rendering_of_internal_errors() -> None:
    def scenario(ns: SimpleNamespace) -> list[Any]:
        f = ns.Future()
        own_parent = f.then(lambda x: x.set_result(2))
        not_exc = f.then(lambda x: ns.Future().set_exception("oops"))
        f.set_result(1)
        return [catch(own_parent.wait), catch(not_exc.wait)]

    compare(scenario)


def test_failing_chain_keeps_torchs_first_level_message_without_rewrapping() -> None:
    """torch wraps the message again at every level (quadratic in the chain's length);
    futurekit passes the parent's CallbackError on as is (issue: linear failing chains)."""
    t = torch.futures.Future()
    t_nested = t.then(_raise(ZeroDivisionError("division by zero"))).then(lambda x: x.value())
    t.set_result(1)
    t_msg = str(catch(t_nested.wait).exc)
    assert t_msg.count("Got the following error") == 2  # torch's nesting

    f = futurekit.Future()
    first = f.then(_raise(ZeroDivisionError("division by zero")))
    nested = first.then(lambda x: x.value())
    f.set_result(1)
    err = catch(nested.wait).exc
    assert isinstance(err, futurekit.CallbackError)
    assert str(err) == (
        "Got the following error when running the callback: ZeroDivisionError: division by zero"
    )
    assert err is catch(first.wait).exc  # the same object: no re-wrapping
    assert isinstance(err.__cause__, ZeroDivisionError)
