"""Device correctness on a real GPU, both CUDA backends (what the sim tests cover).

Every test puts a slow kernel (``torch.cuda._sleep``, or a CuPy spin kernel) before
the write on a producer stream, completes the future with the producer current, and
reads on another stream: a missing event shows up as stale data. Run with
``scripts/gpu-check.sh`` (which makes a missing backend a failure).
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import functools
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gpu_helpers import require_backend

import futurekit

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.gpu
N = 1 << 16


@functools.cache
def cycles_per_ms() -> float:
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


def slow(ms: float = 300) -> None:
    """A slow kernel on torch's current stream."""
    torch.cuda._sleep(int(ms * cycles_per_ms()))


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


def produce(backend: str, wrap: Callable[[Any], Any] = lambda t: t) -> tuple[Any, Any]:
    """A future completed with ``wrap(t)`` where ``t`` is still being written (to 1s)."""
    fut = futurekit.Future(devices=["cuda:0"], backend=backend)
    t = torch.zeros(N, device="cuda:0")
    with on_stream(backend, torch.cuda.Stream(0)):
        slow()
        t.fill_(1)
        value = wrap(t)
        fut.set_result(value)
    return fut, t


def ones(t: Any, times: float = 1.0) -> bool:
    return bool(torch.equal(t.cpu(), torch.full((N,), times)))


