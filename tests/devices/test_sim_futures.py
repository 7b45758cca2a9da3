"""torch's CUDA future tests (rpc_test.py), ported to the simulated device.

Same structure as torch's: a slow producer op on stream A (here ~0.3 s of launched
work instead of ``torch.cuda._sleep``), ``set_result`` with A current, and a
consumer on stream B that must see the producer's write after ``wait()``.
"""

from __future__ import annotations

import threading
import time

import pytest

from futurekit import (
    BackendError,
    BackendUnavailableError,
    CallbackError,
    Device,
    Future,
)
from futurekit.backends import BackendSpec, hookimpl, register
from futurekit.backends._registry import reset
from futurekit.backends.sim import SimBackend
from futurekit.testing import sim

SLOW = 0.3


@pytest.fixture(autouse=True)
def fresh_registry():
    reset()
    yield
    reset()


def slow_add(stream, buffer, amount):
    """The producer op: a slow kernel, then ``buffer += amount`` (on ``stream``)."""
    sim.launch(stream, time.sleep, SLOW)
    sim.launch(stream, lambda: setattr(buffer, "value", buffer.value + amount))


def read_on(stream, fn):
    """Run ``fn()`` on ``stream`` and return its result to the host."""
    seen = []
    sim.launch(stream, lambda: seen.append(fn()))
    stream.synchronize()
    return seen[0]


class BufferWrapper:
    """torch's TensorWrapper: ``__slots__`` holding a buffer and unpicklable members."""

    __slots__ = ("buffer", "event", "lock", "thread")

    def __init__(self, buffer):
        self.buffer = buffer
        self.lock = threading.Lock()
        self.event = threading.Event()
        self.thread = threading.Thread(target=self.event.wait, daemon=True)
        self.thread.start()

    def stop(self):
        self.event.set()
        self.thread.join(10)


# -- construction --------------------------------------------------------------------


def test_sim_future_device_as_str():
    assert Future(devices=["sim:0"]).devices == (Device("sim", 0),)


def test_sim_future_device_as_device():
    assert Future(devices=[Device("sim", 1), "sim:0"]).devices == (
        Device("sim", 0),
        Device("sim", 1),
    )


def test_sim_future_device_without_index():
    with pytest.raises(ValueError, match="Expected devices to have indices, got sim"):
        Future(devices=["sim"])


