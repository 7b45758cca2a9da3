"""The ``sim`` backend: a simulated asynchronous device in pure Python.

Every stream is a FIFO worker thread (a daemon, started when work arrives and
stopped after a second without work) that runs what was launched on it in order.
Events are markers: ``record_event(stream)`` enqueues one that completes when the
worker reaches it; ``wait_event(stream, event)`` enqueues a task that holds the
stream's worker until the event completes, while the host goes on. So stream
ordering bugs show up on a laptop exactly as on a GPU: a consumer stream that reads
a buffer without waiting on the producer's event sees stale data.

Each thread also has a current device (``sim:0`` until changed, like CUDA's), so
the device a callback runs with can be checked as on a GPU.

The device count is 2, or ``FUTUREKIT_SIM_DEVICES`` (read when the backend is
first loaded). The user-facing API is :mod:`futurekit.testing.sim`.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from futurekit.core._devices import Device, DeviceLike, parse_device
from futurekit.core._errors import BackendError, InvalidDeviceError

from ._current import swap_current
from ._hookspec import hookimpl
from ._protocol import BackendBase
from ._spec import BackendSpec

__all__ = [
    "DEFAULT_DEVICES",
    "POOL_SIZE",
    "Buffer",
    "SimBackend",
    "SimEvent",
    "SimStream",
    "get_backend",
]

logger = logging.getLogger("futurekit")

#: Number of simulated devices unless ``FUTUREKIT_SIM_DEVICES`` says otherwise.
DEFAULT_DEVICES = 2
#: Streams per device in the round-robin pool used for callbacks.
POOL_SIZE = 4
#: Seconds an idle stream worker lingers before its thread exits.
_IDLE_S = 1.0


def _device_count_from_env() -> int:
    text = os.environ.get("FUTUREKIT_SIM_DEVICES", "").strip()
    if not text:
        return DEFAULT_DEVICES
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 1:
        raise ValueError(
            f"FUTUREKIT_SIM_DEVICES must be a positive integer (number of simulated "
            f"devices), got {text!r}"
        )
    return count


class SimEvent:
    """A marker on a simulated stream; complete once the stream's worker reaches it."""

    __slots__ = ("_done", "device")

    def __init__(self, device: Device) -> None:
        self.device = device
        self._done = threading.Event()

    def query(self) -> bool:
        """Whether the work queued before this event has run."""
        return self._done.is_set()

    def synchronize(self) -> None:
        """Block the host until the event completes."""
        self._done.wait()

    def __repr__(self) -> str:
        state = "complete" if self._done.is_set() else "pending"
        return f"<SimEvent {self.device} {state}>"


class SimStream:
    """A FIFO queue of work on one simulated device, run by its own worker thread.

    Create one with :class:`futurekit.testing.sim.Stream`; the backend makes the
    default and pool streams. Work launched with :meth:`launch` runs in order; an
    exception raised by launched work is logged on the ``futurekit`` logger and
    re-raised (as :class:`~futurekit.BackendError`) by the next :meth:`synchronize`.
    """

    __slots__ = (
        "__weakref__",
        "_cond",
        "_error",
        "_pending",
        "_running",
        "_tasks",
        "_worker",
        "device",
        "name",
    )

    def __init__(self, device: Device, name: str = "") -> None:
        self.device = device
        self.name = name or f"stream-{id(self):#x}"
        self._cond = threading.Condition(threading.Lock())
        self._tasks: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            collections.deque()
        )
        self._running = False
        self._pending = 0  # launched and not finished
        self._worker: threading.Thread | None = None
        self._error: BaseException | None = None

    def launch(self, fn: Callable[..., Any], *args: Any) -> None:
        """Enqueue ``fn(*args)``; it runs after everything launched before it."""
        with self._cond:
            self._tasks.append((fn, args))
            self._pending += 1
            if self._running:
                self._cond.notify()
                return
            self._running = True
            worker = self._worker = threading.Thread(
                target=self._work, name=f"futurekit-sim-{self.device}-{self.name}", daemon=True
            )
        worker.start()

    def _work(self) -> None:
        cond = self._cond
        tasks = self._tasks
        while True:
            with cond:
                if not tasks:
                    cond.wait(_IDLE_S)
                    if not tasks:
                        self._running = False
                        return
                fn, args = tasks.popleft()
            try:
                fn(*args)
            except BaseException as exc:
                logger.error(
                    "work launched on %r raised %s: %s",
                    self,
                    type(exc).__name__,
                    exc,
                    exc_info=(type(exc), exc, exc.__traceback__),
                )
                if self._error is None:
                    self._error = exc
            with cond:
                self._pending -= 1

    def record(self) -> SimEvent:
        """Enqueue a new event and return it."""
        event = SimEvent(self.device)
        self.launch(event._done.set)
        return event

    def wait(self, event: SimEvent) -> None:
        """Make later work on this stream wait for ``event`` (the host does not block)."""
        if not event._done.is_set():
            self.launch(event._done.wait)

    def query(self) -> bool:
        """Whether everything launched so far has run."""
        with self._cond:
            return self._pending == 0

    def synchronize(self) -> None:
        """Block the host until everything launched so far has run.

        Raises:
            BackendError: launched work raised since the last ``synchronize``
                (the original error is the ``__cause__``), or work running on this
                stream called it (that would wait for itself forever).
        """
        if threading.current_thread() is self._worker:
            raise BackendError(
                f"{self!r}.synchronize() was called by work running on that stream; it "
                "would wait for itself forever"
            )
        self.record().synchronize()
        error, self._error = self._error, None
        if error is not None:
            raise BackendError(
                f"work launched on {self!r} raised {type(error).__name__}: {error}"
            ) from error

    def __repr__(self) -> str:
        return f"<SimStream {self.device} {self.name}>"


