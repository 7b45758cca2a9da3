"""torch's CUDA future tests (rpc_test.py), ported to both futurekit CUDA backends.

Each test puts a ~1 s sleep kernel on a producer stream before the value is set,
and reads the value on another stream: without the event the consumer would read
stale memory. With the ``cuda-python`` backend, torch work is launched on the
stream made current with :func:`futurekit.backends.cuda.use_stream` (the torch
stream itself, or an ``ExternalStream`` over futurekit's callback stream).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from gpu_helpers import require_backend

import futurekit
from futurekit import Device

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.gpu


# -- helpers ----------------------------------------------------------------------------
@functools.cache
def cycles_per_ms() -> float:
    """GPU clock cycles per millisecond, measured as torch's test suite does."""
    rates = []
    for _ in range(3):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        torch.cuda._sleep(1_000_000)
        end.record()
        end.synchronize()
        rates.append(1_000_000 / start.elapsed_time(end))
    return sorted(rates)[1]


def sleep_1s() -> None:
    """Queue a ~1 s kernel on torch's current stream."""
    torch.cuda._sleep(int(1000 * cycles_per_ms()))


@contextlib.contextmanager
def on_stream(backend: str, stream: Any) -> Iterator[None]:
    """Make ``stream`` current for torch and for the futurekit backend."""
    with torch.cuda.stream(stream):
        if backend == "cuda-python":
            from futurekit.backends.cuda import use_stream

            with use_stream(stream):
                yield
        else:
            yield


@contextlib.contextmanager
def callback_streams(backend: str, indices: Sequence[int]) -> Iterator[None]:
    """Inside a callback: run torch work on futurekit's callback streams."""
    if backend != "cuda-python":
        yield  # the torch backend made its pool streams torch's current streams
        return
    from futurekit.backends.cuda import current_stream

    with contextlib.ExitStack() as stack:
        for index in indices:
            ours = current_stream(index)
            ext = torch.cuda.ExternalStream(ours.handle, device=torch.device("cuda", index))
            stack.enter_context(torch.cuda.stream(ext))
        yield


class TensorWrapper:
    """torch's test class: a tensor next to things the extractor must skip."""

    __slots__ = ("event", "lock", "tensor", "thread")

    def __init__(self, t: Any) -> None:
        self.tensor = t
        self.lock = threading.Lock()
        self.event = threading.Event()
        self.thread = threading.Thread(target=self.event.wait)
        self.thread.start()

    def release(self) -> None:
        self.event.set()
        self.thread.join()


def _sparse(device: Any) -> Any:
    i = torch.tensor([[0, 1, 1], [2, 0, 2]])
    v = torch.tensor([3.0, 4.0, 5.0])
    return torch.sparse_coo_tensor(i, v, (100, 100), device=device).coalesce()


def _extraction(
    backend: str, wrapper: Callable[[Any], Any], unwrapper: Callable[[Any], Any], sparse: bool
) -> None:
    dev = torch.device("cuda", 0)
    fut = futurekit.Future(devices=["cuda:0"], backend=backend)
    producer, consumer = torch.cuda.Stream(dev), torch.cuda.Stream(dev)
    base = _sparse(dev) if sparse else torch.zeros(100, device=dev)
    with on_stream(backend, producer):
        sleep_1s()
        tensor = base * 2 if sparse else base + 1
        wrapped = wrapper(tensor)
        fut.set_result(wrapped)
    with on_stream(backend, consumer):
        result = unwrapper(fut.wait())
        if sparse:
            got = result.coalesce()
            assert torch.equal(got.indices().cpu(), base.indices().cpu())
            assert torch.equal(got.values().cpu(), base.values().cpu() * 2)
            assert got.size() == base.size()
        else:
            assert torch.equal(result.cpu(), torch.ones(100))
    if isinstance(wrapped, TensorWrapper):
        wrapped.release()


# -- ported tests -----------------------------------------------------------------------
@pytest.mark.parametrize("device", [0, "cuda:0", "device"], ids=["int", "str", "device"])
def test_device_forms(backend_name: str, device: Any) -> None:
    if device == "device":
        device = torch.device("cuda", 0)
    fut = futurekit.Future(devices=[device], backend=backend_name)
    fut.set_result(None)
    assert fut.wait() is None


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("kind", ["tensor", "list", "custom_class"])
def test_can_extract(backend_name: str, kind: str, sparse: bool) -> None:
    wrappers: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
        "tensor": (lambda t: t, lambda v: v),
        "list": (lambda t: [t], lambda v: v[0]),
        "custom_class": (TensorWrapper, lambda v: v.tensor),
    }
    wrap, unwrap = wrappers[kind]
    _extraction(backend_name, wrap, unwrap, sparse)