def test_int_devices_never_resolve_to_sim(monkeypatch):
    # only cpu and sim are registered: sim is a testing backend, so an int device is
    # an error that suggests writing 'sim:0'
    blocked = "futurekit.backends.torch,futurekit.backends.cuda"
    monkeypatch.setenv("FUTUREKIT_DISABLE_PLUGINS", blocked)
    monkeypatch.setenv("FUTUREKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    with pytest.raises(BackendUnavailableError, match="'sim:0'"):
        Future(devices=[0])


# -- extraction (test_cuda_future_can_extract_*) --------------------------------------


def _check_extraction(wrap, unwrap):
    buffer = sim.Buffer("sim:0", 0)
    stream_a, stream_b = sim.Stream("sim:0", "A"), sim.Stream("sim:0", "B")
    with sim.use_stream(stream_a):
        fut = Future(devices=["sim:0"])
        slow_add(stream_a, buffer, 1)
        fut.set_result(wrap(buffer))
    with sim.use_stream(stream_b):
        result = unwrap(fut.wait())
        assert read_on(stream_b, lambda: result.value) == 1
    return fut


def test_sim_future_can_extract_buffer():
    _check_extraction(lambda b: b, lambda v: v)


def test_sim_future_can_extract_list_with_buffer():
    _check_extraction(lambda b: [b], lambda v: v[0])


def test_sim_future_can_extract_custom_class_with_buffer():
    wrappers = []

    def wrap(buffer):
        wrappers.append(BufferWrapper(buffer))
        return wrappers[-1]

    try:
        fut = _check_extraction(wrap, lambda v: v.buffer)
        assert [d for d, _ in fut._dev.events] == [Device("sim", 0)]
    finally:
        for wrapper in wrappers:
            wrapper.stop()


# -- callbacks ------------------------------------------------------------------------


def test_sim_future_callback_reads_value_on_its_pool_stream():
    buffer = sim.Buffer("sim:0", 0)
    stream_a = sim.Stream("sim:0", "A")
    seen = []

    def callback(fut):
        stream = sim.current_stream("sim:0")  # the fresh pool stream, already synchronized
        seen.append((stream, read_on(stream, lambda: fut.value().value)))

    with sim.use_stream(stream_a):
        fut = Future(devices=["sim:0"])
        fut.add_done_callback(callback)
        slow_add(stream_a, buffer, 1)
        fut.set_result(buffer)
    [(stream, value)] = seen
    assert value == 1
    assert stream is not stream_a and stream is not sim.default_stream("sim:0")


def test_sim_future_callback_changes_devices():
    parent_buffer = sim.Buffer("sim:0", 0)
    stream_a = sim.Stream("sim:0", "A")

    def to_sim1(fut):
        source = fut.value()
        target = sim.Buffer("sim:1", 0)
        # a non-blocking copy on the callback's (pool) stream of sim:1
        sim.launch(sim.current_stream("sim:1"), time.sleep, SLOW)
        sim.launch(sim.current_stream("sim:1"), lambda: setattr(target, "value", source.value))
        return target

    with sim.use_stream(stream_a):
        parent = Future(devices=["sim:0", "sim:1"])
        child = parent.then(to_sim1)
        slow_add(stream_a, parent_buffer, 1)
        parent.set_result(parent_buffer)
    assert child.devices == parent.devices
    stream_b = sim.Stream("sim:1", "B")
    with sim.use_stream(stream_b):
        result = child.wait()
        assert result.device == Device("sim", 1)
        assert read_on(stream_b, lambda: result.value) == 1


def test_sim_future_value_on_bad_device():
    buffer = sim.Buffer("sim:0", 0)
    stream_a = sim.Stream("sim:0", "A")
    ran = []

    def callback(fut):
        ran.append(True)
        target = sim.Buffer("sim:1", 1)
        return target

    with sim.use_stream(stream_a):
        parent = Future(devices=["sim:1"])
        child = parent.then(callback)
        slow_add(stream_a, buffer, 1)
        parent.set_result(buffer)  # does not raise
    message = (
        r"The result contained tensors residing on device\(s\) sim:0 which are not "
        r"among the expected device\(s\) sim:1"
    )
    with pytest.raises(ValueError, match=message):
        parent.wait()
    with pytest.raises(ValueError, match=message):
        parent.value()
    assert ran == [True]  # the callback still ran and, not touching the parent, succeeded
    stream_b = sim.Stream("sim:1", "B")
    with sim.use_stream(stream_b):
        result = child.wait()
        assert read_on(stream_b, lambda: result.value) == 1


def test_sim_future_modify_buffer_inplace():
    buffer = sim.Buffer("sim:0", 0)
    fut = Future(devices=["sim:0"])
    fut.set_result(buffer)
    buffer.value = 5  # undefined behaviour in torch: it must only not crash
    assert fut.wait().value == 5


def test_sim_future_replace_buffer():
    buffer = sim.Buffer("sim:0", 0)
    value = [buffer]
    fut = Future(devices=["sim:0"])
    fut.set_result(value)
    value[0] = sim.Buffer("sim:0", 1)  # replace, and free the original
    del buffer
    assert fut.wait()[0].value == 1


def test_sim_future_is_ready_and_synchronize():
    buffer = sim.Buffer("sim:0", 0)
    stream_a = sim.Stream("sim:0", "A")
    with sim.use_stream(stream_a):
        fut = Future(devices=["sim:0"])
        slow_add(stream_a, buffer, 1)
        fut.set_result(buffer)
    assert fut.done() and not fut.is_ready()  # torch's done() ignores device work
    fut.synchronize()
    assert fut.is_ready() and buffer.value == 1


# -- backend errors and selection ------------------------------------------------------


class _RecordFails(SimBackend):
    error = RuntimeError("device lost")

    def record_event(self, stream):
        raise self.error


class _Unavailable(SimBackend):
    def unavailable_reason(self):
        return "the simulator is switched off"


class _Plugin:
    @hookimpl
    def futurekit_device_backends(self):
        yield BackendSpec(name="sim-broken", device_type="sim", load=_RecordFails, priority=-1)
        yield BackendSpec(
            name="sim-off", device_type="sim", load=_Unavailable, priority=99, extra="simoff"
        )


def test_backend_error_during_set_result_completes_the_future_with_it():
    register(_Plugin(), name="sim-test-plugin")
    fut = Future(devices=["sim:0"], backend="sim-broken")
    ran = []
    fut.add_done_callback(lambda f: ran.append("cb"))
    child = fut.then(lambda f: f.value())
    fut.set_result(sim.Buffer("sim:0", 1))  # returns normally
    with pytest.raises(RuntimeError) as info:
        fut.wait()
    assert info.value is _RecordFails.error
    assert ran == ["cb"]
    err = child.exception(timeout=10)
    assert isinstance(err, CallbackError) and err.__cause__ is _RecordFails.error


def test_selection_skips_unavailable_backends_and_honours_overrides(monkeypatch):
    register(_Plugin(), name="sim-test-plugin")
    # sim-off has the highest priority but is unavailable: sim (priority 0) wins
    assert type(Future(devices=["sim:0"])._dev.backend) is SimBackend
    assert isinstance(Future(devices=["sim:0"], backend="sim-broken")._dev.backend, _RecordFails)
    with pytest.raises(BackendUnavailableError) as info:
        Future(devices=["sim:0"], backend="sim-off")
    assert "the simulator is switched off" in str(info.value)
    assert "futurekit[simoff]" in str(info.value)
    monkeypatch.setenv("FUTUREKIT_BACKEND_SIM", "sim-broken")
    # read when the type's backend is chosen (once); a reset chooses again
    assert type(Future(devices=["sim:0"])._dev.backend) is SimBackend
    reset()
    register(_Plugin(), name="sim-test-plugin")
    assert isinstance(Future(devices=["sim:0"])._dev.backend, _RecordFails)


def test_selection_errors_name_the_candidates(monkeypatch):
    with pytest.raises(
        BackendError, match=r"Backend 'nope' was requested.*the backends for 'sim' \('sim'\)"
    ):
        Future(devices=["sim:0"], backend="nope")
    with pytest.raises(BackendError, match="serves 'cpu', not 'sim'"):
        Future(devices=["sim:0"], backend="cpu")
    monkeypatch.setenv("FUTUREKIT_BACKEND_SIM", "nope")
    with pytest.raises(BackendError, match="'nope' was requested"):
        Future(devices=["sim:0"])
    with pytest.raises(BackendUnavailableError, match=r"Unknown device type 'foo'.*sim"):
        Future(devices=["foo:0"])


def test_sim_device_count_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("FUTUREKIT_SIM_DEVICES", "4")
    backend = SimBackend()
    assert backend.device_count() == 4
    assert backend.current_stream(Device("sim", 3)).device == Device("sim", 3)
