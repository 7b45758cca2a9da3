"""The documented semantics (docs/design.md, "One semantics"), one test body for both cores.

CI runs this module with the compiled accelerator and again with
``FUTUREKIT_PURE_PYTHON=1``; every test here must pass on both, unchanged:

* a wait on a done future runs nothing (no sibling callback runs nested inside it);
* a wait on a pending future inside a callback never deadlocks on work queued on its
  own thread (a later sibling that completes the awaited future runs first);
* callbacks of one future run in registration order;
* interrupts are never swallowed, wherever they are raised (a callback, the reporting
  of a callback's error, a thread's first use of the core);
* no interrupt, however many, loses the effect of an internal callback (collect_all's
  counter, the unwrap forwarder, a then-child's completion): their effects have happened,
  exactly once, when the interrupted ``set_result`` raises.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import operator
import sys
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import futurekit
from futurekit import CallbackError, Future, collect_all
from futurekit.core import _trampoline

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _quiet_and_clean(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Callback errors are captured; no deferred work leaks into the next test."""
    with caplog.at_level(logging.ERROR, logger="futurekit"):
        yield
    _trampoline.state().pending.clear()


# -- waits inside callbacks ------------------------------------------------------------------
def _done(value: Any = 1) -> Future[Any]:
    fut: Future[Any] = Future()
    fut.set_result(value)
    return fut


def _failed() -> Future[Any]:
    fut: Future[Any] = Future()
    fut.set_exception(KeyError("failed"))
    return fut


WAITS_ON_DONE: dict[str, Callable[[], object]] = {
    "wait()": lambda: _done().wait(),
    "wait(1)": lambda: _done().wait(1),
    "wait(timeout=1)": lambda: _done().wait(timeout=1),
    "result(1)": lambda: _done().result(1),
    "wait() failed": lambda: _failed().wait(),
    "wait(timeout=1) failed": lambda: _failed().wait(timeout=1),
    "exception()": lambda: _failed().exception(),
    "wait(0)": lambda: _done().wait(0),
}


@pytest.mark.parametrize("how", list(WAITS_ON_DONE))
def test_a_wait_on_a_done_future_inside_a_callback_runs_nothing(how: str) -> None:
    order: list[str] = []
    fut: Future[int] = Future()

    def first(f: Future[int]) -> None:
        order.append("first")
        try:
            WAITS_ON_DONE[how]()
        except KeyError:
            pass
        order.append("first returns")

    fut.add_done_callback(first)
    fut.add_done_callback(lambda f: order.append("second"))
    child = fut.then(lambda f: order.append("then"))
    child.add_done_callback(lambda f: order.append("grandchild"))
    fut.set_result(0)
    assert order == ["first", "first returns", "second", "then", "grandchild"]


@pytest.mark.parametrize("how", ["wait()", "wait(5)", "wait(timeout=5)", "result()"])
@pytest.mark.parametrize("kind", ["add_done_callback", "then"])
def test_a_wait_inside_a_callback_on_a_future_a_later_sibling_completes(
    how: str, kind: str
) -> None:
    """The wait runs the siblings queued on its own thread instead of blocking."""
    fut: Future[int] = Future()
    later: Future[str] = Future()
    got: list[object] = []

    def waiter(f: Future[int]) -> None:
        try:
            if how == "wait()":
                got.append(later.wait())
            elif how == "wait(5)":
                got.append(later.wait(5))
            elif how == "wait(timeout=5)":
                got.append(later.wait(timeout=5))
            else:
                got.append(later.result())
        except futurekit.TimeoutError:
            got.append("timed out")

    done = threading.Event()

    def body() -> None:
        if kind == "then":
            fut.then(waiter)
        else:
            fut.add_done_callback(waiter)
        fut.add_done_callback(lambda f: later.set_result("from the sibling"))
        fut.set_result(1)
        done.set()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    if not done.wait(20):
        later.set_result("released by the test")  # unblock the hung callback
        thread.join(10)
        pytest.fail("a callback waiting on a future its sibling completes blocked (deadlock)")
    assert got == ["from the sibling"]


