"""Unit tests of the torch backend that need no GPU."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from futurekit.backends import torch as torch_backend
from futurekit.backends.torch import (
    ACCELERATOR_TYPES,
    TorchBackend,
    record_tensor_on_stream,
    tensor_device,
)
from futurekit.core._devices import Device
from futurekit.core._errors import BackendUnavailableError

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support:UserWarning")

SRC = str(Path(__file__).resolve().parents[2] / "src")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


# -- leaf detection ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.ones(3),
        lambda: torch.ones(2, 2).to_sparse(),
        lambda: torch.ones(2, 2).to_sparse_csr(),
        lambda: torch.empty(4, device="meta"),
        lambda: torch.tensor(1.0),
    ],
    ids=["dense", "coo", "csr", "meta", "scalar"],
)
def test_host_tensors_are_not_device_buffers(make: Any) -> None:
    backend = TorchBackend("cuda")
    assert backend.device_of(make()) is None


@pytest.mark.parametrize("obj", [1, "cuda:0", None, [torch.ones(1)], object(), b"x"])
def test_non_tensors_are_not_buffers(obj: Any) -> None:
    assert TorchBackend("cuda").device_of(obj) is None


class _FakeTensor:
    def __init__(self, device: Any) -> None:
        self.device = device


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        (torch.device("cuda", 1), Device("cuda", 1)),
        (torch.device("cuda"), Device("cuda", 0)),
        (torch.device("xpu", 2), Device("xpu", 2)),
        (torch.device("cpu"), None),
        (torch.device("meta"), None),
    ],
)
def test_tensor_device_maps_torch_devices(device: Any, expected: Device | None) -> None:
    assert tensor_device(_FakeTensor(device)) == expected


def test_record_value_on_stream_skips_host_tensors_and_non_tensors() -> None:
    backend = TorchBackend("cuda")
    backend.record_value_on_stream(torch.ones(2), object())
    backend.record_value_on_stream(torch.ones(2, 2).to_sparse(), object())
    backend.record_value_on_stream("not a tensor", object())


@pytest.mark.parametrize(
    ("make", "parts"),
    [
        (lambda: torch.ones(3), [(3,)]),
        (lambda: torch.eye(3).to_sparse(), [(2, 3), (3,)]),
        (lambda: torch.eye(3).to_sparse_csr(), [(4,), (3,), (3,)]),
        (lambda: torch.eye(3).to_sparse_csc(), [(4,), (3,), (3,)]),
    ],
    ids=["dense", "coo", "csr", "csc"],
)
def test_record_tensor_on_stream_records_every_component(
    monkeypatch: pytest.MonkeyPatch, make: Any, parts: list[tuple[int, ...]]
) -> None:
    calls: list[tuple[tuple[int, ...], Any]] = []
    monkeypatch.setattr(
        torch.Tensor, "record_stream", lambda self, s: calls.append((tuple(self.shape), s))
    )
    stream = object()
    record_tensor_on_stream(make(), stream)
    assert calls == [(shape, stream) for shape in parts]


# -- availability -----------------------------------------------------------------------
@no_cuda
def test_cuda_unavailable_here_with_reason() -> None:
    backend = TorchBackend("cuda")
    assert backend.is_available() is False
    assert backend.device_count() == 0
    reason = backend.unavailable_reason()
    assert reason is not None
    if not torch.backends.cuda.is_built():
        assert reason == f"torch {torch.__version__} was built without CUDA"
    else:
        assert "no CUDA device found" in reason


@pytest.mark.parametrize("kind", ACCELERATOR_TYPES)
def test_other_accelerators_report_a_reason(kind: str) -> None:
    backend = TorchBackend(kind)
    assert backend.device_type == kind
    if backend.is_available():  # pragma: no cover - a machine with that accelerator
        assert backend.device_count() > 0
        return
    reason = backend.unavailable_reason()
    assert reason and kind.upper() in reason.upper()


def test_without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    backend = TorchBackend("cuda")
    assert not backend.is_available()
    from futurekit.backends._spec import install_hint

    assert backend.unavailable_reason() == f"torch is not installed: {install_hint('torch')}"
    assert "futurekit[torch]" in str(backend.unavailable_reason())
    assert backend.device_of(object()) is None


@no_cuda
def test_unavailable_backend_methods_raise_with_reason() -> None:
    backend = TorchBackend("cuda")
    with pytest.raises(BackendUnavailableError, match=r"built without CUDA|no CUDA device"):
        backend.current_stream(Device("cuda", 0))
    with pytest.raises(BackendUnavailableError):
        backend.stream_from_pool(Device("cuda", 0))


def test_probe_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> bool:
        raise RuntimeError("driver exploded")

    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", boom)
    backend = TorchBackend("cuda")
    assert not backend.is_available()
    assert "driver exploded" in str(backend.unavailable_reason())


# -- use_streams with a fake torch device API (the restore logic is ours) ----------------
class _FakeStream:
    def __init__(self, device_index: int, name: str) -> None:
        self.device_index = device_index
        self.name = name

    def __repr__(self) -> str:
        return self.name


class _FakeApi:
    def __init__(self) -> None:
        self.device = 0
        self.current = {0: _FakeStream(0, "default0"), 1: _FakeStream(1, "default1")}

    def get_stream(self, index: int) -> _FakeStream:
        return self.current[index]

    def set_stream(self, stream: _FakeStream) -> None:  # torch switches the device too
        self.device = stream.device_index
        self.current[stream.device_index] = stream

    def get_device(self) -> int:
        return self.device

    def set_device(self, index: int) -> None:
        self.device = index


def test_use_streams_sets_and_restores_streams_and_device() -> None:
    backend = TorchBackend("cuda")
    api = _FakeApi()
    backend._api = api
    before = dict(api.current)
    a, b = _FakeStream(0, "pool0"), _FakeStream(1, "pool1")
    with backend.use_streams([a, b]):
        assert api.current == {0: a, 1: b}
        assert api.device == 0  # unchanged by set_stream
        assert backend.current_stream(Device("cuda", 1)) is b
    assert api.current == before
    assert api.device == 0
    with pytest.raises(KeyError), backend.use_streams([a]):
        raise KeyError("callback failed")
    assert api.current == before
    with backend.use_streams([]):
        assert api.current == before


# -- specs and import hygiene -------------------------------------------------------------
def test_specs() -> None:
    specs = {s.name: s for s in torch_backend.futurekit_device_backends()}
    assert specs["torch"].device_type == "cuda"
    assert specs["torch"].priority == 10
    assert all(s.extra == "torch" for s in specs.values())
    assert {f"torch-{k}" for k in ACCELERATOR_TYPES} <= set(specs)
    for spec in specs.values():
        backend = spec.load()
        assert isinstance(backend, TorchBackend)
        assert backend.device_type == spec.device_type


def test_importing_backends_imports_neither_torch_nor_cuda() -> None:
    code = textwrap.dedent(
        """
        import sys
        import futurekit, futurekit.backends
        import futurekit.backends.torch, futurekit.backends.cuda
        heavy = sorted(m for m in sys.modules
                       if m == "torch" or m.startswith(("torch.", "cuda.", "cupy"))
                       or m == "cuda")
        print(heavy)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


