"""Completing a future with almost no stack left: nothing is lost, the limit is restored.

The helper recurses until only ``k`` frames are left below the recursion limit, then
completes (or cancels, or registers on) a future that has ``then`` children,
``add_done_callback`` callbacks, an ``unwrap=True`` child and a waiter thread. Back
at normal depth, every callback ran exactly once and every child is done. If the
operation itself raised RecursionError before completing the future, the future
must still be pending and completable afterwards.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from typing import Any

import pytest

from futurekit import CallbackError, Future, collect_all
from futurekit.core import _trampoline


@pytest.fixture(autouse=True)
def _no_leftovers() -> Any:
    """A failed case may leave deferred work on the thread: do not let it leak on.

    Callback errors are logged to a NullHandler: formatting a traceback near the
    recursion limit can break CPython 3.11's ``ast`` module for the rest of the
    process (gh-106905), and pytest needs it to report failures.
    """
    logger = logging.getLogger("futurekit")
    saved = logger.handlers[:], logger.propagate
    logger.handlers[:] = [logging.NullHandler()]
    logger.propagate = False
    _trampoline.state().pending.clear()
    yield
    _trampoline.state().pending.clear()
    logger.handlers[:], logger.propagate = saved


OPS = ["set_result", "set_exception", "cancel", "then_on_done", "callback_on_done"]


def _descend(n: int, action: Any) -> Any:
    if n <= 0:
        return action()
    return _descend(n - 1, action)


def _room() -> int:
    """How many more ``_descend`` levels fit below the limit from here."""
    box = [0]

    def probe() -> None:
        box[0] += 1
        probe()

    try:
        _descend(0, probe)
    except RecursionError:
        pass
    return box[0]


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return "".join(traceback.format_list([f for f in frames if "futurekit" in f.filename][-4:]))


def _plus_one(fut: Future[int]) -> int:
    return fut.value() + 1


def _deep_helper(n: int) -> int:
    return 0 if n == 0 else 1 + _deep_helper(n - 1)


class _Setup:
    def __init__(self, done_before: bool) -> None:
        self.fut: Future[int] = Future()
        if done_before:
            self.fut.set_result(41)
        self.counts = [0] * 4
        self.appended: list[Future[int]] = []
        self.inner: Future[int] = Future()
        self.children: list[tuple[Future[Any], int]] = []  # (child, value - parent's)
        self.unwrapped: Future[Any] | None = None
        self.gathered: Future[Any] | None = None
        self.nested: Future[int] = Future()
        self.nested_calls: list[Future[int]] = []
        self.nested.add_done_callback(self.nested_calls.append)
        self.waiter_woke = threading.Event()
        if not done_before:
            self.register_all()
            self.waiter = threading.Thread(target=self._wait, daemon=True)
            self.waiter.start()

    def _wait(self) -> None:
        try:
            self.fut.wait(timeout=20)
        except Exception:
            pass
        self.waiter_woke.set()

    def _counted(self, i: int) -> Any:
        def cb(fut: Future[int]) -> None:
            self.counts[i] += 1  # first: a callback that starts is counted
            _deep_helper(3)

        return cb

    def _complete_nested(self, fut: Future[int]) -> None:
        self.counts[3] += 1
        self.nested.set_result(7)

    def register_all(self) -> None:
        fut = self.fut
        fut.add_done_callback(self._counted(0))
        self.children.append((fut.then(_plus_one), 1))
        fut.add_done_callback(self.appended.append)
        self.children.append((fut.then(lambda f: _deep_helper(20) + f.value()), 20))
        fut.add_done_callback(self._counted(1))
        self.unwrapped = fut.then(lambda f: self.inner, unwrap=True)
        self.gathered = collect_all([fut, self.inner])
        fut.add_done_callback(self._counted(2))
        fut.add_done_callback(self._complete_nested)
        self.children.append((self.children[0][0].then(_plus_one), 2))

    def check(self, op: str, raised: BaseException | None) -> None:
        fut = self.fut
        if raised is not None:
            assert isinstance(raised, RecursionError), raised
            if op in ("set_result", "set_exception", "cancel"):
                # acceptable only if the future was left untouched and usable
                assert not fut.done(), (
                    f"{op} raised {raised!r} after completing the future, from:\n{_where(raised)}"
                )
                self.complete(op)
            else:
                assert not any(self.counts) and not self.appended, (
                    f"{op} raised {raised!r} after running a callback, from:\n{_where(raised)}"
                )
                self.register_all()
        expected_value = 41 if op in ("then_on_done", "callback_on_done") else 1
        if not self.inner.done():
            self.inner.set_result(5)
        assert self.counts == [1, 1, 1, 1], self.counts
        assert self.appended == [fut]
        # a callback whose own set_result ran out of stack failed (and was logged): the
        # nested future then never completed, which is that callback's error, not a loss
        assert self.nested_calls == ([self.nested] if self.nested.done() else [])
        for child, offset in self.children:
            assert child.done()
            if fut._state == 1:  # DONE
                try:
                    value = child.wait(timeout=5)
                except CallbackError:
                    continue  # a callback that ran out of stack fails its child
                assert value == expected_value + offset
            else:
                with pytest.raises(Exception):
                    child.wait(timeout=5)
        assert self.unwrapped is not None and self.gathered is not None
        if fut._state == 1:
            assert self.unwrapped.wait(timeout=5) == 5
            assert self.gathered.wait(timeout=5) == [fut, self.inner]
        else:
            assert self.unwrapped.done() and self.gathered.done()
        if op not in ("then_on_done", "callback_on_done"):
            assert self.waiter_woke.wait(10), "the waiter thread did not wake"

    def complete(self, op: str) -> None:
        if op == "set_result":
            self.fut.set_result(1)
        elif op == "set_exception":
            self.fut.set_exception(ValueError("deep"))
        elif op == "cancel":
            assert self.fut.cancel()
        elif op == "then_on_done":
            self.register_all()
        else:
            self.fut.add_done_callback(self._counted(0))
            self.fut.add_done_callback(self.appended.append)
            self.fut.add_done_callback(self._counted(1))
            self.fut.add_done_callback(self._counted(2))
            self.fut.add_done_callback(self._complete_nested)
            self.children.append((self.fut.then(_plus_one), 1))
            self.unwrapped = self.fut.then(lambda f: self.inner, unwrap=True)
            self.gathered = collect_all([self.fut, self.inner])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("op", OPS)
def test_operation_with_k_frames_left(op: str) -> None:
    limit = sys.getrecursionlimit()
    failures = []
    for k in range(1, 13):
        setup = _Setup(done_before=op in ("then_on_done", "callback_on_done"))
        room = _room()
        raised: list[BaseException] = []

        def action(setup: _Setup = setup, raised: list[BaseException] = raised) -> None:
            try:
                setup.complete(op)
            except RecursionError as exc:
                raised.append(exc)

        try:
            _descend(room - k, action)
        except RecursionError as exc:  # the action frame itself did not fit
            raised.append(exc)
        # Extra limit granted at the very limit is taken back by the next futurekit call
        # made with a frame to spare (a frame at the limit cannot lower it: docs/design.md).
        Future().cancel()
        if sys.getrecursionlimit() != limit:
            failures.append(f"k={k}: recursion limit {sys.getrecursionlimit()} != {limit}")
            sys.setrecursionlimit(limit)
        queued = _trampoline.has_queued_work()
        try:
            setup.check(op, raised[0] if raised else None)
            assert not queued, "deferred work was left on the thread"
        except AssertionError as exc:
            failures.append(f"k={k} ({k} frames left), raised={raised!r}, queued={queued}: {exc}")
        _trampoline.state().pending.clear()
        if sys.getrecursionlimit() != limit:
            failures.append(f"k={k}: recursion limit not restored after the checks")
            sys.setrecursionlimit(limit)
    assert not failures, "\n\n".join(failures)


@pytest.mark.timeout(60)
def test_long_chain_completed_near_the_limit() -> None:
    """A chain far deeper than the inline depth, completed with a few frames left."""
    limit = sys.getrecursionlimit()
    for k in (2, 5, 9):
        root: Future[int] = Future()
        node = root
        calls: list[Future[int]] = []
        links = []
        for _ in range(3000):
            node.add_done_callback(calls.append)
            node = node.then(_plus_one)
            links.append(node)
        raised: list[BaseException] = []

        def action(root: Future[int] = root, raised: list[BaseException] = raised) -> None:
            try:
                root.set_result(0)
            except RecursionError as exc:
                raised.append(exc)

        try:
            _descend(_room() - k, action)
        except RecursionError as exc:
            raised.append(exc)
        Future().cancel()  # takes back extra limit a frame at the limit could not lower
        assert sys.getrecursionlimit() == limit
        if raised:
            assert not root.done(), f"k={k}: set_result raised {raised[0]!r} after completing"
            root.set_result(0)
        assert node.wait(timeout=10) == 3000
        assert sorted(map(id, calls)) == sorted(map(id, [root, *links[:-1]]))
        assert all(link.done() for link in links)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("last", ["set_result", "set_exception"])
def test_internal_callbacks_finish_their_work_near_the_limit(last: str) -> None:
    """collect_all's counter and the unwrap forwarder run a few frames below the limit.

    They ran short of stack *inside* (not at their entry): that is no callback error
    but a reason to run them again with more limit. Their effects have happened when
    the completing call returns, with no further call (nothing left on the thread).
    """
    limit = sys.getrecursionlimit()
    failures = []
    for k in range(1, 16):
        a: Future[int] = Future()
        b: Future[int] = Future()
        a.set_result(1)
        gathered = collect_all([a, b])
        inner: Future[int] = Future()
        inner.set_result(7)
        unwrapped = b.then(lambda f, inner=inner: inner, unwrap=True)
        nested = b.then(lambda f, inner=inner: inner.then(_plus_one), unwrap=True)
        raised: list[BaseException] = []

        def action(b: Future[int] = b, raised: list[BaseException] = raised) -> None:
            try:
                if last == "set_result":
                    b.set_result(2)
                else:
                    b.set_exception(KeyError("deep"))
            except RecursionError as exc:
                raised.append(exc)

        try:
            _descend(_room() - k, action)
        except RecursionError as exc:
            raised.append(exc)
        Future().cancel()  # takes back extra limit a frame at the limit could not lower
        states = (b.done(), gathered.done(), unwrapped.done(), nested.done())
        queued = _trampoline.has_queued_work()
        if raised and not b.done():
            continue  # the completing call itself did not fit: nothing was done
        if states != (True,) * 4 or queued or raised:
            failures.append(f"k={k}: done {states}, queued={queued}, raised={raised!r}")
        _trampoline.state().pending.clear()
        sys.setrecursionlimit(limit)
    assert not failures, "\n".join(failures)
    assert sys.getrecursionlimit() == limit
