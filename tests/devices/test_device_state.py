"""Device indices, the current device in callbacks, and host synchronization (sim device)."""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from futurekit import BackendError, Device, Future, InvalidDeviceError
from futurekit.backends import BackendBase, BackendSpec, _registry, hookimpl
from futurekit.backends.cpu import CpuBackend
from futurekit.core._device_plan import DevicePlan
from futurekit.core._device_state import DeviceState
from futurekit.testing import sim

SLOW = 0.2


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    _registry.reset()
    yield
    _registry.reset()


# -- device indices are checked when the future is made -----------------------------------
def test_sim_index_beyond_the_device_count_is_refused() -> None:
    assert sim.device_count() == 2
    message = r"Device index value 5 is out of index range \[0, 2\)"
    with pytest.raises(InvalidDeviceError, match=message):
        Future(devices=["sim:5"])
    with pytest.raises(ValueError, match="sim:2 does not exist"):
        Future(devices=["sim:0", "sim:2"])
    with pytest.raises(RuntimeError):  # torch raises RuntimeError; InvalidDeviceError is both
        Future(devices=[Device("sim", 2)])
    assert Future(devices=["sim:1", "sim:0"]).devices == (Device("sim", 0), Device("sim", 1))


def test_cpu_indices_stay_accepted_as_in_torch() -> None:
    # torch accepts "cpu:1" and makes a CPU future; so does futurekit (no backend)
    for devices in (["cpu"], ["cpu:0"], ["cpu:1"]):
        fut = Future(devices=devices)
        assert fut.devices == ()
        fut.set_result(1)
        assert fut.wait() == 1


class _Fake(CpuBackend):
    """The cpu backend's no-op methods, under a made-up type with a given device count."""

    device_type = "fake"

    def __init__(self, count: Any) -> None:
        self.count = count

    def device_count(self) -> Any:
        return self.count

    def __repr__(self) -> str:
        return "<fake backend>"


def _register(backend: _Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUTUREKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    _registry.reset()

    class Plugin:
        @hookimpl
        def futurekit_device_backends(self) -> Iterator[BackendSpec]:
            yield BackendSpec(name="fake", device_type="fake", load=lambda: backend, testing=True)

    _registry.register(Plugin())


def test_fake_backend_device_count_is_enforced(monkeypatch: pytest.MonkeyPatch) -> None:
    _register(_Fake(3), monkeypatch)
    assert Future(devices=["fake:2"]).devices == (Device("fake", 2),)
    with pytest.raises(
        InvalidDeviceError,
        match=r"Device index value 3 is out of index range \[0, 3\): fake:3 does not exist "
        r"\(backend 'fake' has 3 fake devices\)",
    ):
        Future(devices=["fake:3"])


@pytest.mark.parametrize("count", ["2", None, 1.5, True, -1])
def test_a_backend_with_a_bad_device_count_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, count: Any
) -> None:
    from futurekit.backends import PluginLoadWarning

    _register(_Fake(count), monkeypatch)
    with (
        pytest.warns(PluginLoadWarning, match=r"backend 'fake' failed.*device_count\(\)"),
        pytest.raises(BackendError, match=r"device_count\(\) returned"),
    ):
        Future(devices=["fake:0"])  # refused when the backend is loaded, and warned


def test_base_backend_default_is_one_device(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = _Fake(0)
    del backend.count
    backend.device_count = BackendBase.device_count.__get__(backend)  # type: ignore[method-assign]
    _register(backend, monkeypatch)
    Future(devices=["fake:0"])
    with pytest.raises(InvalidDeviceError, match=r"\[0, 1\)"):
        Future(devices=["fake:1"])


# -- the current device in callbacks ----------------------------------------------------
def test_sim_threads_have_their_own_current_device() -> None:
    assert sim.current_device() == Device("sim", 0)
    seen: list[Device] = []
    with sim.use_device("sim:1"):
        assert sim.current_device() == Device("sim", 1)
        t = threading.Thread(target=lambda: seen.append(sim.current_device()))
        t.start()
        t.join()
    assert seen == [Device("sim", 0)]
    assert sim.current_device() == Device("sim", 0)
    with sim.use_stream(sim.Stream("sim:1")):  # as torch.cuda.stream: its device too
        assert sim.current_device() == Device("sim", 1)
    with pytest.raises(InvalidDeviceError):
        sim.set_device("sim:7")


def _completed_on_sim1(devices: list[str]) -> Future[Any]:
    fut: Future[Any] = Future(devices=devices)
    return fut


def test_then_on_an_executor_thread_runs_with_the_completion_device() -> None:
    fut = _completed_on_sim1(["sim:1"])
    with cf.ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: None).result()  # the worker exists; its device is sim:0
        child = fut.then(lambda f: sim.Buffer(sim.current_device(), f.value()), executor=pool)
        with sim.use_device("sim:1"):
            fut.set_result("x")
        made = child.wait()
        assert pool.submit(sim.current_device).result() == Device("sim", 0)  # restored
    assert made.device == Device("sim", 1)


