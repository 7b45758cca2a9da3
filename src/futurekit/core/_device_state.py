"""Per-future device state: the backend, the devices, and the recorded events.

This is where torch's CUDA future semantics live, written against the generic
backend protocol (see ``docs/devices.md``):

* ``prepare`` (at ``set_result``): find the buffers, check their devices against
  the future's, record one event per used device on its current stream;
* ``sync_current`` (at ``wait()``): make each current stream wait on the events;
* ``callback_streams`` (around each callback): the device that was current at
  completion made current again (torch's ``currentDevice_``), and one fresh pool
  stream per device of the future made current, each already waiting on the events;
* ``synchronize`` / ``call_when_ready``: the host waits for the recorded events.

Optional backend members, used when present (see ``BackendBase``):
``current_device()``, ``use_device(device)``, ``opaque_types``,
``order_buffer(buffer, stream)``, ``record_value_on_stream(buffer, stream)`` and
``from_torch_streams(devices)``.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._devices import Device, parse_devices
from ._errors import BackendError, InvalidDeviceError
from ._extract import find_buffers

if TYPE_CHECKING:
    from futurekit.backends._protocol import Backend

__all__ = ["DeviceState", "check_indices", "make_device_state"]

logger = logging.getLogger("futurekit")


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
    check_indices(resolved, parsed)
    return DeviceState(resolved, parsed)


def check_indices(backend: Backend, devices: Sequence[Device]) -> None:
    """Refuse device indices beyond ``backend.device_count()`` (torch's message).

    torch only notices an out-of-range index when it first asks for a stream on it
    (``Device index value 5 is out of index range [0, 2)``); futurekit checks when
    the future is made, so that no callback can later fail to get a stream.

    Raises:
        InvalidDeviceError: an index is out of range (a ``ValueError`` and a
            ``RuntimeError``).
        BackendError: the backend's ``device_count()`` is not a non-negative int.
    """
    count = backend.device_count()
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise BackendError(
            f"{backend!r}.device_count() returned {count!r}; a backend must return the "
            "number of its devices as an int"
        )
    for device in devices:
        if not 0 <= device.index < count:
            raise InvalidDeviceError(
                f"Device index value {device.index} is out of index range [0, {count}): "
                f"{device} does not exist ({backend!r} has {count} {device.type} "
                f"device{'' if count == 1 else 's'})"
            )


class _StrongRef:
    """Stands in for a weak reference to an object that cannot be weakly referenced."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __call__(self) -> Any:
        return self.obj


class Recorded(tuple):  # type: ignore[type-arg]
    """The events of a completed device future, plus the device current at completion.

    A tuple of ``(device, event)`` pairs (what the core stores as ``dev.events``);
    ``device`` is the device of the future's type that was current in the completing
    thread (``None`` when the backend has no current device). Callbacks run with it
    made current again, as torch's do.
    """

    device: Device | None

    def __new__(cls, events: Any, device: Device | None) -> Recorded:
        self = super().__new__(cls, events)
        self.device = device
        return self


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

        Returns ``(events, buffers)``: ``events`` is a :class:`Recorded` (it also
        carries the device current at completion); ``buffers`` are weak references
        to the buffers with their devices, when the backend has the allocator hint.

        Raises:
            ValueError: a buffer lives on a device outside the future's devices
                (torch's message).
            Exception: whatever the backend raised.
        """
        from ._completion import FutureBase

        backend = self.backend
        current_device = getattr(backend, "current_device", None)
        completed_on = current_device() if current_device is not None else None
        skip: tuple[type, ...] = (FutureBase, *getattr(backend, "opaque_types", ()))
        found = find_buffers(value, backend.device_of, skip)
        if not found:
            return Recorded((), completed_on), ()
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
        ordered = sorted(used)
        streams = {device: backend.current_stream(device) for device in ordered}
        order = getattr(backend, "order_buffer", None)
        if order is not None:  # e.g. a CUDA Array Interface "stream": wait for it first
            for buf, device in found:
                order(buf, streams[device])
        events = Recorded(
            tuple((device, backend.record_event(streams[device])) for device in ordered),
            completed_on,
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

    @property
    def completed_on(self) -> Device | None:
        """The device that was current when the future completed (``None``: unknown)."""
        device: Device | None = getattr(self.events, "device", None)
        return device

    @contextmanager
    def callback_streams(self) -> Iterator[None]:
        """Around a callback: the completion's device current, and fresh synchronized pool streams.

        As torch: the device that was current at completion is made current (so a
        callback on an executor thread allocates where the producer did), then one
        fresh pool stream per device of the future is made current, each already
        waiting on the events.
        """
        backend = self.backend
        device = self.completed_on
        use_device = getattr(backend, "use_device", None) if device is not None else None
        with contextlib.ExitStack() as stack:
            if use_device is not None:
                stack.enter_context(use_device(device))
            streams = {d: backend.stream_from_pool(d) for d in self.devices}
            stack.enter_context(backend.use_streams(list(streams.values())))
            for dev, event in self.events:
                backend.wait_event(streams[dev], event)
            if self.buffers:
                self._record_buffers(streams)
            yield

    def torch_streams(self) -> contextlib.AbstractContextManager[Any]:
        """Inside a torch future's callback: torch's current streams become the backend's.

        ``from_torch`` completes its future inside torch's callback, where torch has
        made its (already synchronized) pool streams current; a backend with its own
        current-stream table (cuda-python) must record this future's events there,
        not on the default stream. A no-op for the torch backend and for backends
        without ``from_torch_streams``.
        """
        hook = getattr(self.backend, "from_torch_streams", None)
        if hook is None:
            return contextlib.nullcontext()
        manager: contextlib.AbstractContextManager[Any] = hook(self.devices)
        return manager

    def is_ready(self) -> bool:
        """Whether every recorded event has completed."""
        query = self.backend.query_event
        return all(query(event) for _, event in self.events)

    def synchronize(self) -> None:
        """Block the host until every recorded event has completed.

        The events cover every buffer found at completion (each was ordered before
        its device's event), so afterwards the host may read the value directly;
        this is what a ``concurrent.futures`` bridge must do before handing a device
        value to threads that know nothing of streams.
        """
        for _, event in self.events:
            self.backend.synchronize_event(event)

    def call_when_ready(self, fn: Callable[[BaseException | None], object]) -> None:
        """Call ``fn(None)`` once every recorded event has completed, without blocking.

        Inline when nothing is pending; otherwise on a helper thread that calls
        :meth:`synchronize` first. If synchronizing fails, ``fn`` gets the error.
        For bridges that must not block the completing thread (``to_concurrent``).
        """
        if not self.events or self.is_ready():
            fn(None)
            return
        _ready_queue().put((self, fn))


_READY: queue.SimpleQueue[tuple[DeviceState, Callable[[BaseException | None], object]]] | None
_READY = None
_READY_LOCK = threading.Lock()


def _ready_queue() -> queue.SimpleQueue[
    tuple[DeviceState, Callable[[BaseException | None], object]]
]:
    global _READY
    with _READY_LOCK:
        if _READY is None:
            _READY = queue.SimpleQueue()
            threading.Thread(
                target=_ready_worker, args=(_READY,), name="futurekit-ready", daemon=True
            ).start()
        return _READY


def _ready_worker(
    jobs: queue.SimpleQueue[tuple[DeviceState, Callable[[BaseException | None], object]]],
) -> None:
    while True:
        state, fn = jobs.get()
        error: BaseException | None = None
        try:
            state.synchronize()
        except BaseException as exc:
            error = exc
        try:
            fn(error)
        except BaseException as exc:
            logger.error(
                "a call_when_ready callback raised %s: %s",
                type(exc).__name__,
                exc,
                exc_info=(type(exc), exc, exc.__traceback__),
            )
