"""Per-future device state: the backend, the devices, and the recorded events.

This is where torch's CUDA future semantics live, written against the generic
backend protocol (see ``docs/devices.md``):

* ``prepare`` (at ``set_result``): find the buffers, check their devices against
  the future's, record one event per used device on its current stream;
* ``sync_current`` (at ``wait()``): make each current stream wait on the events;
* ``callback_streams`` (around each callback): one fresh pool stream per device
  of the future made current, each already waiting on the events.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._devices import Device, parse_devices
from ._extract import find_buffers

if TYPE_CHECKING:
    from futurekit.backends._protocol import Backend

__all__ = ["DeviceState", "make_device_state"]


def _list_devices(devices: Sequence[Device] | set[Device]) -> str:
    names = [str(d) for d in sorted(devices)]
    if not names:
        return "(none)"
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def _resolve(device_type: str, name: str | None) -> Backend:
    from futurekit.backends._registry import get_backend

    backend: Backend = get_backend(device_type, name)
    return backend


def _int_type() -> str:
    from futurekit.backends._registry import int_device_type

    return int_device_type()


def make_device_state(devices: Any, backend: str | None) -> DeviceState | None:
    """Parse ``devices=`` and resolve its backend; ``None`` for a CPU future."""
    if backend is not None and not isinstance(backend, str):
        raise TypeError(f"backend must be a backend name (str) or None, got {backend!r}")
    parsed = parse_devices(devices, _int_type)
    if not parsed:
        return None
    resolved = _resolve(parsed[0].type, backend)
    return DeviceState(resolved, parsed)


class _StrongRef:
    """Stands in for a weak reference to an object that cannot be weakly referenced."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __call__(self) -> Any:
        return self.obj


class DeviceState:
    """Device bookkeeping of one non-CPU future."""

    __slots__ = ("backend", "buffers", "devices", "events")

    def __init__(self, backend: Backend, devices: tuple[Device, ...]) -> None:
        self.backend = backend
        self.devices = devices
        self.events: tuple[tuple[Device, Any], ...] = ()
        self.buffers: tuple[Any, ...] = ()

    def child(self) -> DeviceState:
        """State for a ``then`` child: same backend and devices, no events yet."""
        return DeviceState(self.backend, self.devices)

    def prepare(self, value: Any) -> tuple[tuple[tuple[Device, Any], ...], tuple[Any, ...]]:
        """Find the buffers in ``value`` and record events on the current streams.

        Raises:
            ValueError: a buffer lives on a device outside the future's devices
                (torch's message).
            Exception: whatever the backend raised.
        """
        from ._future import Future

        backend = self.backend
        found = find_buffers(value, backend.device_of, (Future,))
        if not found:
            return (), ()
        used = {device for _, device in found}
        expected_type = self.devices[0].type
        for device in used:
            if device.type != expected_type:
                raise ValueError(
                    f"Expected all data ptrs to be on a device of type {expected_type}, "
                    f"got one on device {device}"
                )
        if not used.issubset(self.devices):
            raise ValueError(
                "The result contained tensors residing on device(s) "
                f"{_list_devices(used - set(self.devices))} which are not among the "
                f"expected device(s) {_list_devices(self.devices)}"
            )
        events = tuple(
            (device, backend.record_event(backend.current_stream(device)))
            for device in sorted(used)
        )
        buffers: tuple[Any, ...] = ()
        if getattr(backend, "record_value_on_stream", None) is not None:
            refs: list[tuple[Callable[[], Any], Device]] = []
            for buf, device in found:  # keep each buffer's device: no device_of at wait()
                try:
                    refs.append((weakref.ref(buf), device))
                except TypeError:
                    refs.append((_StrongRef(buf), device))
            buffers = tuple(refs)
        return events, buffers

    def _record_buffers(self, streams: dict[Device, Any]) -> None:
        record = getattr(self.backend, "record_value_on_stream", None)
        if record is None:
            return
        for ref, device in self.buffers:
            buf = ref()
            if buf is None:
                continue  # freed since set_result: nothing to protect
            stream = streams.get(device)
            if stream is not None:
                record(buf, stream)

    def sync_current(self) -> None:
        """Make the calling thread's current streams wait on the events (no host block)."""
        backend = self.backend
        streams: dict[Device, Any] = {}
        for device, event in self.events:
            stream = streams[device] = backend.current_stream(device)
            backend.wait_event(stream, event)
        if self.buffers:
            self._record_buffers(streams)

    @contextmanager
    def callback_streams(self) -> Iterator[None]:
        """Fresh pool streams for every device, current and synchronized, around a callback."""
        backend = self.backend
        streams = {device: backend.stream_from_pool(device) for device in self.devices}
        with backend.use_streams(list(streams.values())):
            for device, event in self.events:
                backend.wait_event(streams[device], event)
            if self.buffers:
                self._record_buffers(streams)
            yield

    def is_ready(self) -> bool:
        """Whether every recorded event has completed."""
        query = self.backend.query_event
        return all(query(event) for _, event in self.events)

    def synchronize(self) -> None:
        """Block the host until every recorded event has completed."""
        for _, event in self.events:
            self.backend.synchronize_event(event)
