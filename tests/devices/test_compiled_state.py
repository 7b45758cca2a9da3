"""The accelerator's ``prepare`` and ``sync_current`` give what the Python methods give.

``DeviceState.prepare`` (at ``set_result``) and ``DeviceState.sync_current`` (at
``wait()``) have a compiled twin for one buffer on the plan's first device. Each case
here runs the Python method and the compiled one on a backend that logs every call:
the same calls, in the same order, with the same arguments, and the same resulting
state, or the same error. A profiler checks that the compiled path really skipped the
Python method where it claims to.
"""

from __future__ import annotations

import gc
import sys
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from futurekit import BackendError, Device
from futurekit.backends import BackendBase
from futurekit.core._accelerator import speedups
from futurekit.core._device_plan import DevicePlan, _state_type

pytestmark = pytest.mark.skipif(speedups is None, reason="needs the compiled accelerator")

D0, D1, D2 = Device("logdev", 0), Device("logdev", 1), Device("logdev", 2)


class Buf:
    def __init__(self, device: Any) -> None:
        self.device = device


class Log(BackendBase):
    """Logs each call; ``fail`` names a method that raises instead."""

    device_type = "logdev"

    def __init__(self, fail: str = "", current: Device | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail = fail
        self.current = current
        self.n = 0

    def _log(self, name: str, *args: Any) -> Any:
        self.calls.append((name, *args))
        if name == self.fail:
            raise RuntimeError(f"{name} failed")
        self.n += 1
        return f"{name}#{self.n}"

    def device_count(self) -> int:
        return 3

    def current_stream(self, device: Device) -> Any:
        return self._log("current_stream", device)

    def record_event(self, stream: Any) -> Any:
        return self._log("record_event", stream)

    def wait_event(self, stream: Any, event: Any) -> None:
        self._log("wait_event", stream, event)

    def query_event(self, event: Any) -> bool:
        return True

    def synchronize_event(self, event: Any) -> None:
        self._log("synchronize_event", event)

    def device_of(self, obj: Any) -> Any:
        self._log("device_of", type(obj).__name__)
        return obj.device if type(obj) is Buf else None


class WithCurrent(Log):
    def current_device(self) -> Device | None:
        self._log("current_device")
        return self.current


class WithHint(Log):
    def record_values_on_stream(self, buffers: Any, stream: Any) -> None:
        self._log("record_values", [id(b) for b in buffers], stream)


class WithOrder(WithHint):
    def order_buffer(self, buffer: Any, stream: Any) -> None:
        self._log("order_buffer", id(buffer), stream)


class BadDevice(Log):
    def device_of(self, obj: Any) -> Any:
        return "logdev:0"


BACKENDS: dict[str, Callable[[], Log]] = {
    "plain": Log,
    "current device": lambda: WithCurrent(current=D1),
    "allocator hint": WithHint,
    "order_buffer": WithOrder,
    "bad device_of": BadDevice,
    "current_stream raises": lambda: WithHint(fail="current_stream"),
    "record_event raises": lambda: WithHint(fail="record_event"),
    "current_device raises": lambda: WithCurrent(fail="current_device"),
}

B0, B1, B2 = Buf(D0), Buf(D1), Buf(D2)
VALUES: dict[str, Any] = {
    "one buffer, first device": B0,
    "one buffer, second device": B1,
    "one buffer, foreign device": B2,
    "list on one device": [B0, Buf(D0)],
    "tuple on one device": (B0,),
    "list on two devices": [B0, B1],
    "dict": {"x": B0},
    "no buffer": 5,
}


def _state(backend: Log) -> Any:
    _state_type()  # arms the compiled paths
    return DevicePlan(backend, [D0, D1]).pending


def _outcome(run: Callable[[], Any], backend: Log) -> tuple[Any, ...]:
    try:
        state = run()
    except Exception as exc:
        return ("raised", type(exc), str(exc), backend.calls)
    buffers = [
        (device, [r() if weak else r for r in items], weak) for device, items, weak in state.buffers
    ]
    return (state.plan, state.events, buffers, state.completed_on, backend.calls)


def _python_frames(run: Callable[[], Any]) -> list[str]:
    """The Python functions ``run`` entered (their names), by a profiler."""
    names: list[str] = []

    def prof(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            names.append(frame.f_code.co_name)

    sys.setprofile(prof)
    try:
        run()
    except Exception:
        pass
    finally:
        sys.setprofile(None)
    return names


@pytest.mark.parametrize("value_name", list(VALUES))
@pytest.mark.parametrize("backend_name", list(BACKENDS))
def test_compiled_prepare_matches_the_method(backend_name: str, value_name: str) -> None:
    value = VALUES[value_name]
    py_backend, c_backend = BACKENDS[backend_name](), BACKENDS[backend_name]()
    py_state, c_state = _state(py_backend), _state(c_backend)
    reference = _outcome(lambda: type(py_state).prepare(py_state, value), py_backend)
    compiled = _outcome(lambda: speedups.prepare(c_state, value), c_backend)
    assert compiled[1:] == reference[1:]
    assert (compiled[0] is c_state.plan) == (reference[0] is py_state.plan)
    if backend_name == "bad device_of":
        assert compiled[0] == "raised" and compiled[1] is BackendError


@pytest.mark.parametrize("backend_name", ["plain", "current device", "allocator hint"])
def test_the_common_case_runs_no_python_frame_of_the_core(backend_name: str) -> None:
    state = _state(BACKENDS[backend_name]())
    frames = _python_frames(lambda: speedups.prepare(state, B0))
    assert "prepare" not in frames and "_prepare_other" not in frames
    assert "__init__" not in frames  # the DeviceState was made by storing its fields
    # the other cases go on in the Python _prepare_other, as the method does
    assert "_prepare_other" in _python_frames(lambda: speedups.prepare(state, B1))


def test_a_replaced_method_or_a_subclass_is_called_not_bypassed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = _state(Log())
    state_type = type(state)
    seen: list[Any] = []
    monkeypatch.setattr(state_type, "prepare", lambda self, value: seen.append(value) or self)
    monkeypatch.setattr(state_type, "sync_current", lambda self: seen.append("sync"))
    assert speedups.prepare(state, B0) is state
    speedups.sync_current(state)
    assert seen == [B0, "sync"]
    monkeypatch.undo()

    class Sub(state_type):  # type: ignore[misc, valid-type]
        __slots__ = ()

        def prepare(self, value: Any) -> Any:
            seen.append(("sub", value))
            return self

    sub = Sub(state.plan)
    assert speedups.prepare(sub, B0) is sub
    assert seen[-1] == ("sub", B0)


def _completed(backend: Log, value: Any) -> Any:
    state = _state(backend)
    done = type(state).prepare(state, value)
    backend.calls.clear()
    return done


SYNC_CASES: dict[str, tuple[Callable[[], Log], Callable[[], Any]]] = {
    "one buffer, no hint": (Log, lambda: B0),
    "one buffer, hint": (WithHint, lambda: B0),
    "tuple, hint": (WithHint, lambda: (B0, Buf(D0))),
    "list, hint (weak)": (WithHint, lambda: [B0, Buf(D0), B0]),
    "two devices": (WithHint, lambda: [B0, B1]),
    "no buffer": (WithHint, lambda: 5),
    "wait_event raises": (lambda: WithHint(fail="wait_event"), lambda: B0),
    "current_stream raises": (lambda: WithHint(fail=""), lambda: B0),
}


@pytest.mark.parametrize("case", list(SYNC_CASES))
def test_compiled_sync_current_matches_the_method(case: str) -> None:
    make_backend, make_value = SYNC_CASES[case]
    results = []
    value = make_value()
    for sync in (lambda s: type(s).sync_current(s), speedups.sync_current):
        backend = make_backend()
        done = _completed(backend, value)
        if case == "current_stream raises":
            backend.fail = "current_stream"
        try:
            sync(done)
            results.append(("ok", backend.calls))
        except Exception as exc:
            results.append(("raised", type(exc), str(exc), backend.calls))
    assert results[0] == results[1]


def test_compiled_sync_current_skips_buffers_freed_since_set_result() -> None:
    results = []
    for sync in (lambda s: type(s).sync_current(s), speedups.sync_current):
        backend = WithHint()
        keep = Buf(D0)
        dropped = Buf(D0)
        gone = weakref.ref(dropped)
        done = _completed(backend, [keep, dropped])
        del dropped
        gc.collect()
        assert gone() is None
        sync(done)
        assert backend.calls[-1][1] == [id(keep)]  # the hint for the live buffer only
        results.append([call[:1] + call[2:] for call in backend.calls])  # ids differ
    assert results[0] == results[1]


@pytest.mark.parametrize("field", ["current_stream", "record_event", "record_values"])
def test_a_plan_field_deleted_by_a_backend_call_raises_attribute_error_not_a_crash(
    field: str,
) -> None:
    """A backend whose ``device_of`` deletes a plan field (absurd, but Python allows it)
    gets the AttributeError that the Python method raises, from both paths."""

    class Deleter(WithHint):
        plan: Any = None

        def device_of(self, obj: Any) -> Any:
            if self.plan is not None and hasattr(self.plan, field):
                delattr(self.plan, field)
            return super().device_of(obj)

    for prepare in (lambda s, v: type(s).prepare(s, v), speedups.prepare):
        backend = Deleter()
        state = _state(backend)
        backend.plan = state.plan
        with pytest.raises(AttributeError):
            prepare(state, B0)