def test_a_wait_on_a_pending_future_runs_the_siblings_in_order() -> None:
    order: list[str] = []
    fut: Future[int] = Future()
    last: Future[int] = Future()

    def waits(f: Future[int]) -> None:
        order.append("waits")
        last.wait(timeout=10)
        order.append("woken")

    fut.add_done_callback(waits)
    fut.add_done_callback(lambda f: order.append("b"))
    fut.then(lambda f: order.append("c")).add_done_callback(lambda f: order.append("c.child"))
    fut.add_done_callback(lambda f: last.set_result(3))
    fut.add_done_callback(lambda f: order.append("e"))
    fut.set_result(0)
    assert order == ["waits", "b", "c", "c.child", "e", "woken"]


def test_a_then_childs_callbacks_run_before_its_parents_set_result_returns_after_a_wait() -> None:
    """A wait inside a then-callback runs everything queued below it (the outer
    completion's siblings included); the child that link then completes still runs its
    callbacks before the parent's ``set_result`` returns. The pure core used to leave
    them on the stack for the outermost drain (its nested drain's mark pointed above
    the emptied stack), so they ran after the callback that called ``set_result``."""
    order: list[str] = []
    outer: Future[int] = Future()
    parent: Future[int] = Future()
    never: Future[int] = Future()

    def completes_parent(f: Future[int]) -> None:
        order.append("outer cb: start")
        parent.set_result(1)
        order.append("outer cb: end")

    def link(f: Future[int]) -> int:
        order.append("link")
        with pytest.raises(futurekit.TimeoutError):
            never.wait(0.001)  # runs what is queued: the outer future's second callback
        return 2

    outer.add_done_callback(completes_parent)
    outer.add_done_callback(lambda f: order.append("outer cb 2"))
    child = parent.then(link)
    child.add_done_callback(lambda f: order.append("child cb"))
    outer.set_result(0)
    assert order == ["outer cb: start", "link", "outer cb 2", "child cb", "outer cb: end"]
    assert child.value() == 2


def test_callbacks_run_in_registration_order_across_kinds() -> None:
    seen: dict[int, object] = {}  # insertion order is the order the callbacks ran in
    fut: Future[int] = Future()
    for i in range(30):
        if i % 3 == 0:
            fut.then(lambda f, i=i: seen.__setitem__(i, "then"))
        elif i % 3 == 1:
            fut.add_done_callback(lambda f, i=i: seen.__setitem__(i, "callback"))
        else:  # a builtin callback: seen[i] = fut
            fut.add_done_callback(functools.partial(operator.setitem, seen, i))
    fut.set_result(0)
    assert list(seen) == list(range(30))


# -- interrupts are never swallowed ----------------------------------------------------------
class _RaisingHandler(logging.Handler):
    def __init__(self, exc: BaseException) -> None:
        super().__init__()
        self.exc = exc

    def emit(self, record: logging.LogRecord) -> None:
        raise self.exc


@pytest.mark.parametrize("exc", [KeyboardInterrupt("log"), SystemExit(4)], ids=repr)
def test_an_interrupt_raised_while_reporting_a_callback_error_propagates(
    exc: BaseException,
) -> None:
    logger = logging.getLogger("futurekit")
    handler = _RaisingHandler(exc)
    logger.addHandler(handler)
    ran: list[str] = []
    fut: Future[int] = Future()
    fut.add_done_callback(lambda f: 1 / 0)
    fut.add_done_callback(lambda f: ran.append("after"))
    child = fut.then(lambda f: f.value() + 1)
    try:
        with pytest.raises(type(exc)):
            fut.set_result(1)
    finally:
        logger.removeHandler(handler)
    assert ran == ["after"] and child.wait(timeout=1) == 2  # the rest still ran


class _LoudStr(Exception):
    def __str__(self) -> str:
        raise SystemExit(5)


