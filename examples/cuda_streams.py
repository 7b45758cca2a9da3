"""Stream ordering on a real GPU, with each available CUDA backend.

A producer stream runs a slow kernel and then writes a tensor; the future is
completed right after the launch (nothing has finished yet). ``set_result``
records an event on the producer stream; ``wait()`` on a consumer stream makes
that stream wait on the event, so work queued there sees the finished tensor,
while the host never blocked on the GPU. A ``then`` callback runs on a pool
stream that already waits on the event.

Without a GPU (or without torch built with CUDA) the example says why and exits 0;
``examples/sim_streams.py`` shows the same ordering on the simulated device.

Run: python examples/cuda_streams.py
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import futurekit as fk
from futurekit.backends import available_backends

N = 1 << 20
SLEEP_CYCLES = 200_000_000  # roughly 0.1 s of GPU time on a ~2 GHz part


def cuda_backends() -> list[str]:
    """Names of the available backends serving ``cuda`` devices, best first."""
    return [b.name for b in available_backends() if b.device_type == "cuda" and b.available]


@contextlib.contextmanager
def producing_on(backend: str, stream: Any) -> Iterator[None]:
    """Make ``stream`` current for torch and for the chosen futurekit backend."""
    import torch

    with torch.cuda.stream(stream):
        if backend == "cuda-python":  # it keeps its own current stream per thread
            from futurekit.backends.cuda import use_stream

            with use_stream(stream):
                yield
        else:
            yield


def double_on_pool_stream(backend: str, f: fk.Future[Any]) -> Any:
    """A callback: launch work on the pool stream the backend made current."""
    import torch

    if backend != "cuda-python":  # the torch backend made the pool stream torch's current
        return f.value() * 2
    # cuda-python made its pool stream current for futurekit, not for torch: hand
    # that stream to torch, or the kernel would run on torch's current stream,
    # which the child's event does not cover.
    from futurekit.backends.cuda import current_stream

    pool = current_stream(0)
    with torch.cuda.stream(torch.cuda.ExternalStream(pool.handle, device=torch.device("cuda", 0))):
        return f.value() * 2


def demo(backend: str) -> None:
    import torch

    device = torch.device("cuda", 0)
    producer = torch.cuda.Stream(device)
    consumer = torch.cuda.Stream(device)
    x = torch.zeros(N, device=device)
    torch.cuda.synchronize(device)

    with producing_on(backend, producer):
        sleep = getattr(torch.cuda, "_sleep", None)
        if sleep is not None:
            sleep(SLEEP_CYCLES)  # a slow kernel: the write below waits behind it
        x.add_(1)
        fut: fk.Future[torch.Tensor] = fk.Future(devices=["cuda:0"], backend=backend)
        doubled = fut.then(lambda f: double_on_pool_stream(backend, f))
        fut.set_result(x)  # records an event on the producer stream
    print(f"[{backend}] after set_result: done()={fut.done()} is_ready()={fut.is_ready()}")

    with producing_on(backend, consumer):
        total = fut.wait().sum()  # the consumer stream waits on the event first
        total_doubled = doubled.wait().sum()
    consumer.synchronize()
    print(
        f"[{backend}] consumer saw sum={int(total.item())} (expected {N}), "
        f"then-child sum={int(total_doubled.item())} (expected {2 * N})"
    )
    assert int(total.item()) == N and int(total_doubled.item()) == 2 * N

    fut.synchronize()  # beyond torch: block the host until the recorded work is done
    print(f"[{backend}] after synchronize(): is_ready()={fut.is_ready()}")


def events_only(backend: str) -> None:
    """cuda-python without torch: a round trip with no kernel-launching library."""
    fut: fk.Future[str] = fk.Future(devices=["cuda:0"], backend=backend)
    child = fut.then(lambda f: f.value().upper())
    fut.set_result("no buffers")
    fut.synchronize()
    print(
        f"[{backend}] round trip ok: {child.wait()!r}, is_ready()={fut.is_ready()} "
        "(install torch with CUDA to see kernels ordered across streams)"
    )


def main() -> int:
    names = cuda_backends()
    if not names:
        print("No CUDA backend is available on this machine, so there is nothing to run.")
        for b in available_backends():
            if b.device_type == "cuda":
                print(f"  {b.name}: {b.reason}")
        print(
            "On a machine with an NVIDIA GPU: pip install 'futurekit[torch]' or "
            "'futurekit[cuda]'. examples/sim_streams.py shows the same ordering on the "
            "simulated device."
        )
        return 0
    try:
        import torch

        have_torch_cuda = torch.cuda.is_available()
    except ImportError:
        have_torch_cuda = False
    for name in names:
        if have_torch_cuda:
            demo(name)
        else:
            events_only(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
