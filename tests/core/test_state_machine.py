"""Hypothesis stateful test: the Future state machine against a simple model.

The model keeps, per future, its state, its outcome and its pending callbacks, and
replays torch's rules: completing runs the pending callbacks in FIFO order,
depth-first (a ``then`` child's callbacks run inside its parent's callback);
registering on a completed future runs the callback at once; a second completion
is rejected and changes nothing.
"""

from __future__ import annotations

import gc
import itertools
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from futurekit import CallbackError, CancelledError, Future, InvalidStateError
from futurekit.core import _trampoline

pytestmark = pytest.mark.timeout(300)

#: then-chains stay shallow so that the whole run is inline (torch's exact order)
MAX_DEPTH = min(12, _trampoline.MAX_INLINE_DEPTH // 2)


@dataclass
class Model:
    depth: int
    state: str = "pending"  # pending | done | failed | cancelled
    value: Any = None  # the value, or the exception (failed), or a CallbackError marker
    callbacks: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass(frozen=True)
class CbErr:
    """Model of a child failed by its callback: a CallbackError caused by ``cause``."""

    cause: type[BaseException]


class FutureMachine(RuleBasedStateMachine):
    futures = Bundle("futures")

    def __init__(self) -> None:
        super().__init__()
        self.real: dict[int, Future[Any]] = {}
        self.model: dict[int, Model] = {}
        self.log: list[int] = []
        self.expected_log: list[int] = []
        self.ids = itertools.count()
        self.tokens = itertools.count()

    # -- the model ---------------------------------------------------------------
    def m_complete(self, fid: int, state: str, value: Any) -> bool:
        m = self.model[fid]
        if m.state != "pending":
            return False
        m.state, m.value = state, value
        callbacks, m.callbacks = m.callbacks, []
        for cb in callbacks:
            self.m_run(fid, cb)
        return True

    def m_run(self, fid: int, cb: tuple[Any, ...]) -> None:
        kind, token = cb[0], cb[1]
        self.expected_log.append(token)
        if kind != "then":
            return  # add_done_callback: errors are logged and ignored
        child, mode = cb[2], cb[3]
        parent = self.model[fid]
        if mode == "value":
            self.m_complete(child, "done", token)
        elif mode == "raise":
            self.m_complete(child, "failed", CbErr(ValueError))
        elif parent.state == "done":  # mode == "read": return the parent's value
            self.m_complete(child, "done", parent.value)
        else:
            if isinstance(parent.value, CbErr):  # the parent's CallbackError, passed on as is
                self.m_complete(child, "failed", parent.value)
                return
            cause = CancelledError if parent.state == "cancelled" else type(parent.value)
            self.m_complete(child, "failed", CbErr(cause))

    def m_register(self, fid: int, cb: tuple[Any, ...]) -> None:
        m = self.model[fid]
        if m.state == "pending":
            m.callbacks.append(cb)
        else:
            self.m_run(fid, cb)

    def add(self, fut: Future[Any], depth: int) -> int:
        fid = next(self.ids)
        self.real[fid] = fut
        self.model[fid] = Model(depth)
        return fid

    # -- rules -------------------------------------------------------------------
    @rule(target=futures)
    def new_future(self) -> int:
        return self.add(Future(), 0)

    @rule(target=futures, fid=futures, mode=st.sampled_from(["value", "raise", "read"]))
    def then(self, fid: int, mode: str) -> int:
        depth = self.model[fid].depth + 1
        assume(depth <= MAX_DEPTH)
        token = next(self.tokens)
        log = self.log

        def cb(x: Future[Any]) -> Any:
            log.append(token)
            if mode == "raise":
                raise ValueError(token)
            if mode == "read":
                return x.value()
            return token

        child_id = next(self.ids)  # the model learns the id before the callback may run
        self.model[child_id] = Model(depth)
        self.m_register(fid, ("then", token, child_id, mode))
        self.real[child_id] = self.real[fid].then(cb)
        return child_id

    @rule(fid=futures, raises=st.booleans())
    def add_done_callback(self, fid: int, raises: bool) -> None:
        token = next(self.tokens)
        log = self.log

        def cb(x: Future[Any]) -> None:
            log.append(token)
            if raises:
                raise KeyError(token)

        self.m_register(fid, ("cb", token))
        self.real[fid].add_done_callback(cb)

    @rule(fid=futures, value=st.integers())
    def set_result(self, fid: int, value: int) -> None:
        pending = self.model[fid].state == "pending"
        real = self.real[fid]
        if pending:
            self.m_complete(fid, "done", value)
            real.set_result(value)
        else:
            with pytest.raises(InvalidStateError, match="marked completed once"):
                real.set_result(value)

    @rule(fid=futures, kind=st.sampled_from([ValueError, KeyError, RuntimeError]))
    def set_exception(self, fid: int, kind: type[Exception]) -> None:
        exc = kind("boom")
        real = self.real[fid]
        if self.model[fid].state == "pending":
            self.m_complete(fid, "failed", exc)
            real.set_exception(exc)
        else:
            with pytest.raises(InvalidStateError, match="marked completed once"):
                real.set_exception(exc)

    @rule(fid=futures, bad=st.sampled_from(["text", 3, None, KeyboardInterrupt()]))
    def set_exception_not_an_exception(self, fid: int, bad: Any) -> None:
        with pytest.raises(TypeError, match="not an Exception"):
            self.real[fid].set_exception(bad)

    @rule(fid=futures)
    def cancel(self, fid: int) -> None:
        pending = self.model[fid].state == "pending"
        if pending:
            self.m_complete(fid, "cancelled", None)
        assert self.real[fid].cancel() is pending

    @rule(fid=futures)
    def observe(self, fid: int) -> None:
        m, real = self.model[fid], self.real[fid]
        assert real.done() is (m.state != "pending")
        assert real.cancelled() is (m.state == "cancelled")
        if m.state == "pending":
            with pytest.raises(InvalidStateError):
                real.value()
            with pytest.raises(TimeoutError):
                real.wait(timeout=0)
            return
        for getter in (real.value, real.wait):
            if m.state == "done":
                assert getter() is m.value or getter() == m.value
            elif m.state == "cancelled":
                with pytest.raises(CancelledError):
                    getter()
            elif isinstance(m.value, CbErr):
                with pytest.raises(CallbackError) as info:
                    getter()
                assert type(info.value.__cause__) is m.value.cause
            else:
                with pytest.raises(type(m.value)) as raised:
                    getter()
                assert raised.value is m.value

    # -- invariants -----------------------------------------------------------------
    @invariant()
    def same_callback_log(self) -> None:
        assert self.log == self.expected_log

    @invariant()
    def same_done_flags(self) -> None:
        for fid, m in self.model.items():
            if fid in self.real:
                assert self.real[fid].done() is (m.state != "pending")


@pytest.fixture(autouse=True)
def quiet_futurekit_logger() -> Any:
    logger = logging.getLogger("futurekit")
    old = logger.level
    logger.setLevel(logging.CRITICAL)  # raising callbacks and unread errors log by design
    yield
    gc.collect()  # report never-retrieved errors while still quiet
    logger.setLevel(old)


FutureMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_future_state_machine = FutureMachine.TestCase