def consume(backend: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` with a fresh consumer stream current; the result read back there."""
    consumer = torch.cuda.Stream(0)
    with on_stream(backend, consumer):
        out = fn()
        consumer.synchronize()
    return out


# -- callbacks -------------------------------------------------------------------------
def test_then_on_an_executor_thread(backend_name: str) -> None:
    fut, _ = produce(backend_name)
    devices: list[int] = []

    def cb(f: Any) -> Any:  # a thread with no context current before the callback
        devices.append(torch.cuda.current_device())
        return f.value() * 2  # on the callback's pool stream (torch's current, both backends)

    with cf.ThreadPoolExecutor(1) as pool:
        child = fut.then(cb, executor=pool)
        assert consume(backend_name, lambda: ones(child.wait(), 2))
    assert devices == [0]


def test_add_done_callback_reads_fresh_data(backend_name: str) -> None:
    sums: list[float] = []
    fut = futurekit.Future(devices=["cuda:0"], backend=backend_name)
    fut.add_done_callback(lambda f: sums.append(float(f.value().sum().item())))
    t = torch.zeros(N, device="cuda:0")
    with on_stream(backend_name, torch.cuda.Stream(0)):
        slow()
        t.fill_(1)
        fut.set_result(t)
    assert sums == [float(N)]


def test_then_unwrap_follows_an_inner_device_future(backend_name: str) -> None:
    outer = futurekit.Future(devices=["cuda:0"], backend=backend_name)
    inner, _ = produce(backend_name)
    child = outer.then(lambda f: inner, unwrap=True)
    outer.set_result(None)
    assert consume(backend_name, lambda: ones(child.wait()))


def test_collect_all_and_wait_all(backend_name: str) -> None:
    a, _ = produce(backend_name)
    b, _ = produce(backend_name)
    assert consume(backend_name, lambda: all(ones(v) for v in futurekit.wait_all([a, b])))
    c, _ = produce(backend_name)
    d, _ = produce(backend_name)
    both = futurekit.collect_all([c, d])
    assert consume(backend_name, lambda: all(ones(f.wait()) for f in both.wait()))


def test_synchronize_makes_the_value_host_readable(backend_name: str) -> None:
    fut, t = produce(backend_name)
    fut.synchronize()
    assert fut.is_ready()
    assert bool((t == 1).all().item())


# -- torch bridges -----------------------------------------------------------------------
def test_to_torch_is_ordered_after_our_events(backend_name: str) -> None:
    fut = futurekit.Future(devices=["cuda:0"], backend=backend_name)
    tf = fut.to_torch()
    t = torch.zeros(N, device="cuda:0")
    with on_stream(backend_name, torch.cuda.Stream(0)):
        slow()
        t.fill_(1)
        fut.set_result(t)
    consumer = torch.cuda.Stream(0)
    with torch.cuda.stream(consumer):
        got = tf.wait()  # torch's own synchronization
        assert ones(got)


def test_from_torch_is_ordered_after_torchs_events(backend_name: str) -> None:
    tf = torch.futures.Future(devices=["cuda:0"])
    fut = futurekit.from_torch(tf, devices=["cuda:0"], backend=backend_name)
    t = torch.zeros(N, device="cuda:0")
    with torch.cuda.stream(torch.cuda.Stream(0)):
        slow()
        t.fill_(1)
        tf.set_result(t)
    assert consume(backend_name, lambda: ones(fut.wait()))


# -- the container zoo and special tensors ---------------------------------------------
class GetState:
    __slots__ = ("__weakref__", "_hidden")

    def __init__(self, t: Any) -> None:
        self._hidden = lambda: t  # reachable only through __getstate__

    def __getstate__(self) -> Any:
        return {"t": self._hidden()}


def _error(t: Any) -> Any:
    return ValueError("carries", t)


ZOO: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "deque": (lambda t: collections.deque([t]), lambda v: v[0]),
    "mappingproxy": (lambda t: types.MappingProxyType({"t": t}), lambda v: v["t"]),
    "partial": (lambda t: functools.partial(print, t), lambda v: v.args[0]),
    "exception_args": (_error, lambda v: v.args[1]),
    "dict_values": (lambda t: {"t": t}.values(), lambda v: next(iter(v))),
    "getstate": (GetState, lambda v: v.__getstate__()["t"]),
}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_container_zoo(backend_name: str, name: str) -> None:
    wrap, unwrap = ZOO[name]
    fut, _ = produce(backend_name, wrap)
    assert consume(backend_name, lambda: ones(unwrap(fut.wait())))


def test_numpy_object_array(backend_name: str) -> None:
    np = pytest.importorskip("numpy")

    def wrap(t: Any) -> Any:
        arr = np.empty(1, dtype=object)
        arr[0] = t
        return arr

    fut, _ = produce(backend_name, wrap)
    assert consume(backend_name, lambda: ones(fut.wait()[0]))


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_nested_tensor_wait_and_callbacks(backend_name: str) -> None:
    fut = futurekit.Future(devices=["cuda:0"], backend=backend_name)
    ran: list[bool] = []
    fut.add_done_callback(lambda f: ran.append(True))  # record_stream must not break it
    a, b = torch.zeros(N, device="cuda:0"), torch.zeros(N, device="cuda:0")
    with on_stream(backend_name, torch.cuda.Stream(0)):
        slow()
        a.fill_(1)
        b.fill_(1)
        nt = torch.nested.nested_tensor([a, b])
        fut.set_result(nt)
    got = consume(backend_name, lambda: [t.cpu() for t in fut.wait().unbind()])
    assert ran == [True]
    assert all(torch.equal(t, torch.ones(N)) for t in got)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_quantized_tensor_wait_and_callbacks(backend_name: str) -> None:
    fut = futurekit.Future(devices=["cuda:0"], backend=backend_name)
    ran: list[bool] = []
    fut.add_done_callback(lambda f: ran.append(True))
    t = torch.zeros(N, device="cuda:0")
    with on_stream(backend_name, torch.cuda.Stream(0)):
        slow()
        t.fill_(1)
        try:
            q = torch.quantize_per_tensor(t, 0.5, 0, torch.quint8)
        except (RuntimeError, NotImplementedError) as exc:
            pytest.skip(f"this torch build cannot quantize on CUDA: {exc}")
        fut.set_result(q)
    got = consume(backend_name, lambda: fut.wait().dequantize().cpu())
    assert ran == [True] and torch.equal(got, torch.ones(N))


# -- foreign arrays ----------------------------------------------------------------------
def _spin_kernel(cupy: Any) -> Any:
    return cupy.RawKernel(
        r"""
        extern "C" __global__ void spin_fill(long long cycles, float* out, int n) {
            long long start = clock64();
            while (clock64() - start < cycles) {}
            for (int i = 0; i < n; ++i) out[i] = 1.0f;
        }
        """,
        "spin_fill",
    )


@pytest.mark.parametrize("torch_current", ["producer", "default"])
def test_cupy_array_in_a_torch_backend_future(torch_current: str) -> None:
    """Found through DLPack; with torch's default stream current, the CAI stream orders it."""
    cupy = pytest.importorskip("cupy")
    require_backend("torch")
    spin = _spin_kernel(cupy)
    arr = cupy.zeros(16, dtype=cupy.float32)
    producer = cupy.cuda.Stream(non_blocking=True)
    fut = futurekit.Future(devices=["cuda:0"], backend="torch")
    ext = torch.cuda.ExternalStream(producer.ptr, device=torch.device("cuda", 0))
    stream_cm = torch.cuda.stream(ext) if torch_current == "producer" else contextlib.nullcontext()
    with producer, stream_cm:
        spin((1,), (1,), (cupy.int64(int(300 * cycles_per_ms())), arr, cupy.int32(16)))
        fut.set_result({"out": arr})
    consumer = cupy.cuda.Stream(non_blocking=True)
    torch_consumer = torch.cuda.ExternalStream(consumer.ptr, device=torch.device("cuda", 0))
    with consumer, torch.cuda.stream(torch_consumer):
        host = cupy.asnumpy(fut.wait()["out"], stream=consumer)
    assert host.tolist() == [1.0] * 16


def test_torch_tensors_in_a_cuda_python_future_with_torch_callbacks() -> None:
    require_backend("cuda-python")
    fut, _ = produce("cuda-python")
    # no helper: the pool streams are torch's current streams inside the callback
    child = fut.then(lambda f: f.value() + 1)
    assert consume("cuda-python", lambda: ones(child.wait(), 2))
