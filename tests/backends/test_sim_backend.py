"""The sim backend: protocol behaviour and genuine asynchrony.

Ordering is made deterministic with gates (``threading.Event``) held shut on a
producer stream instead of sleeps: while the gate is shut, the producer's work
provably has not run.
"""

from __future__ import annotations

import logging
import threading

import pytest

from futurekit import BackendError, Device, Future, InvalidDeviceError
from futurekit.backends import get_backend
from futurekit.backends import sim as sim_backend
from futurekit.backends._registry import get_spec, reset
from futurekit.backends.sim import POOL_SIZE, SimBackend, SimEvent, SimStream
from futurekit.testing import sim

S0, S1 = Device("sim", 0), Device("sim", 1)


@pytest.fixture(autouse=True)
def fresh_registry():
    reset()
    yield
    reset()


@pytest.fixture
def gate():
    """A shut gate, opened at the end of the test at the latest (never a hang)."""
    event = threading.Event()
    failsafe = threading.Timer(10.0, event.set)
    failsafe.daemon = True
    failsafe.start()
    yield event
    event.set()
    failsafe.cancel()


def read_on(stream, buffer):
    seen = []
    sim.launch(stream, lambda: seen.append(buffer.value))
    stream.synchronize()
    return seen[0]


# -- registration and devices ------------------------------------------------------------


def test_registered_as_testing_backend_always_available():
    spec = get_spec("sim")  # (available_backends() would import torch: slow)
    assert spec.device_type == "sim" and spec.testing is True
    assert spec.extra is None
    backend = get_backend("sim")
    assert backend.device_count() == 2
    assert backend is sim_backend.get_backend()
    assert backend.is_available() and backend.unavailable_reason() is None


def test_device_count_from_environment(monkeypatch):
    monkeypatch.setenv("FUTUREKIT_SIM_DEVICES", "3")
    assert SimBackend().device_count() == 3
    assert SimBackend(5).device_count() == 5


@pytest.mark.parametrize("bad", ["0", "-1", "two"])
def test_bad_device_count_environment_is_a_clear_error(monkeypatch, bad):
    monkeypatch.setenv("FUTUREKIT_SIM_DEVICES", bad)
    with pytest.raises(ValueError, match="FUTUREKIT_SIM_DEVICES must be a positive integer"):
        SimBackend()


def test_device_beyond_count_is_a_clear_error():
    backend = sim_backend.get_backend()
    with pytest.raises(InvalidDeviceError, match=r"sim:2 does not exist: there are 2 simulated"):
        backend.current_stream(Device("sim", 2))
    with pytest.raises(InvalidDeviceError, match="FUTUREKIT_SIM_DEVICES"):
        sim.Stream("sim:7")
    with pytest.raises(InvalidDeviceError, match="sim:9 does not exist"):
        sim.Buffer("sim:9", 0)
    with pytest.raises(InvalidDeviceError, match="Expected a simulated device"):
        sim.Stream("cuda:0")
    with pytest.raises(InvalidDeviceError, match="Expected a simulated device"):
        sim.Stream("sim")
    with pytest.raises(TypeError, match="'sim:0'"):
        sim.Stream(0)


def test_streams_know_their_device_and_devices_may_be_strings_or_devices():
    assert sim.Stream("sim:1").device == S1
    assert sim.Stream(S0).device == S0
    assert sim.Buffer(S1, 3).device == S1
    assert sim.current_stream("sim:1").device == S1
    assert sim.device_count() == 2


def test_device_of_reports_buffers_only():
    backend = sim_backend.get_backend()
    assert backend.device_of(sim.Buffer("sim:1", None)) == S1
    for other in (None, 1, "sim:0", [sim.Buffer("sim:0")], S0, object()):
        assert backend.device_of(other) is None


# -- streams ------------------------------------------------------------------------------


def test_current_stream_defaults_to_default_stream_and_is_per_thread():
    backend = sim_backend.get_backend()
    default = sim.default_stream("sim:0")
    assert sim.current_stream("sim:0") is default
    mine = sim.Stream("sim:0")
    seen = []
    with sim.use_stream(mine) as used:
        assert used is mine
        assert backend.current_stream(S0) is mine
        assert backend.current_stream(S1) is sim.default_stream("sim:1")
        thread = threading.Thread(target=lambda: seen.append(backend.current_stream(S0)))
        thread.start()
        thread.join(10)
    assert seen == [default]
    assert sim.current_stream("sim:0") is default


def test_use_streams_nests_and_restores_even_after_errors():
    backend = sim_backend.get_backend()
    a, b, c = sim.Stream("sim:0"), sim.Stream("sim:1"), sim.Stream("sim:0")
    with backend.use_streams([a, b]):
        with backend.use_streams([c]):
            assert backend.current_stream(S0) is c
            assert backend.current_stream(S1) is b
        assert backend.current_stream(S0) is a
    with pytest.raises(KeyError), backend.use_streams([a]):
        raise KeyError
    assert backend.current_stream(S0) is sim.default_stream(S0)


def test_pool_is_round_robin_per_device():
    backend = sim_backend.get_backend()
    streams = [backend.stream_from_pool(S1) for _ in range(POOL_SIZE * 2)]
    assert all(s.device == S1 for s in streams)
    assert len(set(map(id, streams))) == POOL_SIZE
    assert streams[:POOL_SIZE] == streams[POOL_SIZE:]
    assert sim.default_stream(S1) not in streams


def test_launched_work_runs_later_in_fifo_order(gate):
    stream = sim.Stream("sim:0")
    order = []
    sim.launch(stream, gate.wait)
    for i in range(5):
        sim.launch(stream, order.append, i)
    assert order == [] and not stream.query()  # the host went on; the work waits
    gate.set()
    stream.synchronize()
    assert order == [0, 1, 2, 3, 4] and stream.query()


