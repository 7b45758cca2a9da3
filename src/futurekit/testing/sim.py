"""The simulated asynchronous device, for testing stream-ordering code without a GPU.

Devices are ``"sim:0"``, ``"sim:1"`` ... (2 by default; set
``FUTUREKIT_SIM_DEVICES`` before first use for more). Each stream is a FIFO
worker thread: work launched on it runs later, in order, while the host goes on,
so a missing synchronization shows up as stale data just as on a GPU::

    import time

    from futurekit import Future
    from futurekit.testing import sim

    buf = sim.Buffer("sim:0", 0)
    producer = sim.Stream("sim:0")
    with sim.use_stream(producer):
        sim.launch(producer, time.sleep, 0.2)          # a slow kernel
        sim.launch(producer, setattr, buf, "value", 1)
        fut = Future(devices=["sim:0"])
        fut.set_result(buf)                            # event recorded on producer

    consumer = sim.Stream("sim:0")
    with sim.use_stream(consumer):
        fut.wait()                                     # consumer waits on the event
        seen = []
        sim.launch(consumer, lambda: seen.append(buf.value))
        consumer.synchronize()
    assert seen == [1]
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from futurekit.backends.sim import Buffer, SimEvent, SimStream, get_backend
from futurekit.core._devices import Device, DeviceLike

__all__ = [
    "Buffer",
    "Event",
    "Stream",
    "current_device",
    "current_stream",
    "default_stream",
    "device_count",
    "launch",
    "set_device",
    "use_device",
    "use_stream",
]

#: The event type of the simulated device (``stream.record()`` returns one).
Event = SimEvent


class Stream(SimStream):
    """A new stream on a simulated device: a FIFO worker of its own.

    Args:
        device: ``"sim:N"`` or ``Device("sim", N)``.
        name: shown in ``repr`` and in the worker thread's name.

    Raises:
        InvalidDeviceError: not a sim device or no such index.
    """

    __slots__ = ()

    def __init__(self, device: DeviceLike, name: str = "") -> None:
        super().__init__(get_backend().check_device(device), name)


def device_count() -> int:
    """Number of simulated devices."""
    return get_backend().device_count()


def current_device() -> Device:
    """The calling thread's current sim device (``sim:0`` until changed, as on CUDA).

    Callbacks of a sim future run with the device that was current when the future
    completed, as torch's CUDA callbacks do.
    """
    return get_backend().current_device()


def set_device(device: DeviceLike) -> None:
    """Make ``device`` the calling thread's current sim device (``torch.cuda.set_device``).

    Raises:
        InvalidDeviceError: not a sim device, or no such index.
    """
    get_backend().set_device(device)


@contextlib.contextmanager
def use_device(device: DeviceLike) -> Iterator[Device]:
    """Make ``device`` current in this thread for the block (``torch.cuda.device``).

    Raises:
        InvalidDeviceError: not a sim device, or no such index.
    """
    backend = get_backend()
    checked = backend.check_device(device)
    with backend.use_device(checked):
        yield checked


def current_stream(device: DeviceLike) -> SimStream:
    """The calling thread's current stream on ``device`` (its default stream unless changed)."""
    backend = get_backend()
    return backend.current_stream(backend.check_device(device))


def default_stream(device: DeviceLike) -> SimStream:
    """The default stream of ``device``."""
    backend = get_backend()
    return backend.default_stream(backend.check_device(device))


@contextlib.contextmanager
def use_stream(stream: SimStream) -> Iterator[SimStream]:
    """Make ``stream`` current for its device in this thread, restoring the previous one.

    As ``torch.cuda.stream``, the stream's device is also the current device for
    the block.

    Raises:
        TypeError: ``stream`` is not a sim stream.
    """
    if not isinstance(stream, SimStream):
        raise TypeError(f"use_stream() expects a sim Stream, got {type(stream).__name__}")
    backend = get_backend()
    with backend.use_device(stream.device), backend.use_streams([stream]):
        yield stream


def launch(stream: SimStream, fn: Callable[..., Any], *args: Any) -> None:
    """Enqueue ``fn(*args)`` on ``stream``; it runs after the work launched before it.

    Raises:
        TypeError: ``stream`` is not a sim stream or ``fn`` is not callable.
    """
    if not isinstance(stream, SimStream):
        raise TypeError(f"launch() expects a sim Stream, got {type(stream).__name__}")
    if not callable(fn):
        raise TypeError(f"launch() expects a callable, got {type(fn).__name__}: {fn!r}")
    stream.launch(fn, *args)


# Shown as futurekit.testing.sim.X in docs and reprs.
for _obj in (Buffer, Stream):
    _obj.__module__ = __name__
del _obj