def test_an_exception_whose_str_raises_system_exit_is_not_swallowed() -> None:
    ran: list[str] = []
    fut: Future[int] = Future()

    def bad(f: Future[int]) -> None:
        raise _LoudStr()

    fut.add_done_callback(bad)
    fut.add_done_callback(lambda f: ran.append("after"))
    with pytest.raises(SystemExit) as info:
        fut.set_result(1)
    assert info.value.code == 5 and ran == ["after"]


@pytest.mark.parametrize("done_first", [False, True], ids=["pending", "done"])
def test_a_then_callback_raising_such_an_exception_still_fails_its_child(done_first: bool) -> None:
    """Naming the error (``str``) raises SystemExit: raised, and the child still fails."""
    fut: Future[int] = Future()
    if done_first:
        fut.set_result(1)

    def bad(f: Future[int]) -> None:
        raise _LoudStr()

    if done_first:  # run inline by then(): the child is never handed out
        with pytest.raises(SystemExit):
            fut.then(bad)
        return
    child = fut.then(bad)
    later = fut.then(lambda f: f.value() + 1)
    with pytest.raises(SystemExit):
        fut.set_result(1)
    error = child.exception()
    assert isinstance(error, CallbackError) and isinstance(error.__cause__, _LoudStr)
    assert "<str() raised SystemExit>" in error.args[0]
    assert later.value() == 2


def test_an_interrupt_at_a_threads_first_use_of_the_core_propagates() -> None:
    """Ctrl-C at the creation of the thread's trampoline state: raised, nothing done."""
    box: dict[str, Any] = {}

    def body() -> None:
        fut: Future[int] = Future()
        calls: list[Future[int]] = []
        fut.add_done_callback(calls.append)

        def tracer(frame: Any, event: str, arg: Any) -> None:
            if event == "call" and frame.f_code is _trampoline.state.__code__:
                sys.settrace(None)
                raise KeyboardInterrupt("first use")
            return None

        sys.settrace(tracer)
        try:
            fut.set_result(1)
        except KeyboardInterrupt as exc:
            box["raised"] = str(exc)
        finally:
            sys.settrace(None)
        if not fut.done():  # untouched: completing it again works
            fut.set_result(1)
        box["calls"] = len(calls)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(20)
    assert box == {"raised": "first use", "calls": 1}


# -- internal callbacks: exactly once, however many interrupts --------------------------------
@contextlib.contextmanager
def _interrupt_entries(
    func: Any, times: int, unless: Callable[[tuple[Any, ...]], bool] = lambda args: False
) -> Iterator[list[int]]:
    """KeyboardInterrupt at the first ``times`` entries of ``func``, however it is reached.

    The function's code is swapped for a wrapper's (every reference to the function,
    captured or not, sees it); the wrapper raises (except for calls ``unless(*args)``
    excludes, given the positional arguments), then calls a copy of the original.
    Yields ``[interrupts raised]``.
    """
    glob = func.__globals__
    key = f"_futurekit_test_{id(func)}"
    original = types.FunctionType(
        func.__code__, glob, func.__name__, func.__defaults__, func.__closure__
    )
    original.__kwdefaults__ = func.__kwdefaults__
    raised = [0]

    def hook(*args: Any) -> bool:
        if raised[0] < times and not unless(args):
            raised[0] += 1
            return True
        return False

    glob[key + "_original"], glob[key + "_hook"] = original, hook
    wrapper: dict[str, Any] = {}
    exec(  # compiled against the function's globals, where the two names live
        f"def wrapper(*args, **kwargs):\n"
        f"    if {key}_hook(*args):\n"
        f"        raise KeyboardInterrupt('injected at the entry of {func.__qualname__}')\n"
        f"    return {key}_original(*args, **kwargs)\n",
        glob,
        wrapper,
    )
    saved = func.__code__
    func.__code__ = wrapper["wrapper"].__code__
    try:
        yield raised
    finally:
        func.__code__ = saved
        del glob[key + "_original"], glob[key + "_hook"]


