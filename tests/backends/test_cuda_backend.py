"""Unit tests of the cuda-python backend, and of the choice between it and torch.

Nothing here runs on a GPU. Fakes stand in for driver-level objects only where the
logic under test is ours (pointer lookup, stream bookkeeping, event reuse); they
never pretend that device work ran.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import futurekit
from futurekit.backends import _registry
from futurekit.backends import cuda as cuda_mod
from futurekit.backends.cuda import NOT_INSTALLED, CudaPythonBackend, CudaStream
from futurekit.backends.torch import TorchBackend
from futurekit.core._devices import Device
from futurekit.core._errors import BackendError, BackendUnavailableError

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
    reason, count = cuda_mod._probe_driver(_FakeCoreVersion(version), driver)
    assert reason is not None and expected in reason
    assert count == 0


def test_probe_driver_ok() -> None:
    assert cuda_mod._probe_driver(_FakeCoreVersion("1.2.2"), _FakeDriver(count=2)) == (None, 2)


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


# -- streams: the bookkeeping is ours; a fake cuda.core stands in for the driver --------
class _FakeStreamObj:
    """A cuda.core Stream stand-in: a handle and a device."""

    def __init__(self, handle: int, device_id: int = 0) -> None:
        self.handle = handle
        self.device = type("D", (), {"device_id": device_id})()
        self.recorded: list[Any] = []
        self.waited: list[Any] = []

    @classmethod
    def from_handle(cls, handle: int) -> _FakeStreamObj:
        return cls(handle, device_id=handle % 2)

    def record(self, event: Any) -> Any:
        self.recorded.append((event, _FAKE_CORE.current))
        return event

    def wait(self, event: Any) -> None:
        self.waited.append((event, _FAKE_CORE.current))


class _FakeEvent:
    def __init__(self, index: int) -> None:
        self.index = index
        self.calls: list[tuple[str, int | None]] = []

    @property
    def is_done(self) -> bool:
        self.calls.append(("query", _FAKE_CORE.current))
        return True

    def sync(self) -> None:
        self.calls.append(("sync", _FAKE_CORE.current))


class _FakeDevice:
    def __init__(self, index: int) -> None:
        self.index = index

    def set_current(self) -> None:
        _FAKE_CORE.current = self.index

    def create_stream(self, options: Any) -> _FakeStreamObj:
        _FAKE_CORE.streams += 1
        return _FakeStreamObj(0x1000 * _FAKE_CORE.streams + self.index, self.index)

    def create_event(self, options: Any) -> object:
        assert options.timing_enabled is False
        assert options.blocking_sync is True  # synchronize() must not spin a core
        _FAKE_CORE.events += 1
        return _FakeEvent(self.index)


class _FakeCore:
    Stream = _FakeStreamObj
    Device = _FakeDevice

    class EventOptions:
        def __init__(self, timing_enabled: bool, blocking_sync: bool = False) -> None:
            self.timing_enabled = timing_enabled
            self.blocking_sync = blocking_sync

    class StreamOptions:
        def __init__(self, nonblocking: bool) -> None:
            self.nonblocking = nonblocking

    LEGACY_DEFAULT_STREAM = _FakeStreamObj(1)
    PER_THREAD_DEFAULT_STREAM = _FakeStreamObj(2)

    def __init__(self) -> None:
        self.current: int | None = None
        self.streams = self.events = 0


class _CtxDriver(_FakeDriver):
    class CUpointer_attribute:
        CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL = 9

    def cuCtxGetDevice(self) -> tuple[Any, int]:
        if _FAKE_CORE.current is None:
            return (_Result(999), 0)
        return (_Result(0), _FAKE_CORE.current)

    def cuCtxGetCurrent(self) -> tuple[Any, Any]:
        return (_Result(0), _FAKE_CORE.current)  # the "context" is the device index

    def cuCtxSetCurrent(self, ctx: Any) -> tuple[Any]:
        _FAKE_CORE.current = ctx
        return (_Result(0),)


_FAKE_CORE = _FakeCore()


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[cuda_mod._Runtime]:
    global _FAKE_CORE
    _FAKE_CORE = _FakeCore()
    rt = cuda_mod._Runtime(_FAKE_CORE, _CtxDriver(), 2)
    monkeypatch.setattr(cuda_mod, "_RUNTIME", rt)
    yield rt


def test_current_stream_defaults_and_use_stream_nesting(runtime: cuda_mod._Runtime) -> None:
    default0 = cuda_mod.current_stream(0)
    assert default0.is_default and default0.device == Device("cuda", 0)
    a, b = _FakeStreamObj(0x5000, 0), _FakeStreamObj(0x6001, 1)
    with cuda_mod.use_stream(a) as bound_a:
        assert bound_a.stream is a and bound_a.device == Device("cuda", 0)
        assert cuda_mod.current_stream("cuda:0") == bound_a
        with cuda_mod.use_stream(b):
            assert cuda_mod.current_stream(Device("cuda", 1)).stream is b
            assert cuda_mod.current_stream(0) == bound_a
        assert cuda_mod.current_stream(1).is_default
    assert cuda_mod.current_stream(0) == default0


def test_use_stream_accepts_foreign_protocol_objects(runtime: cuda_mod._Runtime) -> None:
    class CupyLike:
        def __cuda_stream__(self) -> tuple[int, int]:
            return (0, 0x7001)

    class TorchDefaultLike:  # torch's default stream: handle 0, device_index says where
        device_index = 1

        def __cuda_stream__(self) -> tuple[int, int]:
            return (0, 0)

    foreign = CupyLike()
    with cuda_mod.use_stream(foreign) as bound:
        assert bound.handle == 0x7001 and bound.owner is foreign
        assert bound.device == Device("cuda", 1)
        assert bound.__cuda_stream__() == (0, 0x7001)
    with cuda_mod.use_stream(TorchDefaultLike()) as bound:
        assert bound.device == Device("cuda", 1) and bound.is_default
    with pytest.raises(ValueError, match="belongs to cuda:1"), cuda_mod.use_stream(foreign, 0):
        pass
    with pytest.raises(TypeError, match="__cuda_stream__"), cuda_mod.use_stream(object()):
        pass


def test_current_stream_is_per_thread(runtime: cuda_mod._Runtime) -> None:
    seen: list[CudaStream] = []
    with cuda_mod.use_stream(_FakeStreamObj(0x5000, 0)):
        t = threading.Thread(target=lambda: seen.append(cuda_mod.current_stream(0)))
        t.start()
        t.join()
    assert seen[0].is_default


def test_backend_use_streams_restores(runtime: cuda_mod._Runtime) -> None:
    backend = CudaPythonBackend.__new__(CudaPythonBackend)
    backend._rt, backend._reason, backend._tensor_type = runtime, None, None
    p0, p1 = runtime.from_pool(0), runtime.from_pool(1)
    with backend.use_streams([p0, p1]):
        assert backend.current_stream(Device("cuda", 0)) is p0
        assert backend.current_stream(Device("cuda", 1)) is p1
    assert backend.current_stream(Device("cuda", 0)).is_default
    assert backend.current_stream(Device("cuda", 1)).is_default


def test_stream_pool_is_round_robin_per_device(runtime: cuda_mod._Runtime) -> None:
    first = [runtime.from_pool(0) for _ in range(cuda_mod.POOL_SIZE)]
    assert len({s.handle for s in first}) == cuda_mod.POOL_SIZE
    again = [runtime.from_pool(0) for _ in range(cuda_mod.POOL_SIZE)]
    assert {s.handle for s in again} == {s.handle for s in first}
    assert all(s.device == Device("cuda", 0) for s in first)
    assert runtime.from_pool(1).device == Device("cuda", 1)
    assert _FAKE_CORE.current is not None  # creation made the device current ...


def test_events_are_pooled_and_reused(runtime: cuda_mod._Runtime) -> None:
    stream = runtime.from_pool(0)
    ev = runtime.record(stream)
    assert _FAKE_CORE.events == 1
    raw = ev.event
    del ev
    gc.collect()
    ev2 = runtime.record(stream)
    assert ev2.event is raw and _FAKE_CORE.events == 1  # reused, not created
    ev3 = runtime.record(stream)  # ev2 still alive: a new one
    assert ev3.event is not raw and _FAKE_CORE.events == 2


def test_default_stream_ops_switch_and_restore_device(runtime: cuda_mod._Runtime) -> None:
    _FAKE_CORE.current = 0
    default1 = runtime.current(1)
    ev = runtime.record(default1)
    assert _FAKE_CORE.LEGACY_DEFAULT_STREAM.recorded[-1] == (ev.event, 1)
    assert _FAKE_CORE.current == 0  # restored
    runtime.wait(default1, ev)
    assert _FAKE_CORE.LEGACY_DEFAULT_STREAM.waited[-1] == (ev.event, 1)
    assert _FAKE_CORE.current == 0


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

    assert cuda_mod._stream_handle(Method()) == 42
    assert cuda_mod._stream_handle(Attr()) == 43
    assert cuda_mod._stream_handle(TorchOld()) == 45
    assert cuda_mod._stream_handle(CupyOld()) == 46
    with pytest.raises(ValueError, match="version 1"):
        cuda_mod._stream_handle(BadVersion())
    with pytest.raises(TypeError):
        cuda_mod._stream_handle(3.5)


def test_cuda_stream_value_semantics() -> None:
    s = CudaStream(Device("cuda", 1), _FakeStreamObj(0x9999, 1))
    assert s == CudaStream(Device("cuda", 1), _FakeStreamObj(0x9999, 1))
    assert len({s, CudaStream(Device("cuda", 1), _FakeStreamObj(0x9999, 1))}) == 1
    assert not s.is_default and "cuda:1" in repr(s)
    assert CudaStream(Device("cuda", 0), _FakeStreamObj(2)).is_default


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
    with pytest.raises(BackendError, match="Backends for 'cuda': torch, cuda-python"):
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


# -- contexts, errors, the torch mirror (fake driver; the logic is ours) ----------------------
def _backend_on(runtime: cuda_mod._Runtime) -> CudaPythonBackend:
    backend = CudaPythonBackend.__new__(CudaPythonBackend)
    backend._rt, backend._reason, backend._tensor_type = runtime, None, None
    backend._count = runtime.count
    return backend


def test_records_and_waits_make_the_streams_device_current(runtime: cuda_mod._Runtime) -> None:
    pool1 = runtime.from_pool(1)
    _FAKE_CORE.current = None  # a fresh executor thread: no context at all
    ev = runtime.record(pool1)
    assert pool1.stream.recorded[-1] == (ev.event, 1)
    _FAKE_CORE.current = 0
    runtime.wait(pool1, ev)
    assert pool1.stream.waited[-1] == (ev.event, 1)
    assert _FAKE_CORE.current == 0  # restored
    assert runtime.query(ev) is True
    runtime.synchronize(ev)
    assert ev.event.calls == [("query", 1), ("sync", 1)]
    assert _FAKE_CORE.current == 0


class _PtrDriver(_CtxDriver):
    class CUresult(_CtxDriver.CUresult):
        CUDA_ERROR_INVALID_VALUE = _Result(1)
        CUDA_ERROR_NOT_INITIALIZED = _Result(3)
        CUDA_ERROR_INVALID_CONTEXT = _Result(201)

    def __init__(self, answers: list[tuple[int, int]]) -> None:
        super().__init__()
        self.answers = answers
        self.contexts: list[int | None] = []

    def cuPointerGetAttribute(self, attr: int, ptr: int) -> tuple[Any, int]:
        self.contexts.append(_FAKE_CORE.current)
        err, value = self.answers.pop(0)
        return (_PtrResult(err), value)


class _PtrResult(int):
    @property
    def name(self) -> str:
        return {0: "CUDA_SUCCESS", 1: "CUDA_ERROR_INVALID_VALUE", 201: "CUDA_ERROR_INVALID_CONTEXT",
                700: "CUDA_ERROR_ILLEGAL_ADDRESS"}.get(int(self), str(int(self)))  # fmt: skip


def _ptr_runtime(monkeypatch: pytest.MonkeyPatch, answers: list[tuple[int, int]]) -> Any:
    global _FAKE_CORE
    _FAKE_CORE = _FakeCore()
    driver = _PtrDriver(answers)
    rt = cuda_mod._Runtime(_FAKE_CORE, driver, 2)
    monkeypatch.setattr(cuda_mod, "_RUNTIME", rt)
    return rt, driver


def test_pointer_lookup_outcomes(monkeypatch: pytest.MonkeyPatch) -> None:
    rt, _ = _ptr_runtime(monkeypatch, [(0, 1), (1, 0)])
    assert rt.pointer_device(0x7000) == 1
    assert rt.pointer_device(0x1234) is None  # INVALID_VALUE: host memory


def test_pointer_lookup_without_a_context_retries_with_one(monkeypatch: pytest.MonkeyPatch) -> None:
    rt, driver = _ptr_runtime(monkeypatch, [(201, 0), (0, 1)])
    assert rt.pointer_device(0x7000) == 1
    assert driver.contexts == [None, 0]


def test_unexpected_pointer_lookup_errors_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    rt, _ = _ptr_runtime(monkeypatch, [(700, 0)])
    with pytest.raises(BackendError, match=r"CUDA_ERROR_ILLEGAL_ADDRESS.*cannot be synchronized"):
        rt.pointer_device(0x7000)
    rt2, _ = _ptr_runtime(monkeypatch, [(201, 0), (201, 0)])
    with pytest.raises(BackendError, match="INVALID_CONTEXT"):
        rt2.pointer_device(0x7000)


def test_current_device_and_use_device(runtime: cuda_mod._Runtime) -> None:
    backend = _backend_on(runtime)
    _FAKE_CORE.current = None
    assert backend.current_device() == Device("cuda", 0)  # cudart's convention
    with backend.use_device(Device("cuda", 1)):
        assert _FAKE_CORE.current == 1
        assert backend.current_device() == Device("cuda", 1)
    assert _FAKE_CORE.current is None  # "no context" restored
    _FAKE_CORE.current = 1
    with backend.use_device(Device("cuda", 1)):
        assert _FAKE_CORE.current == 1
    assert _FAKE_CORE.current == 1


def test_cai_stream_key_orders_the_event_after_the_producer(runtime: cuda_mod._Runtime) -> None:
    backend = _backend_on(runtime)
    current = runtime.from_pool(0)

    class Cai:
        def __init__(self, stream: Any) -> None:
            self.__cuda_array_interface__ = {"data": (0x7000, False), "stream": stream}

    backend.order_buffer(Cai(None), current)  # no producer named: nothing to do
    backend.order_buffer(Cai(current.handle), current)  # produced right here
    assert current.stream.waited == []
    backend.order_buffer(Cai(0x5000), current)
    (event, ctx) = current.stream.waited[-1]
    assert ctx == 0 and isinstance(event, _FakeEvent)
    with pytest.raises(BackendError, match="'stream' of 'x'"):
        backend.order_buffer(Cai("x"), current)


class _FakeTorchStream:
    def __init__(self, handle: int, device_index: int) -> None:
        self.cuda_stream, self.device_index = handle, device_index


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
    runtime: cuda_mod._Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _FakeTorch()
    monkeypatch.setitem(sys.modules, "torch", fake)
    backend = _backend_on(runtime)
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
    runtime: cuda_mod._Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _FakeTorch()
    monkeypatch.setitem(sys.modules, "torch", fake)
    backend = _backend_on(runtime)
    fake.cuda.current[1] = _FakeTorchStream(0x6001, 1)  # torch's pool stream, in its callback
    with backend.from_torch_streams([Device("cuda", 1)]):
        assert backend.current_stream(Device("cuda", 1)).handle == 0x6001
    assert backend.current_stream(Device("cuda", 1)).is_default


def test_from_torch_streams_without_torch_changes_nothing(
    runtime: cuda_mod._Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    backend = _backend_on(runtime)
    with backend.from_torch_streams([Device("cuda", 0)]):
        assert backend.current_stream(Device("cuda", 0)).is_default
