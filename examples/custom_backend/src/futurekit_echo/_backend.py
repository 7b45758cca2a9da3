"""The echo backend: host-synchronous streams, always-complete events."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from futurekit import Device
from futurekit.backends import BackendBase

__all__ = ["EchoBackend", "EchoBuffer", "EchoEvent", "EchoStream", "conformance_ops"]


class EchoStream:
    """A stream on an echo device: launched work runs at once, on the host."""

    def __init__(self, device: Device, name: str = "") -> None:
        self.device = device
        self.name = name

    def launch(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` now (the echo device is synchronous)."""
        return fn(*args)

    def __repr__(self) -> str:
        return f"<EchoStream {self.device} {self.name}>"


class EchoEvent:
    """An event on an echo stream; complete as soon as it exists."""

    __slots__ = ("device",)

    def __init__(self, device: Device) -> None:
        self.device = device


class EchoBuffer:
    """A buffer on an echo device, holding ``value``."""

    __slots__ = ("__weakref__", "device", "value")

    def __init__(self, device: Device | str, value: Any = None) -> None:
        if isinstance(device, str):
            kind, _, index = device.partition(":")
            device = Device(kind, int(index or 0))
        if device.type != "echo":
            raise ValueError(f"EchoBuffer needs an echo device such as 'echo:0', got {device}")
        self.device = device
        self.value = value


class EchoBackend(BackendBase):
    """The backend the plugin registers for device type ``"echo"``.

    Args:
        devices: how many echo devices exist.
    """

    device_type = "echo"

    def __init__(self, devices: int = 2) -> None:
        self._count = devices
        self._defaults = [EchoStream(Device("echo", i), "default") for i in range(devices)]
        self._local = threading.local()

    def device_count(self) -> int:
        """Number of echo devices."""
        return self._count

    def _check(self, device: Device) -> int:
        if device.type != "echo" or not 0 <= device.index < self._count:
            raise ValueError(f"no such echo device: {device} (there are {self._count})")
        return device.index

    def _current(self) -> dict[int, EchoStream]:
        if not hasattr(self._local, "streams"):
            self._local.streams = {}
        current: dict[int, EchoStream] = self._local.streams
        return current

    def current_stream(self, device: Device) -> EchoStream:
        """This thread's current stream on ``device`` (its default stream at first)."""
        index = self._check(device)
        return self._current().get(index, self._defaults[index])

    def stream_from_pool(self, device: Device) -> EchoStream:
        """A fresh stream: echo streams cost nothing."""
        return EchoStream(Device("echo", self._check(device)), "pool")

    @contextlib.contextmanager
    def use_streams(self, streams: Sequence[Any]) -> Iterator[None]:
        """Make ``streams`` current for their devices in this thread; restore after."""
        current = self._current()
        saved = [(s.device.index, current.get(s.device.index)) for s in streams]
        for stream in streams:
            current[stream.device.index] = stream
        try:
            yield
        finally:
            for index, previous in reversed(saved):
                if previous is None:
                    current.pop(index, None)
                else:
                    current[index] = previous

    def record_event(self, stream: Any) -> EchoEvent:
        """Work before it already ran: the event is complete."""
        return EchoEvent(stream.device)

    def wait_event(self, stream: Any, event: Any) -> None:
        """Nothing to wait for on a synchronous device."""

    def query_event(self, event: Any) -> bool:
        """Always complete."""
        return True

    def synchronize_event(self, event: Any) -> None:
        """Returns at once."""

    def device_of(self, obj: Any) -> Device | None:
        """The device of an :class:`EchoBuffer`; ``None`` for anything else."""
        return obj.device if isinstance(obj, EchoBuffer) else None


def conformance_ops() -> Any:
    """Buffer operations for ``futurekit.testing.check_backend(..., ops=...)``."""
    from futurekit.testing import BufferOps

    def write(stream: EchoStream, buffer: EchoBuffer, value: int, delay: float) -> None:
        stream.launch(setattr, buffer, "value", value)

    def read(stream: EchoStream, buffer: EchoBuffer) -> Any:
        return stream.launch(getattr, buffer, "value")

    return BufferOps(
        make_buffer=lambda device: EchoBuffer(device, 0),
        write=write,
        read=read,
        asynchronous=False,
    )
