"""Unit tests of the cuda-python backend, and of the choice between it and torch.

Nothing here runs on a GPU. Fakes stand in for driver-level objects only where the
logic under test is ours (pointer lookup, stream bookkeeping, event reuse); they
never pretend that device work ran.
"""

from __future__ import annotations

import concurrent.futures as cf
import gc
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import futurekit
from futurekit.backends import _cuda_driver, _registry
from futurekit.backends import cuda as cuda_mod
from futurekit.backends._cuda_driver import NOT_INSTALLED, CudaStream
from futurekit.backends.cuda import CudaPythonBackend
from futurekit.backends.torch import TorchBackend
from futurekit.core._devices import Device
from futurekit.core._errors import BackendError, BackendUnavailableError

from . import fake_cuda

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support:UserWarning")


def _driver_present() -> bool:
    return CudaPythonBackend().is_available()


no_gpu = pytest.mark.skipif(_driver_present(), reason="this machine has a CUDA driver and GPU")


# -- availability -----------------------------------------------------------------------
@no_gpu
def test_unavailable_here_with_reason() -> None:
    backend = CudaPythonBackend()
    assert backend.is_available() is False
    assert backend.device_count() == 0
    reason = backend.unavailable_reason()
    assert reason
    assert "driver" in reason or "no CUDA device" in reason or "not installed" in reason


@pytest.mark.parametrize("module", ["cuda.core", "cuda.bindings", "cuda"])
def test_without_cuda_python(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    backend = CudaPythonBackend()
    assert not backend.is_available()
    assert backend.unavailable_reason() == NOT_INSTALLED
    assert "futurekit[cuda]" in NOT_INSTALLED
    with pytest.raises(BackendUnavailableError, match=r"futurekit\[cuda\]"):
        backend.current_stream(Device("cuda", 0))


@no_gpu
def test_module_functions_raise_without_driver() -> None:
    with pytest.raises(BackendUnavailableError, match="cuda-python backend is unavailable"):
        cuda_mod.current_stream(0)
    with pytest.raises(BackendUnavailableError), cuda_mod.use_stream(object()):
        pass


class _Result(int):
    @property
    def name(self) -> str:
        return {0: "CUDA_SUCCESS", 100: "CUDA_ERROR_NO_DEVICE", 999: "CUDA_ERROR_UNKNOWN"}[self]


class _FakeDriver:
    class CUresult:
        CUDA_SUCCESS = _Result(0)
        CUDA_ERROR_NO_DEVICE = _Result(100)

    def __init__(self, init: Any = 0, count: int = 1) -> None:
        self.init, self.count = init, count

    def cuInit(self, flags: int) -> tuple[Any]:
        if isinstance(self.init, BaseException):
            raise self.init
        return (_Result(self.init),)

    def cuDeviceGetCount(self) -> tuple[Any, int]:
        return (_Result(0), self.count)


class _FakeCoreVersion:
    def __init__(self, version: str) -> None:
        self.__version__ = version


@pytest.mark.parametrize(
    ("driver", "version", "expected"),
    [
        (_FakeDriver(init=RuntimeError("libcuda.so not found")), "1.2.2", "no NVIDIA driver"),
        (_FakeDriver(init=100), "1.2.2", "no CUDA device found (cuInit returned CUDA_ERROR"),
        (_FakeDriver(init=999), "1.2.2", "failed to initialize (cuInit returned CUDA_ERROR_UNK"),
        (_FakeDriver(count=0), "1.2.2", "no CUDA device found"),
        (_FakeDriver(), "0.5.0", "cuda-core 0.5.0 is too old"),
        (_FakeDriver(init=ValueError("odd")), "1.2.2", "probing the CUDA driver failed"),
    ],
)
def test_probe_driver_reasons(driver: Any, version: str, expected: str) -> None:
    reason, count = _cuda_driver.probe_driver(_FakeCoreVersion(version), driver)
    assert reason is not None and expected in reason
    assert count == 0


def test_probe_driver_ok() -> None:
    assert _cuda_driver.probe_driver(_FakeCoreVersion("1.2.2"), _FakeDriver(count=2)) == (None, 2)


# -- leaf detection ---------------------------------------------------------------------
class _DLPack:
    def __init__(self, kind: int, index: int, cai: Any = None) -> None:
        self.kind, self.index = kind, index
        if cai is not None:
            self.__cuda_array_interface__ = cai

    def __dlpack_device__(self) -> tuple[int, int]:
        return (self.kind, self.index)


class _CAI:
    def __init__(self, ptr: Any) -> None:
        self.__cuda_array_interface__ = {
            "shape": (4,),
            "typestr": "<f4",
            "data": (ptr, False),
            "version": 3,
        }


class _BrokenDLPack:
    def __dlpack_device__(self) -> tuple[int, int]:
        raise RuntimeError("no")


@pytest.fixture
def backend() -> CudaPythonBackend:
    """A backend whose pointer lookup is a fake table (pointer -> device ordinal)."""
    b = CudaPythonBackend()
    table = {0x7000: 0, 0x9000: 1}

    def lookup(ptr: int) -> int | None:
        if ptr == 0xDEAD:
            raise RuntimeError("driver gone")
        return table.get(ptr)

    b._pointer_device = lookup  # type: ignore[method-assign]
    return b


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (_DLPack(2, 0), Device("cuda", 0)),
        (_DLPack(2, 3), Device("cuda", 3)),
        (_DLPack(1, 0), None),  # kDLCPU
        (_DLPack(3, 0), None),  # kDLCUDAHost (pinned host memory)
        (_DLPack(10, 0), None),  # kDLROCM: not ours
        (_DLPack(13, 0), Device("cuda", 0)),  # managed, no pointer to ask
        (_DLPack(13, 0, cai=_CAI(0x9000).__cuda_array_interface__), Device("cuda", 1)),
        (_CAI(0x7000), Device("cuda", 0)),
        (_CAI(0x9000), Device("cuda", 1)),
        (_CAI(0x1234), None),  # host pointer: the driver does not know it
        (_CAI(0), None),  # zero-size array
        (_CAI("nonsense"), None),
        (_BrokenDLPack(), None),
        (object(), None),
        (3, None),
        ("cuda:0", None),
    ],
)
def test_device_of_fakes(backend: CudaPythonBackend, obj: Any, expected: Device | None) -> None:
    assert backend.device_of(obj) == expected