def test_is_ready_and_synchronize(backend_name: str) -> None:
    dev = torch.device("cuda", 0)
    fut = futurekit.Future(devices=["cuda:0"], backend=backend_name)
    with on_stream(backend_name, torch.cuda.Stream(dev)):
        sleep_1s()
        fut.set_result(torch.ones(10, device=dev))
    assert fut.done()
    assert not fut.is_ready()  # the 1 s kernel is still running
    fut.synchronize()
    assert fut.is_ready()


@pytest.mark.usefixtures("two_gpus")
def test_callback_changes_devices(backend_name: str) -> None:
    tensor0 = torch.zeros(100, device="cuda:0")
    tensor1 = torch.zeros(100, device="cuda:1")
    parent = futurekit.Future(devices=["cuda:0", "cuda:1"], backend=backend_name)

    def cb(fut: Any) -> Any:
        with callback_streams(backend_name, [0, 1]):
            t0 = fut.value()
            tensor1.copy_(t0, non_blocking=True)
        return tensor1

    child = parent.then(cb)
    with on_stream(backend_name, torch.cuda.Stream("cuda:0")):
        sleep_1s()
        tensor0.fill_(1)
        parent.set_result(tensor0)
    with on_stream(backend_name, torch.cuda.Stream("cuda:1")):
        assert torch.equal(child.wait().cpu(), torch.ones(100))


@pytest.mark.usefixtures("two_gpus")
def test_value_on_bad_device(backend_name: str) -> None:
    tensor0 = torch.zeros(100, device="cuda:0")
    tensor1 = torch.zeros(100, device="cuda:1")
    parent = futurekit.Future(devices=["cuda:1"], backend=backend_name)

    def cb(fut: Any) -> Any:  # does not touch the parent's value
        with callback_streams(backend_name, [1]):
            tensor1.fill_(1)
        return tensor1

    child = parent.then(cb)
    with on_stream(backend_name, torch.cuda.Stream("cuda:0")):
        sleep_1s()
        tensor0.fill_(1)
        parent.set_result(tensor0)
    with pytest.raises(
        ValueError,
        match=r"The result contained tensors residing on device\(s\) cuda:0 which are not "
        r"among the expected device\(s\) cuda:1",
    ):
        parent.wait()
    with on_stream(backend_name, torch.cuda.Stream("cuda:1")):
        assert torch.equal(child.wait().cpu(), torch.ones(100))


def test_modify_tensor_inplace(backend_name: str) -> None:
    tensor = torch.zeros(100, device="cuda:0")
    fut = futurekit.Future(devices=["cuda:0"], backend=backend_name)
    with on_stream(backend_name, torch.cuda.Stream(0)):
        sleep_1s()
        fut.set_result(tensor)
    tensor.add_(1)  # undefined behaviour for the reader; must not crash
    fut.wait()


def test_replace_tensor(backend_name: str) -> None:
    tensor_list = [torch.zeros(100, device="cuda:0")]
    fut = futurekit.Future(devices=["cuda:0"], backend=backend_name)
    with on_stream(backend_name, torch.cuda.Stream(0)):
        sleep_1s()
        fut.set_result(tensor_list)
    tensor_list[0] = torch.ones(100, device="cuda:0")  # the original may now be freed
    gc.collect()
    fut.wait()


def test_cupy_arrays_with_cuda_python() -> None:
    cupy = pytest.importorskip("cupy")
    from futurekit.backends import get_backend
    from futurekit.backends.cuda import use_stream

    require_backend("cuda-python")  # skips with the reason (fails if required)
    backend = get_backend("cuda", "cuda-python")
    spin = cupy.RawKernel(
        r"""
        extern "C" __global__ void spin_add(long long cycles, float* out, int n) {
            long long start = clock64();
            while (clock64() - start < cycles) {}
            for (int i = 0; i < n; ++i) out[i] += 1.0f;
        }
        """,
        "spin_add",
    )
    arr = cupy.zeros(16, dtype=cupy.float32)

    class CaiOnly:  # only __cuda_array_interface__: the driver finds the device
        def __init__(self, a: Any) -> None:
            self.__cuda_array_interface__ = a.__cuda_array_interface__

    assert backend.device_of(arr) == Device("cuda", 0)
    assert backend.device_of(CaiOnly(arr)) == Device("cuda", 0)

    fut = futurekit.Future(devices=["cuda:0"], backend="cuda-python")
    producer, consumer = cupy.cuda.Stream(non_blocking=True), cupy.cuda.Stream(non_blocking=True)
    with producer, use_stream(producer):
        spin((1,), (1,), (cupy.int64(int(1000 * cycles_per_ms())), arr, cupy.int32(16)))
        fut.set_result({"out": arr})
    with consumer, use_stream(consumer):
        host = cupy.asnumpy(fut.wait()["out"], stream=consumer)
    assert host.tolist() == [1.0] * 16


def test_check_backend_conformance(backend_name: str) -> None:
    from futurekit.backends import get_backend
    from futurekit.testing import check_backend

    devices = [Device("cuda", i) for i in range(torch.cuda.device_count())]
    check_backend(get_backend("cuda", backend_name), devices)