# -- record_stream fallback: aten::record_stream has only a plain dense kernel -----------
class _RecordSpy:
    """Stands in for ``Tensor.record_stream``: refuses what the CUDA kernel refuses."""

    def __init__(self) -> None:
        self.recorded: list[Any] = []

    def __call__(self, tensor: Any, stream: Any) -> None:
        if tensor.is_nested or tensor.is_quantized or type(tensor) is not torch.Tensor:
            raise RuntimeError("record_stream: no kernel for this tensor")
        self.recorded.append((tensor, stream))


@pytest.fixture
def record_spy(monkeypatch: pytest.MonkeyPatch) -> _RecordSpy:
    spy = _RecordSpy()

    def record_stream(self: Any, stream: Any) -> None:
        spy(self, stream)

    monkeypatch.setattr(torch.Tensor, "record_stream", record_stream)
    return spy


def test_plain_tensors_record_themselves(record_spy: _RecordSpy) -> None:
    t = torch.ones(3)
    record_tensor_on_stream(t, "s")
    assert record_spy.recorded == [(t, "s")]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.nested.nested_tensor([torch.ones(2), torch.ones(3)]),
        lambda: torch.quantize_per_tensor(torch.ones(4), 0.1, 0, torch.quint8),
    ],
    ids=["nested-strided", "quantized"],
)
def test_refused_tensors_record_their_storage(record_spy: _RecordSpy, make: Any) -> None:
    t = make()
    record_tensor_on_stream(t, "s")
    ((view, stream),) = record_spy.recorded
    storage = t.untyped_storage()
    assert stream == "s" and view.dtype == torch.uint8 and view.is_contiguous()
    assert view.untyped_storage().data_ptr() == storage.data_ptr()
    assert view.numel() == storage.nbytes()  # the whole allocation is protected


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_jagged_nested_tensors_record_their_inner_tensors(record_spy: _RecordSpy) -> None:
    nt = torch.nested.nested_tensor([torch.ones(2), torch.ones(3)], layout=torch.jagged)
    record_tensor_on_stream(nt, "s")
    ptrs = {t.untyped_storage().data_ptr() for t, _ in record_spy.recorded}
    assert nt.values().untyped_storage().data_ptr() in ptrs
    assert nt.offsets().untyped_storage().data_ptr() in ptrs