def test_a_driver_error_is_never_taken_for_host_memory(backend: CudaPythonBackend) -> None:
    with pytest.raises(RuntimeError, match="driver gone"):
        backend.device_of(_CAI(0xDEAD))


def test_cai_without_driver_is_none() -> None:
    b = CudaPythonBackend()
    if b.is_available():  # pragma: no cover - GPU machine
        pytest.skip("driver present")
    assert b.device_of(_CAI(0x7000)) is None


def test_device_of_host_tensors_and_arrays() -> None:
    torch = pytest.importorskip("torch")
    np = pytest.importorskip("numpy")
    b = CudaPythonBackend()
    assert b.device_of(torch.ones(2)) is None
    assert b.device_of(torch.ones(2, 2).to_sparse()) is None
    assert b.device_of(torch.ones(2, 2).to_sparse_csr()) is None
    assert b.device_of(torch.empty(2, device="meta")) is None
    assert b.device_of(np.ones(3)) is None
    b.record_value_on_stream(torch.ones(2), object())  # host tensors: nothing to record


def test_torch_is_only_used_when_already_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    t = torch.ones(2)
    monkeypatch.setitem(sys.modules, "torch", None)
    b = CudaPythonBackend()
    assert b._torch_tensor_type() is None
    assert b.device_of(t) is None  # found through __dlpack_device__: kDLCPU


# -- streams and events: our bookkeeping, on fakes that keep the real rules -----------------
# (tests/backends/fake_cuda.py: per-thread driver contexts, cuda.core's per-thread
# set_current(), events bound to their context)
@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, fake_cuda.FakeDriver]:
    core, driver = fake_cuda.make(2, pointers={0x7000: 0, 0x9000: 1})
    driver.cuInit(0)
    return core, driver


@pytest.fixture
def runtime(
    fakes: tuple[Any, fake_cuda.FakeDriver], monkeypatch: pytest.MonkeyPatch
) -> _cuda_driver._Runtime:
    core, driver = fakes
    rt = _cuda_driver._Runtime(core, driver, 2)
    monkeypatch.setattr(_cuda_driver, "_RUNTIME", rt)
    return rt