def test_add_done_callback_and_inline_then_see_the_completion_device() -> None:
    fut: Future[Any] = Future(devices=["sim:0", "sim:1"])
    seen: list[Device] = []
    fut.add_done_callback(lambda f: seen.append(sim.current_device()))
    child = fut.then(lambda f: sim.current_device())
    done = threading.Event()

    def complete() -> None:
        with sim.use_device("sim:1"):
            fut.set_result(None)
        done.set()

    threading.Thread(target=complete).start()
    assert done.wait(10)
    assert seen == [Device("sim", 1)]
    assert child.wait() == Device("sim", 1)
    # registered after completion, in a thread whose device is sim:0: still sim:1
    assert fut.then(lambda f: sim.current_device()).wait() == Device("sim", 1)
    assert sim.current_device() == Device("sim", 0)


def test_a_failed_future_keeps_the_callers_device() -> None:
    # torch records the device only for a value; an error leaves it unset
    fut: Future[Any] = Future(devices=["sim:1"])
    with cf.ThreadPoolExecutor(1) as pool:
        child = fut.then(lambda f: sim.current_device(), executor=pool)
        with sim.use_device("sim:1"):
            fut.set_exception(ValueError("boom"))
        assert child.wait() == Device("sim", 0)


def test_recorded_events_carry_the_completion_device() -> None:
    fut: Future[Any] = Future(devices=["sim:1"])
    with sim.use_device("sim:1"):
        fut.set_result(sim.Buffer("sim:1", 1))
    dev = fut._dev
    assert isinstance(dev, DeviceState)
    assert dev.completed_on == Device("sim", 1)
    assert [d for d, _ in dev.events] == [Device("sim", 1)]


# -- host synchronization ----------------------------------------------------------------
def _slow_future() -> tuple[Future[Any], sim.Buffer]:
    buf = sim.Buffer("sim:0", "stale")
    producer = sim.Stream("sim:0")
    with sim.use_stream(producer):
        sim.launch(producer, time.sleep, SLOW)
        sim.launch(producer, setattr, buf, "value", "fresh")
        fut: Future[Any] = Future(devices=["sim:0"])
        fut.set_result({"out": buf})
    return fut, buf


def test_synchronize_lets_the_host_read_the_value() -> None:
    fut, buf = _slow_future()
    assert not fut.is_ready()
    fut.synchronize()
    assert fut.is_ready() and buf.value == "fresh"


def test_call_when_ready_does_not_block_and_runs_after_the_work() -> None:
    fut, buf = _slow_future()
    dev = fut._dev
    assert dev is not None
    seen: list[Any] = []
    ran = threading.Event()

    def when_ready(error: BaseException | None) -> None:
        seen.append((error, buf.value))
        ran.set()

    dev.call_when_ready(when_ready)
    assert seen == []  # the slow work is still running: not called inline
    assert ran.wait(10)
    assert seen == [(None, "fresh")]


def test_call_when_ready_is_inline_when_nothing_is_pending() -> None:
    fut: Future[Any] = Future(devices=["sim:0"])
    fut.set_result("no buffers")
    dev = fut._dev
    assert dev is not None
    seen: list[Any] = []
    dev.call_when_ready(seen.append)
    assert seen == [None]


def test_call_when_ready_hands_over_a_synchronize_error() -> None:
    fut, _ = _slow_future()
    dev = fut._dev
    assert dev is not None
    boom = BackendError("device lost")

    class Failing:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def query_event(self, event: Any) -> bool:
            return False

        def synchronize_event(self, event: Any) -> None:
            raise boom

    dev = DeviceState(DevicePlan(Failing(dev.backend), dev.devices), dev.events)
    got: list[Any] = []
    ran = threading.Event()
    dev.call_when_ready(lambda e: (got.append(e), ran.set()))
    assert ran.wait(10)
    assert got == [boom]


def test_torch_streams_changes_nothing_on_sim() -> None:
    fut: Future[Any] = Future(devices=["sim:0"])
    dev = fut._dev
    assert dev is not None
    before = sim.current_stream("sim:0")
    with dev.torch_streams():
        assert sim.current_stream("sim:0") is before
