"""check_backend: passes on good backends, fails clearly on broken ones."""

from __future__ import annotations

import contextlib
import threading
import types

import pytest

from futurekit import Device
from futurekit.backends._registry import reset
from futurekit.backends.sim import SimBackend, get_backend
from futurekit.core import _device_state
from futurekit.testing import BufferOps, check_backend

ALL_CHECKS = [
    "protocol",
    "availability",
    "device_of",
    "streams",
    "use_streams",
    "events",
    "event ordering",
    "set_result and wait",
    "callback streams",
    "bad device",
    "failure injection",
    "is_ready and synchronize",
    "data ordering",
]


@pytest.fixture(autouse=True)
def fresh_registry():
    reset()
    yield
    reset()


def fails(check, backend, *args, **kwargs):
    """Run check_backend and return the AssertionError, checking it names ``check``."""
    with pytest.raises(AssertionError) as info:
        check_backend(backend, *args, **kwargs)
    message = str(info.value)
    assert message.startswith("check_backend(")
    assert f"check {check!r} failed" in message, message
    return message


# -- passing ------------------------------------------------------------------------------


def test_sim_passes_every_check_by_name():
    assert check_backend("sim") == ALL_CHECKS


def test_sim_passes_with_an_object_and_chosen_devices():
    assert check_backend(SimBackend(3), ["sim:2", Device("sim", 0)]) == ALL_CHECKS
    assert check_backend(get_backend(), "sim:1") == ALL_CHECKS
    assert check_backend(get_backend(), [1]) == ALL_CHECKS  # ints are indices


def test_cpu_passes_without_data_checks():
    ran = check_backend("cpu")
    assert "data ordering" not in ran and "callback streams" in ran


# -- broken backends ---------------------------------------------------------------------


def test_missing_method_fails_protocol():
    sim = get_backend()
    partial = types.SimpleNamespace(
        device_type="sim",
        **{
            name: getattr(sim, name)
            for name in ("is_available", "device_count", "current_stream", "record_event")
        },
    )
    message = fails("protocol", partial)
    assert "query_event" in message and "use_streams" in message


def test_protocol_check_and_registry_share_one_list():
    from futurekit.backends._spec import REQUIRED_METHODS, protocol_problems

    bare = types.SimpleNamespace(device_type="sim")
    message = fails("protocol", bare)
    assert message.endswith(
        "lacks these methods of the Backend protocol: "
        + ", ".join(REQUIRED_METHODS)
        + " (implement current_stream(device) -> stream; record_event(stream) -> event; "
        "wait_event(stream, event) -> None; query_event(event) -> bool; "
        "synchronize_event(event) -> None; device_of(obj) -> Device | None in SimpleNamespace; "
        "and subclass futurekit.backends.BackendBase for the defaults of is_available, "
        "device_count, stream_from_pool, use_streams)"
    )
    # the registry runs the very same check when it loads a backend
    assert protocol_problems(bare, "sim")[0] in message
    assert protocol_problems(get_backend(), "sim") == []


def test_protocol_check_needs_a_device_type():
    sim = get_backend()
    methods = {name: getattr(sim, name) for name in dir(sim) if not name.startswith("_")}
    methods.pop("device_type")
    assert "device_type must be a non-empty str such as 'mydev', got None" in fails(
        "protocol", types.SimpleNamespace(**methods)
    )


def test_unavailable_backend_fails_availability_with_its_reason():
    class Off(SimBackend):
        def is_available(self):
            return False

        def unavailable_reason(self):
            return "simulator unplugged"

    assert "simulator unplugged" in fails("availability", Off())


def test_device_of_claiming_everything_fails():
    class Greedy(SimBackend):
        def device_of(self, obj):
            return Device("sim", 0)

    assert "must be None for non-buffers" in fails("device_of", Greedy())


def test_device_of_raising_on_foreign_objects_fails():
    class Picky(SimBackend):
        def device_of(self, obj):
            return obj.device

    assert "AttributeError" in fails("device_of", Picky())


def test_use_streams_that_does_nothing_fails():
    class Ignores(SimBackend):
        @contextlib.contextmanager
        def use_streams(self, streams):
            yield

    assert "inside use_streams()" in fails("use_streams", Ignores())