def _stream(runtime: _cuda_driver._Runtime, index: int) -> Any:
    """A user's cuda.core stream on ``index`` (made the way cuda.core users make one)."""
    dev = runtime.core.Device(index)
    dev.set_current()
    try:
        return dev.create_stream()
    finally:
        runtime.driver.cuCtxSetCurrent(None)


def _in_thread(fn: Any, *args: Any) -> Any:
    """Run ``fn`` in a fresh thread (no CUDA context, cuda.core never initialised)."""
    with cf.ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result(timeout=30)


def test_the_fakes_keep_cuda_cores_per_thread_rule(runtime: _cuda_driver._Runtime) -> None:
    # The rule the first GPU run hit: a context made current by someone else (torch)
    # does not initialise cuda.core's Device in this thread.
    core, driver = runtime.core, runtime.driver

    def torch_made_it_current() -> str:
        driver.cuCtxSetCurrent(driver.cuDevicePrimaryCtxRetain(0)[1])
        try:
            core.Device(0).create_event()
        except fake_cuda.CUDAError as exc:
            return str(exc)
        return "no error"

    assert "not yet initialized" in _in_thread(torch_made_it_current)
    assert driver.cuEventCreate(2)[0] == fake_cuda.CUresult.CUDA_ERROR_INVALID_CONTEXT
    assert _in_thread(driver.cuCtxGetDevice)[0] == fake_cuda.CUresult.CUDA_ERROR_INVALID_CONTEXT


def test_current_stream_defaults_and_use_stream_nesting(runtime: _cuda_driver._Runtime) -> None:
    default0 = cuda_mod.current_stream(0)
    assert default0.is_default and default0.device == Device("cuda", 0)
    a, b = _stream(runtime, 0), _stream(runtime, 1)
    with cuda_mod.use_stream(a) as bound_a:
        assert bound_a.stream is a and bound_a.device == Device("cuda", 0)
        assert cuda_mod.current_stream("cuda:0") == bound_a
        with cuda_mod.use_stream(b):
            assert cuda_mod.current_stream(Device("cuda", 1)).stream is b
            assert cuda_mod.current_stream(0) == bound_a
        assert cuda_mod.current_stream(1).is_default
    assert cuda_mod.current_stream(0) == default0


def test_use_stream_accepts_foreign_protocol_objects(runtime: _cuda_driver._Runtime) -> None:
    handle = int(_stream(runtime, 1).handle)

    class CupyLike:
        def __cuda_stream__(self) -> tuple[int, int]:
            return (0, handle)

    class TorchDefaultLike:  # torch's default stream: handle 0, device_index says where
        device_index = 1

        def __cuda_stream__(self) -> tuple[int, int]:
            return (0, 0)

    foreign = CupyLike()
    with cuda_mod.use_stream(foreign) as bound:
        assert bound.handle == handle and bound.owner is foreign
        assert bound.device == Device("cuda", 1)
        assert bound.__cuda_stream__() == (0, handle)
    with cuda_mod.use_stream(TorchDefaultLike()) as bound:
        assert bound.device == Device("cuda", 1) and bound.is_default
    with pytest.raises(ValueError, match="belongs to cuda:1"), cuda_mod.use_stream(foreign, 0):
        pass
    with pytest.raises(TypeError, match="__cuda_stream__"), cuda_mod.use_stream(object()):
        pass


def test_current_stream_is_per_thread(runtime: _cuda_driver._Runtime) -> None:
    with cuda_mod.use_stream(_stream(runtime, 0)):
        assert _in_thread(cuda_mod.current_stream, 0).is_default


def test_backend_use_streams_restores(runtime: _cuda_driver._Runtime) -> None:
    backend = CudaPythonBackend()
    p0, p1 = runtime.from_pool(0), runtime.from_pool(1)
    with backend.use_streams([p0, p1]):
        assert backend.current_stream(Device("cuda", 0)) is p0
        assert backend.current_stream(Device("cuda", 1)) is p1
    token = backend.enter_streams([p1])
    assert backend.current_stream(Device("cuda", 1)) is p1
    backend.exit_streams(token)
    assert backend.current_stream(Device("cuda", 0)).is_default
    assert backend.current_stream(Device("cuda", 1)).is_default


