"""How the conformance kit makes, writes and reads device buffers of a backend.

The kit cannot create buffers for an arbitrary backend, so it takes a
:class:`BufferOps` record. It has built-in ones for ``sim`` and, where torch can
drive the backend's streams, for CUDA backends (torch's own backend, and any
backend whose streams expose ``__cuda_stream__`` and whose ``device_of``
recognises torch tensors).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from futurekit.core._devices import Device

__all__ = ["BufferOps", "default_ops", "sim_ops", "torch_ops"]


@dataclass(frozen=True)
class BufferOps:
    """Buffer operations the conformance kit needs for its data-ordering checks.

    Every operation is given the stream to run on explicitly; the buffers hold
    small integers.

    Attributes:
        make_buffer: ``make_buffer(device)`` returns a new buffer on ``device``
            holding 0, already visible to every stream.
        write: ``write(stream, buffer, value, delay)`` enqueues on ``stream``
            about ``delay`` seconds of device work followed by ``buffer := value``,
            and returns at once (the host does not wait).
        read: ``read(stream, buffer)`` enqueues a read of ``buffer`` on
            ``stream``, blocks the host until that read ran, and returns the
            value it saw.
        asynchronous: whether launched work runs after the host call returns
            (``True`` for real devices and ``sim``). The kit then also checks that
            ``wait()`` does not block the host on device work.
        delay: seconds of simulated work used by the checks.
    """

    make_buffer: Callable[[Device], Any]
    write: Callable[[Any, Any, int, float], None]
    read: Callable[[Any, Any], Any]
    asynchronous: bool = True
    delay: float = 0.3


def sim_ops() -> BufferOps:
    """Operations for the ``sim`` backend: ``Buffer`` objects and launched Python work."""
    from futurekit.backends.sim import Buffer

    def write(stream: Any, buffer: Any, value: int, delay: float) -> None:
        stream.launch(time.sleep, delay)
        stream.launch(setattr, buffer, "value", value)

    def read(stream: Any, buffer: Any) -> Any:
        seen: list[Any] = []
        stream.launch(lambda: seen.append(buffer.value))
        stream.synchronize()
        return seen[0]

    def make_buffer(device: Device) -> Buffer:
        # not Buffer(device): that checks the index against the shared backend's
        # device count, and the backend under test may have more devices
        buffer = Buffer.__new__(Buffer)
        buffer.device, buffer.value = device, 0
        return buffer

    return BufferOps(make_buffer=make_buffer, write=write, read=read)


def torch_ops(to_torch_stream: Callable[[Any], Any] | None = None) -> BufferOps:
    """Operations on CUDA tensors with ``torch.cuda._sleep`` as the slow producer.

    Args:
        to_torch_stream: turns a backend stream into a ``torch.cuda.Stream``;
            by default the stream is used as it is (torch's own backend).
    """
    torch: Any = importlib.import_module("torch")
    convert = to_torch_stream or (lambda stream: stream)
    cycles_per_ms: list[float] = []

    def spin(seconds: float) -> None:
        if not cycles_per_ms:  # measured once, as torch's tests do
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            torch.cuda._sleep(1_000_000)
            end.record()
            end.synchronize()
            cycles_per_ms.append(1_000_000 / max(start.elapsed_time(end), 1e-3))
        torch.cuda._sleep(int(seconds * 1000 * cycles_per_ms[0]))

    def make_buffer(device: Device) -> Any:
        buffer = torch.zeros((), dtype=torch.int64, device=f"cuda:{device.index}")
        torch.cuda.synchronize(device.index)
        return buffer

    def write(stream: Any, buffer: Any, value: int, delay: float) -> None:
        with torch.cuda.device(buffer.device), torch.cuda.stream(convert(stream)):
            spin(delay)
            buffer.fill_(value)

    def read(stream: Any, buffer: Any) -> Any:
        with torch.cuda.device(buffer.device), torch.cuda.stream(convert(stream)):
            return int(buffer.item())

    return BufferOps(make_buffer=make_buffer, write=write, read=read)


def _external_stream(stream: Any) -> Any:
    torch: Any = importlib.import_module("torch")

    _, handle = stream.__cuda_stream__()
    return torch.cuda.ExternalStream(int(handle))


def default_ops(backend: Any, device: Device) -> BufferOps | None:
    """Built-in operations for ``backend`` if the kit knows how to drive it, else ``None``."""
    from futurekit.backends.sim import SimBackend

    if isinstance(backend, SimBackend):
        return sim_ops()
    if getattr(backend, "device_type", None) != "cuda":
        return None
    try:
        import torch

        if not torch.cuda.is_available():
            return None
    except Exception:
        return None
    if type(backend).__module__ == "futurekit.backends.torch":
        return torch_ops()
    try:
        probe = torch.zeros((), device=f"cuda:{device.index}")
        if backend.device_of(probe) != device:
            return None
        if not hasattr(backend.current_stream(device), "__cuda_stream__"):
            return None
    except Exception:
        return None
    return torch_ops(_external_stream)