def test_use_streams_that_does_not_restore_fails():
    class Sticky(SimBackend):
        @contextlib.contextmanager
        def use_streams(self, streams):
            current = self._current()
            for stream in streams:
                current[stream.device.index] = stream
            yield

    fails("use_streams", Sticky())


def test_use_streams_shared_between_threads_fails():
    class Global(SimBackend):
        def __init__(self):
            super().__init__()
            self._shared = {}

        def _current(self):
            return self._shared

    assert "another thread" in fails("use_streams", Global())


def test_wait_event_that_does_not_wait_fails_event_ordering():
    class NoWait(SimBackend):
        def wait_event(self, stream, event):
            pass

    assert "read 0, not 1" in fails("event ordering", NoWait())


def test_record_event_that_blocks_the_host_fails_event_ordering():
    class Blocking(SimBackend):
        def record_event(self, stream):
            event = super().record_event(stream)
            event.synchronize()
            return event

    assert "blocks the host" in fails("event ordering", Blocking())


def test_hanging_synchronize_is_reported_as_a_hang():
    release = threading.Event()

    class Hangs(SimBackend):
        def synchronize_event(self, event):
            release.wait(30)

    try:
        message = fails("events", Hangs(), timeout=0.5)
    finally:
        release.set()
    assert "did not finish within 0.5 s" in message


def test_core_not_syncing_current_streams_fails(monkeypatch):
    monkeypatch.setattr(_device_state.DeviceState, "sync_current", lambda self: None)
    assert "wait() did not make the current stream" in fails("set_result and wait", "sim")


def test_core_running_callbacks_without_pool_streams_fails(monkeypatch):
    # the core enters and leaves a callback's streams with this pair: it does nothing
    monkeypatch.setattr(_device_state.DeviceState, "enter_callback", lambda self: None)
    monkeypatch.setattr(_device_state.DeviceState, "exit_callback", lambda self, token: None)
    message = fails("callback streams", "sim")
    assert "pool stream" in message


def test_core_swallowing_backend_errors_fails(monkeypatch):
    real = _device_state.DeviceState.prepare

    def prepare(self, value):
        try:
            return real(self, value)
        except RuntimeError:
            return self  # the error swallowed: no events

    monkeypatch.setattr(_device_state.DeviceState, "prepare", prepare)
    fails("failure injection", "sim")


def test_the_failure_keeps_the_original_error_as_cause():
    class NoWait(SimBackend):
        def wait_event(self, stream, event):
            pass

    with pytest.raises(AssertionError) as info:
        check_backend(NoWait())
    assert isinstance(info.value.__cause__, AssertionError)


# -- ops and arguments -------------------------------------------------------------------


def test_custom_ops_are_used():
    calls = []
    sim_backend = get_backend()
    from futurekit.testing._ops import sim_ops

    base = sim_ops()

    def make_buffer(device):
        calls.append(device)
        return base.make_buffer(device)

    ops = BufferOps(make_buffer=make_buffer, write=base.write, read=base.read, delay=0.2)
    assert check_backend(sim_backend, ops=ops) == ALL_CHECKS
    assert Device("sim", 1) in calls


def test_make_buffer_that_the_backend_does_not_recognise_fails_device_of():
    made = []

    def make_buffer(device):
        made.append(device)
        return object()  # not a buffer of the cpu backend

    message = fails("device_of", "cpu", make_buffer=make_buffer)
    assert made == [Device("cpu", 0)]
    assert "a buffer made on cpu:0 returned None" in message


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="no backend or device type is called 'nope'"):
        check_backend("nope")
    with pytest.raises(TypeError, match="got None"):
        check_backend(None)
    with pytest.raises(ValueError, match="not a 'sim' device"):
        check_backend("sim", ["cuda:0"])
    with pytest.raises(ValueError, match="device_count\\(\\) == 2"):
        check_backend("sim", ["sim:5"])
    with pytest.raises(TypeError, match="BufferOps"):
        check_backend("sim", ops=object())
    with pytest.raises(TypeError, match="make_buffer must be callable"):
        check_backend("sim", make_buffer=3)
    with pytest.raises(ValueError, match="timeout"):
        check_backend("sim", timeout=0)