def test_stream_pool_is_round_robin_per_device(runtime: _cuda_driver._Runtime) -> None:
    first = [runtime.from_pool(0) for _ in range(_cuda_driver.POOL_SIZE)]
    assert len({s.handle for s in first}) == _cuda_driver.POOL_SIZE
    again = [runtime.from_pool(0) for _ in range(_cuda_driver.POOL_SIZE)]
    assert {s.handle for s in again} == {s.handle for s in first}
    assert all(s.device == Device("cuda", 0) for s in first)
    one = runtime.from_pool(1)
    assert one.device == Device("cuda", 1)
    assert runtime.driver.streams[one.handle].ctx.device == 1  # made in cuda:1's context
    assert runtime.driver.current() is fake_cuda.NULL_CONTEXT  # and nothing left current


def test_events_are_pooled_and_reused(runtime: _cuda_driver._Runtime) -> None:
    stream = runtime.from_pool(0)
    ev = runtime.record(stream)
    assert len(runtime.driver.events) == 1
    raw = ev.event
    del ev
    gc.collect()
    ev2 = runtime.record(stream)
    assert ev2.event is raw and len(runtime.driver.events) == 1  # reused, not created
    ev3 = runtime.record(stream)  # ev2 still alive: a new one
    assert ev3.event is not raw and len(runtime.driver.events) == 2
    assert raw.flags == 3  # timing disabled, blocking sync: synchronize() does not spin


def test_a_full_event_pool_destroys_what_it_cannot_keep(
    runtime: _cuda_driver._Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_cuda_driver, "EVENT_POOL_SIZE", 2)
    stream = runtime.from_pool(0)
    events = [runtime.record(stream) for _ in range(4)]
    raws = [e.event for e in events]
    del events
    gc.collect()
    assert len(runtime.free_events[0]) == 2
    assert sum(r.destroyed for r in raws) == 2  # not leaked


def test_default_stream_ops_switch_and_restore_the_context(runtime: _cuda_driver._Runtime) -> None:
    driver = runtime.driver
    driver.cuCtxSetCurrent(runtime.context(0))
    default1 = runtime.current(1)
    ev = runtime.record(default1)
    assert ev.event.ctx.device == 1 and ev.event.recorded_on == [1]
    assert driver.current() is runtime.context(0)  # restored
    runtime.wait(default1, ev)
    assert driver.current() is runtime.context(0)
    # an event of cuda:0's context recorded on cuda:1's stream: the driver refuses it
    keep = runtime.record(runtime.from_pool(0))
    runtime.free_events[1].append(keep.event)
    with pytest.raises(BackendError, match=r"cuEventRecord.*INVALID_HANDLE"):
        runtime.record(default1)
    assert keep.event in runtime.free_events[1]  # not lost
    assert driver.current() is runtime.context(0)


def _every_operation(backend: CudaPythonBackend, index: int) -> list[str]:
    """Each backend operation, as the core and users call it; what ran."""
    device = Device("cuda", index)
    done = []
    current = backend.current_stream(device)
    event = backend.record_event(current)
    done.append("record_event")
    pool = backend.stream_from_pool(device)
    backend.wait_event(pool, event)
    done.append("wait_event")
    assert backend.query_event(event) is True
    backend.synchronize_event(event)
    done.append("query/synchronize")
    with backend.use_streams([pool]):
        backend.record_event(backend.current_stream(device))
    token = backend.enter_device(device)
    assert backend.current_device() == device
    backend.exit_device(token)
    done.append("streams/device")
    return done


@pytest.mark.parametrize("index", [0, 1])
def test_every_operation_works_in_a_fresh_thread(
    runtime: _cuda_driver._Runtime, index: int
) -> None:
    backend = CudaPythonBackend()

    def run() -> tuple[list[str], Any]:
        return _every_operation(backend, index), runtime.driver.current()

    done, left = _in_thread(run)
    assert len(done) == 4
    assert left is fake_cuda.NULL_CONTEXT  # a fresh thread is left as it was found