def _internal(name: str) -> Any:
    from futurekit.core import _combinators, _completion, _unwrap

    return {
        "collect_all counter": _combinators._Gather.__call__,
        "unwrap forwarder": _unwrap._Forward.__call__,
        "unwrap adopt": _unwrap.adopt,
        "hand over": _unwrap.hand_over,
        "link error": _completion.link_error,
        "complete (Python)": _completion.py_complete,
    }[name]


INTERNAL = [
    "collect_all counter",
    "unwrap forwarder",
    "unwrap adopt",
    "hand over",
    "link error",
    "complete (Python)",
]


@pytest.mark.parametrize("times", [1, 2, 3, 6])
@pytest.mark.parametrize("where", INTERNAL)
def test_repeated_interrupts_never_lose_an_internal_callbacks_effect(
    where: str, times: int
) -> None:
    a: Future[int] = Future()
    b: Future[int] = Future()
    a.set_result(1)
    gathered = collect_all([a, b])
    gathered_calls: list[object] = []
    gathered.add_done_callback(gathered_calls.append)
    inner = _done(5)
    unwrapped = b.then(lambda f: inner, unwrap=True)
    nested = b.then(lambda f: _done(f.value() * 10), unwrap=True)
    failing = b.then(lambda f: 1 / 0)
    cancelled = b.then(lambda f: f.value())
    cancelled.add_done_callback(lambda f: None)
    unwrapped_calls: list[object] = []
    unwrapped.add_done_callback(unwrapped_calls.append)

    def unless(args: tuple[Any, ...]) -> bool:  # b's own complete(): nothing done yet
        return where == "complete (Python)" and args[:1] == (b,)

    with _interrupt_entries(_internal(where), times, unless) as raised:
        try:
            b.set_result(2)
        except KeyboardInterrupt:
            pass
    assert raised[0] >= min(times, 1), "no interrupt was injected"
    # Effects have happened when set_result returns or raises: no further call needed.
    assert gathered.done() and gathered.value() == [a, b]
    assert unwrapped.done() and unwrapped.value() == 5
    assert nested.done() and nested.value() == 20
    assert failing.done() and isinstance(failing.exception(), CallbackError)
    assert cancelled.done()
    assert len(gathered_calls) == 1 and len(unwrapped_calls) == 1  # exactly once
    assert not _trampoline.has_queued_work()


def test_an_interrupted_then_callback_is_not_run_again_and_fails_its_child() -> None:
    """The interrupted callback counts as run; its child fails with the interrupt."""
    fut: Future[int] = Future()
    calls = [0]

    def cb(f: Future[int], calls: list[int] = calls) -> int:
        calls[0] += 1
        return 1

    child = fut.then(cb)
    later = fut.then(lambda f: f.value() + 1)
    with _interrupt_entries(cb, 3) as raised, pytest.raises(KeyboardInterrupt):
        fut.set_result(1)
    assert raised == [1] and calls == [0]  # a user callback is never run again
    error = child.exception()
    assert isinstance(error, CallbackError) and isinstance(error.__cause__, KeyboardInterrupt)
    assert later.value() == 2


# -- recursion -------------------------------------------------------------------------------
def test_a_builtin_callback_raising_recursion_error_runs_once_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    runs: list[int] = []

    class Counted:
        def __str__(self) -> str:
            runs.append(1)
            return ""

    fut: Future[int] = Future()
    # print() is a builtin: the RecursionError of repr(deep) comes from C, with no frame
    fut.add_done_callback(functools.partial(print, Counted(), deep, file=io.StringIO()))
    after: list[Future[int]] = []
    fut.add_done_callback(after.append)
    limit = sys.getrecursionlimit()
    fut.set_result(1)
    assert sys.getrecursionlimit() == limit
    assert len(runs) == 1, f"the callback ran {len(runs)} times"
    assert after == [fut]
    assert any("RecursionError" in r.getMessage() for r in caplog.records)