class Buffer:
    """A buffer on a simulated device: holds any Python object as ``.value``.

    Host code and work launched on sim streams may read and write ``.value``; the
    backend reports the buffer's device to the future core (``device_of``).
    """

    __slots__ = ("__weakref__", "device", "value")

    def __init__(self, device: DeviceLike, value: Any = None) -> None:
        self.device: Device = get_backend().check_device(device)
        self.value: Any = value

    def __repr__(self) -> str:
        return f"Buffer({str(self.device)!r}, {self.value!r})"


class SimBackend(BackendBase):
    """The simulated asynchronous device backend (device type ``"sim"``).

    Args:
        device_count: number of devices; default ``FUTUREKIT_SIM_DEVICES`` or 2.
    """

    device_type = "sim"
    #: Streams and events are never walked for buffers (their queues hold work).
    opaque_types: tuple[type, ...] = (SimStream, SimEvent)

    def __init__(self, device_count: int | None = None) -> None:
        if device_count is None:
            device_count = _device_count_from_env()
        if isinstance(device_count, bool) or not isinstance(device_count, int) or device_count < 1:
            raise ValueError(f"device_count must be a positive int, got {device_count!r}")
        self._count = device_count
        self._local = threading.local()
        self._lock = threading.Lock()
        self._defaults = [SimStream(Device("sim", i), "default") for i in range(device_count)]
        self._pools = [
            [SimStream(Device("sim", i), f"pool-{j}") for j in range(POOL_SIZE)]
            for i in range(device_count)
        ]
        self._next = [itertools.count() for _ in range(device_count)]

    # -- devices ----------------------------------------------------------------------
    def device_count(self) -> int:
        """Number of simulated devices."""
        return self._count

    def check_device(self, device: DeviceLike) -> Device:
        """Turn ``"sim:N"`` or a :class:`Device` into a valid sim :class:`Device`.

        Raises:
            TypeError: ``device`` is not a device (an ``int`` is refused: write
                ``"sim:N"``).
            InvalidDeviceError: not a sim device, no index, or an index beyond the
                device count.
        """
        index: int | None
        if isinstance(device, Device):
            kind, index = device.type, device.index
        elif isinstance(device, int) and not isinstance(device, bool):
            raise TypeError(f"Expected a sim device such as 'sim:{device}', got the int {device}")
        else:
            kind, index = parse_device(device)
        if kind != "sim" or index is None:
            raise InvalidDeviceError(f"Expected a simulated device such as 'sim:0', got {device!r}")
        if index >= self._count:
            raise InvalidDeviceError(
                f"Device sim:{index} does not exist: there are {self._count} simulated "
                f"devices (sim:0 to sim:{self._count - 1}); set FUTUREKIT_SIM_DEVICES "
                "before the first use for more"
            )
        return device if isinstance(device, Device) else Device("sim", index)

    def current_device(self) -> Device:
        """The calling thread's current sim device (``sim:0`` until changed)."""
        return Device("sim", getattr(self._local, "device", 0))

    def set_device(self, device: DeviceLike) -> None:
        """Make ``device`` the calling thread's current sim device.

        Raises:
            InvalidDeviceError: not a sim device, or no such index.
        """
        self._local.device = self.check_device(device).index

    @contextlib.contextmanager
    def use_device(self, device: DeviceLike) -> Iterator[None]:
        """Make ``device`` current in this thread for the block, restoring the previous one."""
        index = self.check_device(device).index
        local = self._local
        previous = getattr(local, "device", 0)
        local.device = index
        try:
            yield
        finally:
            local.device = previous

    # -- streams ----------------------------------------------------------------------
    def _current(self) -> dict[int, SimStream]:
        current: dict[int, SimStream] | None = getattr(self._local, "streams", None)
        if current is None:
            current = self._local.streams = {}
        return current

    def current_stream(self, device: Device) -> SimStream:
        """The calling thread's current stream on ``device`` (default: its default stream)."""
        index = self.check_device(device).index
        stream = self._current().get(index)
        return self._defaults[index] if stream is None else stream

    def default_stream(self, device: Device) -> SimStream:
        """The default stream of ``device``."""
        return self._defaults[self.check_device(device).index]

    def stream_from_pool(self, device: Device) -> SimStream:
        """The next stream of ``device``'s round-robin pool."""
        index = self.check_device(device).index
        pool = self._pools[index]
        return pool[next(self._next[index]) % len(pool)]

    @contextlib.contextmanager
    def use_streams(self, streams: Sequence[Any]) -> Iterator[None]:
        """Make ``streams`` current for their devices in this thread, restoring after."""
        for stream in streams:
            self._check_stream(stream)
        with swap_current(self._current(), [(s.device.index, s) for s in streams]):
            yield

    def _check_stream(self, stream: Any) -> SimStream:
        if not isinstance(stream, SimStream):
            raise TypeError(f"Expected a sim stream, got {type(stream).__name__}: {stream!r}")
        return stream

    # -- events -----------------------------------------------------------------------
    def record_event(self, stream: Any) -> SimEvent:
        """Enqueue a new event on ``stream``."""
        return self._check_stream(stream).record()

    def wait_event(self, stream: Any, event: Any) -> None:
        """Make ``stream`` wait for ``event``; returns at once."""
        self._check_stream(stream).wait(self._check_event(event))

    def query_event(self, event: Any) -> bool:
        """Whether ``event`` has completed."""
        return self._check_event(event).query()

    def synchronize_event(self, event: Any) -> None:
        """Block the host until ``event`` has completed."""
        self._check_event(event).synchronize()

    def _check_event(self, event: Any) -> SimEvent:
        if not isinstance(event, SimEvent):
            raise TypeError(f"Expected a sim event, got {type(event).__name__}: {event!r}")
        return event

    # -- values -----------------------------------------------------------------------
    def device_of(self, obj: Any) -> Device | None:
        """The device of a :class:`Buffer`; ``None`` for anything else."""
        return obj.device if isinstance(obj, Buffer) else None

    def unavailable_reason(self) -> str | None:
        """Always available."""
        return None

    def __repr__(self) -> str:
        return f"<SimBackend {self._count} devices>"


_backend: SimBackend | None = None
_backend_lock = threading.Lock()


def get_backend() -> SimBackend:
    """The process-wide sim backend (what ``Future(devices=["sim:0"])`` uses)."""
    global _backend
    backend = _backend
    if backend is None:
        with _backend_lock:
            if _backend is None:
                _backend = SimBackend()
            backend = _backend
    return backend


@hookimpl
def futurekit_device_backends() -> Iterator[BackendSpec]:
    """The built-in simulated device backend."""
    yield BackendSpec(
        name="sim",
        device_type="sim",
        load=get_backend,
        priority=0,
        description="simulated asynchronous device for tests (pure Python threads)",
        testing=True,
        make_buffer=lambda device: Buffer(device, 0),  # doctor and check_backend use it
    )