def test_every_operation_works_where_torch_made_the_context_current(
    runtime: _cuda_driver._Runtime,
) -> None:
    # torch (or CuPy) made cuda:0 current through the driver; cuda.core never ran here
    backend = CudaPythonBackend()
    driver = runtime.driver

    def run() -> Any:
        ctx = driver.cuDevicePrimaryCtxRetain(0)[1]
        driver.cuCtxSetCurrent(ctx)
        _every_operation(backend, 0)
        _every_operation(backend, 1)
        return driver.current() is ctx

    assert _in_thread(run) is True  # and torch's context is current again afterwards


def test_device_futures_round_trip_from_many_threads(
    runtime: _cuda_driver._Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Set, wait, then() and callbacks in 8 fresh threads at once, each on its own streams."""
    monkeypatch.setenv("FUTUREKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("FUTUREKIT_BACKEND_CUDA", "cuda-python")
    _registry.reset()
    monkeypatch.setattr(CudaPythonBackend, "unavailable_reason", lambda self: None)
    buf = _DLPack(2, 1)
    barrier = threading.Barrier(8)

    def worker(n: int) -> int:
        barrier.wait(10)
        seen = []
        for i in range(20):
            with cuda_mod.use_stream(_stream(runtime, n % 2)):
                fut: futurekit.Future[Any] = futurekit.Future(devices=["cuda:0", "cuda:1"])
                child = fut.then(lambda f: f.wait())
                fut.add_done_callback(lambda f: seen.append(f.value()))
                fut.set_result({"x": buf, "i": i})
                assert fut.wait()["i"] == i and child.wait()["i"] == i
        return len(seen)

    try:
        with cf.ThreadPoolExecutor(8) as pool:
            assert list(pool.map(worker, range(8), timeout=60)) == [20] * 8
    finally:
        _registry.reset()
    waits = [e for e in runtime.driver.log if e[0] == "cuStreamWaitEvent"]
    assert len(waits) >= 8 * 20 * 3  # wait(), the then-callback, add_done_callback


def test_stream_handle_protocol_variants() -> None:
    class Method:
        def __cuda_stream__(self) -> tuple[int, int]:
            return (0, 42)

    class Attr:
        __cuda_stream__ = (0, 43)

    class BadVersion:
        def __cuda_stream__(self) -> tuple[int, int]:
            return (1, 44)

    class TorchOld:
        cuda_stream = 45

    class CupyOld:
        ptr = 46

    handle = _cuda_driver.stream_handle
    assert handle(Method()) == 42
    assert handle(Attr()) == 43
    assert handle(TorchOld()) == 45
    assert handle(CupyOld()) == 46
    with pytest.raises(ValueError, match="version 1"):
        handle(BadVersion())
    with pytest.raises(TypeError):
        handle(3.5)


def test_cuda_stream_value_semantics(fakes: tuple[Any, fake_cuda.FakeDriver]) -> None:
    core, _ = fakes
    s = CudaStream(Device("cuda", 1), core.Stream.from_handle(0x9999))
    assert s == CudaStream(Device("cuda", 1), core.Stream.from_handle(0x9999))
    assert len({s, CudaStream(Device("cuda", 1), core.Stream.from_handle(0x9999))}) == 1
    assert not s.is_default and "cuda:1" in repr(s) and s.index == 1
    assert CudaStream(Device("cuda", 0), core.PER_THREAD_DEFAULT_STREAM).is_default


# -- selection between torch and cuda-python --------------------------------------------
@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("FUTUREKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("FUTUREKIT_BACKEND_CUDA", raising=False)
    _registry.reset()
    yield
    _registry.reset()


def _availability(monkeypatch: pytest.MonkeyPatch, torch_ok: bool, cuda_ok: bool) -> None:
    monkeypatch.setattr(
        TorchBackend, "unavailable_reason", lambda self: None if torch_ok else "no torch GPU"
    )
    monkeypatch.setattr(
        CudaPythonBackend, "unavailable_reason", lambda self: None if cuda_ok else "no driver"
    )


@pytest.mark.usefixtures("registry")
def test_torch_is_the_default_when_both_are_available(monkeypatch: pytest.MonkeyPatch) -> None:
    _availability(monkeypatch, True, True)
    assert isinstance(_registry.get_backend("cuda"), TorchBackend)
    assert isinstance(_registry.get_backend("cuda", "cuda-python"), CudaPythonBackend)


@pytest.mark.usefixtures("registry")
def test_env_override_picks_cuda_python(monkeypatch: pytest.MonkeyPatch) -> None:
    _availability(monkeypatch, True, True)
    monkeypatch.setenv("FUTUREKIT_BACKEND_CUDA", "cuda-python")
    assert isinstance(_registry.get_backend("cuda"), CudaPythonBackend)


@pytest.mark.usefixtures("registry")
def test_cuda_python_serves_when_torch_cannot(monkeypatch: pytest.MonkeyPatch) -> None:
    _availability(monkeypatch, False, True)
    assert isinstance(_registry.get_backend("cuda"), CudaPythonBackend)


@pytest.mark.usefixtures("registry")
def test_torch_asked_by_name_but_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    _availability(monkeypatch, False, True)
    with pytest.raises(BackendUnavailableError, match=r"'torch'.*no torch GPU"):
        _registry.get_backend("cuda", "torch")


@pytest.mark.usefixtures("registry")
def test_unknown_backend_name_for_cuda() -> None:
    with pytest.raises(BackendError, match=r"backends for 'cuda' \('torch', 'cuda-python'\)"):
        _registry.get_backend("cuda", "cupy")


@pytest.mark.usefixtures("registry")
@no_gpu
def test_cuda_future_without_gpu_names_reasons_and_extras() -> None:
    with pytest.raises(BackendUnavailableError) as info:
        futurekit.Future(devices=["cuda:0"])
    msg = str(info.value)
    assert "'torch'" in msg and "'cuda-python'" in msg
    assert "torch" in msg and "cuda-python" in msg and "driver" in msg
    infos = {i.name: i for i in _registry.available_backends()}
    assert not infos["cuda-python"].available and infos["cuda-python"].reason
    assert not infos["torch"].available and infos["torch"].reason
    assert infos["torch"].priority > infos["cuda-python"].priority


def test_spec() -> None:
    (spec,) = cuda_mod.futurekit_device_backends()
    assert (spec.name, spec.device_type, spec.priority, spec.extra) == (
        "cuda-python",
        "cuda",
        5,
        "cuda",
    )
    assert isinstance(spec.load(), CudaPythonBackend)


# -- contexts, errors, the torch mirror (fakes with the real rules; the logic is ours) ------
def test_pointer_lookup_outcomes(runtime: _cuda_driver._Runtime) -> None:
    runtime.driver.cuCtxSetCurrent(runtime.context(0))
    assert runtime.pointer_device(0x9000) == 1
    assert runtime.pointer_device(0x1234) is None  # INVALID_VALUE: host memory


def test_pointer_lookup_without_a_context_retries_with_one(runtime: _cuda_driver._Runtime) -> None:
    def lookup() -> tuple[int | None, Any]:
        return runtime.pointer_device(0x9000), runtime.driver.current()

    assert _in_thread(lookup) == (1, fake_cuda.NULL_CONTEXT)  # found, and no context left


def test_unexpected_pointer_lookup_errors_raise(runtime: _cuda_driver._Runtime) -> None:
    runtime.driver.pointer_errors = [fake_cuda.CUresult.CUDA_ERROR_ILLEGAL_ADDRESS]
    with pytest.raises(BackendError, match=r"CUDA_ERROR_ILLEGAL_ADDRESS.*cannot be synchronized"):
        runtime.pointer_device(0x7000)
    runtime.driver.pointer_errors = [fake_cuda.CUresult.CUDA_ERROR_INVALID_CONTEXT] * 2
    with pytest.raises(BackendError, match="INVALID_CONTEXT"):
        runtime.pointer_device(0x7000)


def test_current_device_and_use_device(runtime: _cuda_driver._Runtime) -> None:
    backend = CudaPythonBackend()
    driver = runtime.driver

    def run() -> list[Any]:
        seen = [backend.current_device()]  # no context: cuda:0, cudart's convention
        with backend.use_device(Device("cuda", 1)):
            seen.append(driver.current().device)
            seen.append(backend.current_device())
        seen.append(driver.current())  # "no context" restored
        driver.cuCtxSetCurrent(runtime.context(1))
        with backend.use_device(Device("cuda", 1)):
            seen.append(driver.current().device)
        seen.append(driver.current().device)
        return seen

    assert _in_thread(run) == [
        Device("cuda", 0),
        1,
        Device("cuda", 1),
        fake_cuda.NULL_CONTEXT,
        1,
        1,
    ]


def test_cai_stream_key_orders_the_event_after_the_producer(runtime: _cuda_driver._Runtime) -> None:
    backend = CudaPythonBackend()
    current = runtime.from_pool(0)
    producer = int(_stream(runtime, 0).handle)

    class Cai:
        def __init__(self, stream: Any) -> None:
            self.__cuda_array_interface__ = {"data": (0x7000, False), "stream": stream}

    def waits() -> list[Any]:
        return [e[2] for e in runtime.driver.log if e[0] == "cuStreamWaitEvent"]

    backend.order_buffer(Cai(None), current)  # no producer named: nothing to do
    backend.order_buffer(Cai(current.handle), current)  # produced right here
    assert waits() == []
    backend.order_buffer(Cai(producer), current)
    ((stream, event),) = waits()
    assert stream == current.handle and event.recorded_on == [producer]
    with pytest.raises(BackendError, match="'stream' of 'x'"):
        backend.order_buffer(Cai("x"), current)


class _FakeTorchStream:
    def __init__(self, handle: int, device_index: int) -> None:
        self.cuda_stream, self.device_index = handle, device_index

    def __cuda_stream__(self) -> tuple[int, int]:
        return (0, self.cuda_stream)


class _FakeTorchCuda:
    def __init__(self) -> None:
        self.device = 0
        self.current: dict[int, Any] = {0: _FakeTorchStream(0, 0), 1: _FakeTorchStream(0, 1)}
        self.made = 0

    def is_available(self) -> bool:
        return True

    def current_device(self) -> int:
        return self.device

    def set_device(self, index: int) -> None:
        self.device = index

    def current_stream(self, index: int) -> Any:
        return self.current[index]

    def set_stream(self, stream: Any) -> None:  # torch also switches the device
        self.current[stream.device_index] = stream
        self.device = stream.device_index

    def default_stream(self, index: int) -> Any:
        return ("default", index)

    def ExternalStream(self, handle: int, device: Any) -> Any:
        self.made += 1
        return _FakeTorchStream(handle, device[1])


class _FakeTorch:
    def __init__(self) -> None:
        self.cuda = _FakeTorchCuda()
        self.Tensor = type("Tensor", (), {})

    @staticmethod
    def device(kind: str, index: int) -> tuple[str, int]:
        return (kind, index)


def test_pool_streams_become_torchs_current_streams_in_callbacks(
    runtime: _cuda_driver._Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _FakeTorch()
    monkeypatch.setitem(sys.modules, "torch", fake)
    backend = CudaPythonBackend()
    p0, p1 = runtime.from_pool(0), runtime.from_pool(1)
    before = dict(fake.cuda.current)
    with backend.use_streams([p0, p1]):
        assert fake.cuda.current[0].cuda_stream == p0.handle
        assert fake.cuda.current[1].cuda_stream == p1.handle
        assert fake.cuda.device == 0  # the current device is kept
    assert fake.cuda.current == before and fake.cuda.device == 0
    with backend.use_streams([p0]):
        pass
    assert fake.cuda.made == 2  # one ExternalStream per pool stream, cached


def test_from_torch_streams_adopts_torchs_current_streams(
    runtime: _cuda_driver._Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _FakeTorch()
    monkeypatch.setitem(sys.modules, "torch", fake)
    backend = CudaPythonBackend()
    fake.cuda.current[1] = _FakeTorchStream(int(_stream(runtime, 1).handle), 1)
    with backend.from_torch_streams([Device("cuda", 1)]):
        assert backend.current_stream(Device("cuda", 1)).handle == fake.cuda.current[1].cuda_stream
    assert backend.current_stream(Device("cuda", 1)).is_default


def test_from_torch_streams_without_torch_changes_nothing(
    runtime: _cuda_driver._Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    backend = CudaPythonBackend()
    with backend.from_torch_streams([Device("cuda", 0)]):
        assert backend.current_stream(Device("cuda", 0)).is_default