def test_worker_restarts_after_idling(monkeypatch):
    monkeypatch.setattr(sim_backend, "_IDLE_S", 0.0)
    stream = sim.Stream("sim:0")
    seen = []
    for i in range(3):
        sim.launch(stream, seen.append, i)
        stream.synchronize()
    assert seen == [0, 1, 2]


def test_errors_in_launched_work_are_logged_and_raised_by_synchronize(caplog):
    stream = sim.Stream("sim:0")
    boom = ZeroDivisionError("kernel fault")
    after = []

    def fail():
        raise boom

    with caplog.at_level(logging.ERROR, logger="futurekit"):
        sim.launch(stream, fail)
        sim.launch(stream, after.append, 1)
        with pytest.raises(BackendError, match="kernel fault") as info:
            stream.synchronize()
    assert info.value.__cause__ is boom
    assert after == [1]  # the stream keeps going
    assert "kernel fault" in caplog.text
    stream.synchronize()  # the error was reported once


def test_synchronize_from_the_stream_itself_is_refused():
    stream = sim.Stream("sim:0")
    errors = []

    def inner():
        try:
            stream.synchronize()
        except BackendError as exc:
            errors.append(exc)

    sim.launch(stream, inner)
    stream.synchronize()
    assert len(errors) == 1 and "wait for itself" in str(errors[0])


def test_launch_and_use_stream_validate_arguments():
    with pytest.raises(TypeError, match="sim Stream"):
        sim.launch("sim:0", print)
    with pytest.raises(TypeError, match="callable"):
        sim.launch(sim.Stream("sim:0"), 42)
    with pytest.raises(TypeError, match="sim Stream"), sim.use_stream(object()):
        pass
    backend = sim_backend.get_backend()
    with pytest.raises(TypeError, match="sim stream"):
        backend.record_event("stream")
    with pytest.raises(TypeError, match="sim event"):
        backend.query_event(object())
    with pytest.raises(TypeError, match="sim stream"), backend.use_streams([None]):
        pass


# -- events -------------------------------------------------------------------------------


def test_events_record_query_and_synchronize(gate):
    backend = sim_backend.get_backend()
    stream = sim.Stream("sim:0")
    sim.launch(stream, gate.wait)
    event = backend.record_event(stream)
    assert isinstance(event, SimEvent) and event.device == S0
    assert backend.query_event(event) is False
    gate.set()
    backend.synchronize_event(event)
    assert backend.query_event(event) is True


def test_wait_event_orders_the_stream_without_blocking_the_host(gate):
    backend = sim_backend.get_backend()
    producer, consumer = sim.Stream("sim:0", "producer"), sim.Stream("sim:0", "consumer")
    buffer = sim.Buffer("sim:0", 0)
    sim.launch(producer, gate.wait)
    sim.launch(producer, setattr, buffer, "value", 1)
    event = backend.record_event(producer)
    backend.wait_event(consumer, event)  # returns although the event is pending
    seen = []
    sim.launch(consumer, lambda: seen.append(buffer.value))
    assert not consumer.query() and seen == []
    gate.set()
    consumer.synchronize()
    assert seen == [1]


def test_waiting_on_a_completed_event_enqueues_nothing():
    backend = sim_backend.get_backend()
    stream = sim.Stream("sim:1")
    event = stream.record()
    event.synchronize()
    other = sim.Stream("sim:1")
    backend.wait_event(other, event)
    assert other.query()


# -- asynchrony through futures ----------------------------------------------------------


def test_consumer_sees_stale_data_without_wait_and_the_write_after_wait(gate):
    buffer = sim.Buffer("sim:0", 0)
    producer, consumer = sim.Stream("sim:0"), sim.Stream("sim:0")
    with sim.use_stream(producer):
        sim.launch(producer, gate.wait)  # a slow kernel
        sim.launch(producer, setattr, buffer, "value", 1)
        fut = Future(devices=["sim:0"])
        fut.set_result(buffer)
    assert fut.done() and not fut.is_ready()

    # value() does no synchronization: the consumer races ahead of the producer
    assert fut.value() is buffer
    assert read_on(consumer, buffer) == 0

    with sim.use_stream(consumer):
        assert fut.wait() is buffer  # returns to the host at once ...
        assert not fut.is_ready()  # ... while the producer is still held
        seen = []
        sim.launch(consumer, lambda: seen.append(buffer.value))
    gate.set()
    consumer.synchronize()
    assert seen == [1]
    fut.synchronize()
    assert fut.is_ready()


def test_set_result_records_on_the_current_stream_of_each_used_device(gate):
    a0, a1 = sim.Stream("sim:0"), sim.Stream("sim:1")
    sim.launch(a1, gate.wait)
    backend = sim_backend.get_backend()
    with backend.use_streams([a0, a1]):
        fut = Future(devices=["sim:0", "sim:1"])
        fut.set_result({"x": sim.Buffer("sim:1", 1)})
    events = fut._dev.events
    assert [d for d, _ in events] == [S1]  # only the used device
    assert not fut.is_ready()
    gate.set()
    fut.synchronize()
    assert fut.is_ready()


def test_streams_are_sim_streams():
    assert isinstance(sim.Stream("sim:0"), SimStream)
    assert isinstance(sim.current_stream("sim:0"), SimStream)
    assert sim.Event is SimEvent
    assert "sim:0" in repr(sim.Stream("sim:0", "mine"))
    assert repr(sim.Buffer("sim:1", 2)) == "Buffer('sim:1', 2)"