def test_when_even_the_storage_cannot_be_recorded_it_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from futurekit.core._errors import BackendError

    def refuse(tensor: Any, stream: Any) -> None:
        raise RuntimeError("no kernel")

    monkeypatch.setattr(torch.Tensor, "record_stream", refuse)
    with pytest.raises(BackendError, match=r"record_stream failed .*no kernel"):
        record_tensor_on_stream(torch.ones(2), "s")


# -- foreign CUDA arrays (CuPy, numba) in a torch-backend future -------------------------
class _DLCuda:
    def __init__(self, index: int, stream: Any = None) -> None:
        self.index = index
        self.__cuda_array_interface__ = {"data": (0x7000, False), "stream": stream}

    def __dlpack_device__(self) -> tuple[int, int]:
        return (2, self.index)


class _DLHost:
    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)


def test_foreign_cuda_arrays_are_buffers_of_the_cuda_backend() -> None:
    backend = TorchBackend("cuda")
    assert backend.device_of(_DLCuda(1)) == Device("cuda", 1)
    assert backend.device_of(_DLHost()) is None
    assert backend.device_of({"not": "an array"}) is None
    assert TorchBackend("xpu").device_of(_DLCuda(0)) is None


def test_cai_only_arrays_need_cuda_python_to_be_placed(monkeypatch: pytest.MonkeyPatch) -> None:
    from futurekit.backends import _cuda_driver
    from futurekit.core._errors import BackendError

    class CaiOnly:  # the interface as a class-level property, as numba's arrays have it
        @property
        def __cuda_array_interface__(self) -> dict[str, Any]:
            return {"data": (0x7000, False), "shape": (1,)}

    def no_runtime() -> Any:
        raise BackendUnavailableError("no driver")

    monkeypatch.setattr(_cuda_driver, "runtime", no_runtime)
    with pytest.raises(BackendError, match="needs cuda-python"):
        TorchBackend("cuda").device_of(CaiOnly())


def test_torch_streams_and_events_are_opaque_to_the_walk() -> None:
    backend = TorchBackend("cuda")
    assert torch.cuda.Event in backend.opaque_types
    assert torch.Stream in backend.opaque_types
