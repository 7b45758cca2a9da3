"""Per-future device state: the recorded events, and the device hot path.

This is where torch's CUDA future semantics live, written against the generic
backend protocol (see ``docs/devices.md``). Everything a future shares with the
others made with the same ``devices=`` (the backend, the devices, the bound
backend methods) is its :class:`~._device_plan.DevicePlan`; a pending future holds
the plan's shared, event-less state, and completion stores a new one with the
events:

* :meth:`DeviceState.prepare` (at ``set_result``): one walk of
  the value, the devices it uses checked against the future's, one current-stream
  query and one event per used device;
* :meth:`DeviceState.sync_current` (at ``wait()``): per device, one current-stream
  query, one stream wait and one batch allocator hint (torch's ``record_stream``);
* :meth:`DeviceState.callback_streams` (around each callback): the device that was
  current at completion made current again (torch's ``currentDevice_``), and one
  fresh pool stream per device of the future made current, each already waiting
  on the events;
* :meth:`DeviceState.synchronize` / :meth:`DeviceState.call_when_ready`: the host
  waits for the recorded events.

Optional backend members, used when present (see ``BackendBase``):
``current_device()``, ``enter_device``/``exit_device`` (or ``use_device``),
``enter_streams``/``exit_streams`` (or ``use_streams``), ``opaque_types``,
``order_buffer(buffer, stream)``, ``record_values_on_stream(buffers, stream)`` (or
``record_value_on_stream(buffer, stream)``) and ``from_torch_streams(devices)``.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any

from ._accelerator import speedups
from ._devices import Device
from ._extract import find_buffers

#: The plan's type (``_device_plan.DevicePlan``), which imports this module: named
#: here as ``Any`` so that imports point one way (``_device_plan`` -> ``_device_state``).
DevicePlan = Any

__all__ = ["DeviceState"]

logger = logging.getLogger("futurekit")

_ref = weakref.ref


def _weak_refs(buffers: Any) -> list[Any]:
    return list(map(_ref, buffers))


def _alive_refs(refs: list[Any]) -> list[Any]:
    # no ``None in``: a tensor's __eq__ is costly
    return [b for r in refs if (b := r()) is not None]


if speedups is not None:  # the same two loops in C (~60 ns a buffer less)
    _weak_refs = speedups.weak_refs
    _alive_refs = speedups.alive


def _weak(buffers: Any) -> tuple[Any, bool]:
    """``(weak references to buffers, True)``: torch keeps weak storage references too.

    Buffers that cannot be weakly referenced are kept strongly: ``(list, False)``.
    """
    try:
        return _weak_refs(buffers), True
    except TypeError:
        return list(buffers), False


def _alive(group: tuple[Any, Any, bool]) -> Any:
    """The buffers of one device group still alive (weak groups skip freed ones)."""
    _, items, weak = group
    if not weak:
        return items
    return _alive_refs(items)  # buffers freed since set_result are skipped


class DeviceState:
    """The device side of one future: its plan, and the events of its completion.

    Attributes:
        plan: the shared :class:`~._device_plan.DevicePlan`.
        backend: the backend (``plan.backend``).
        devices: the future's devices, sorted (``plan.devices``).
        events: ``((device, event), ...)``, one per device the value uses; empty
            while pending, for a failed future and for a value without buffers.
        buffers: ``((device, buffers, weak), ...)`` for the allocator hint; ``weak``
            says the buffers are weak references (a mutable container's items:
            a buffer freed since ``set_result`` is skipped, as torch does).
        completed_on: the device of the future's type that was current in the
            completing thread (``None`` when the backend has no current device).
    """

    __slots__ = ("buffers", "completed_on", "events", "plan")

    def __init__(
        self,
        plan: DevicePlan,
        events: tuple[tuple[Device, Any], ...] = (),
        buffers: tuple[tuple[Device, Any, bool], ...] = (),
        completed_on: Device | None = None,
    ) -> None:
        self.plan = plan
        self.events = events
        self.buffers = buffers
        self.completed_on = completed_on

    @property
    def backend(self) -> Any:
        """The backend (the plan's)."""
        return self.plan.backend

    @property
    def devices(self) -> tuple[Device, ...]:
        """The future's devices, sorted (the plan's)."""
        devices: tuple[Device, ...] = self.plan.devices
        return devices

    def child(self) -> DeviceState:
        """State for a ``then`` child: the plan's shared pending state."""
        pending: DeviceState = self.plan.pending
        return pending

    def retarget(self, target: DeviceState) -> DeviceState:
        """These events and buffers, for a future with ``target``'s plan (unwrap)."""
        return DeviceState(target.plan, self.events, self.buffers, self.completed_on)

    # -- set_result ---------------------------------------------------------------------
    def prepare(self, value: Any) -> DeviceState:
        """Find the buffers in ``value`` and record events on the current streams.

        Returns the state to store in the completed future. The common case, one
        buffer on the plan's first device, is here (the accelerator's
        ``prepare`` mirrors it); every other goes on in :meth:`_prepare_other`.

        Raises:
            ValueError: a buffer lives on a device outside the future's devices
                (torch's message).
            BackendError: the backend returned something the core cannot use.
            Exception: whatever the backend raised.
        """
        plan = self.plan
        current_device = plan.current_device
        completed_on = current_device() if current_device is not None else None
        device = plan.device_of(value)
        if device is not plan.first or plan.order_buffer is not None:
            return self._prepare_other(value, completed_on, device)
        stream = plan.current_stream(device)
        events = ((device, plan.record_event(stream)),)
        if plan.record_values is None:
            return DeviceState(plan, events, (), completed_on)
        return DeviceState(plan, events, ((device, (value,), False),), completed_on)

    def _prepare_other(self, value: Any, completed_on: Device | None, device: Any) -> DeviceState:
        """:meth:`prepare` once ``device_of(value)`` returned ``device``: the other cases.

        A buffer on another of the future's devices (checked), a list or tuple of
        buffers on one device, any other value (walked), a backend with
        ``order_buffer``.
        """
        plan = self.plan
        device_of = plan.device_of
        weak = False
        if device is not None:  # the value is one buffer (a tensor)
            if device is not plan.first:
                device = plan.check_device(device)
            items: Any = (value,)
        else:
            cls = value.__class__
            items = None
            if (cls is tuple or cls is list) and value:
                batch = plan.devices_of
                found = [device_of(item) for item in value] if batch is None else batch(value)
                if len(found) != len(value):
                    raise plan.bad_batch(found, value)
                device = found[0]
                if device is not None and found.count(device) == len(found):
                    if device is not plan.first:
                        device = plan.check_device(device)
                    items = value
                    weak = cls is list  # a list may drop its items: torch skips freed ones
            if items is None:
                return self._prepare_walk(value, completed_on)
        stream = plan.current_stream(device)
        order = plan.order_buffer
        if order is not None:  # e.g. a CUDA Array Interface "stream": wait for it first
            for buf in items:
                order(buf, stream)
        events = ((device, plan.record_event(stream)),)
        if plan.record_values is None:
            return DeviceState(plan, events, (), completed_on)
        if weak:
            items, weak = _weak(items)
        return DeviceState(plan, events, ((device, items, weak),), completed_on)

    def _prepare_walk(self, value: Any, completed_on: Device | None) -> DeviceState:
        """The general case: walk every container, group the buffers by device."""
        plan = self.plan
        found = find_buffers(value, plan.device_of, plan.skip)
        if not found:
            return DeviceState(plan, (), (), completed_on)
        groups: dict[Device, list[Any]] = {}
        last: Any = None
        bucket: list[Any] = []
        for buf, device in found:
            if device is not last:
                checked = device if device is plan.first else plan.check_device(device)
                last = device
                bucket = groups.setdefault(checked, [])
            bucket.append(buf)
        ordered = sorted(groups)
        streams = {device: plan.current_stream(device) for device in ordered}
        order = plan.order_buffer
        if order is not None:
            for device in ordered:
                stream = streams[device]
                for buf in groups[device]:
                    order(buf, stream)
        events = tuple((device, plan.record_event(streams[device])) for device in ordered)
        if plan.record_values is None:
            return DeviceState(plan, events, (), completed_on)
        buffers = tuple((device, *_weak(groups[device])) for device in ordered)
        return DeviceState(plan, events, buffers, completed_on)

    # -- wait() -------------------------------------------------------------------------
    def sync_current(self) -> None:
        """Make the calling thread's current streams wait on the events (no host block)."""
        events = self.events
        if not events:
            return
        plan = self.plan
        if len(events) == 1:
            device, event = events[0]
            stream = plan.current_stream(device)
            plan.wait_event(stream, event)
            if self.buffers:
                plan.record_values(_alive(self.buffers[0]), stream)
            return
        streams = {}
        for device, event in events:
            stream = streams[device] = plan.current_stream(device)
            plan.wait_event(stream, event)
        self._record_buffers(streams)

    def _record_buffers(self, streams: dict[Device, Any]) -> None:
        record = self.plan.record_values
        if record is None:
            return
        for group in self.buffers:
            stream = streams.get(group[0])
            if stream is not None:
                record(_alive(group), stream)

    # -- callbacks ----------------------------------------------------------------------
    def callback_streams(self) -> _CallbackStreams:
        """Around a callback: the completion's device current, and fresh synchronized pool streams.

        As torch: the device that was current at completion is made current (so a
        callback on an executor thread allocates where the producer did), then one
        fresh pool stream per device of the future is made current, each already
        waiting on the events.
        """
        return _CallbackStreams(self)

    def enter_callback(self) -> Any:
        """Enter a callback's streams (:meth:`callback_streams`, without an object).

        The completion's device made current, one pool stream per device of the
        future made current, each waiting on the events, the buffers recorded on
        them; when entering fails halfway, what was entered is left again. The core
        calls this pair around each device callback (it is hot).

        Returns:
            The token to pass to :meth:`exit_callback`.
        """
        plan = self.plan
        device = self.completed_on
        device_token = None if device is None else plan.enter_device(device)
        try:
            pool = plan.stream_from_pool
            devices = plan.devices
            if len(devices) == 1:  # the common case: no dict of streams
                stream = pool(devices[0])
                by_device = None
                streams = [stream]
            else:
                by_device = {d: pool(d) for d in devices}
                streams = list(by_device.values())
            stream_token = plan.enter_streams(streams)
            try:
                for dev, event in self.events:
                    plan.wait_event(stream if by_device is None else by_device[dev], event)
                if self.buffers:
                    if by_device is None:
                        plan.record_values(_alive(self.buffers[0]), stream)
                    else:
                        self._record_buffers(by_device)
            except BaseException:
                plan.exit_streams(stream_token)
                raise
        except BaseException:
            if device is not None:
                plan.exit_device(device_token)
            raise
        # without a device to restore, the streams' token alone: no tuple to allocate
        return stream_token if device is None else (stream_token, device_token)

    def exit_callback(self, token: Any) -> None:
        """Leave what :meth:`enter_callback` entered (the streams, then the device)."""
        plan = self.plan
        if self.completed_on is None:
            plan.exit_streams(token)
            return
        try:
            plan.exit_streams(token[0])
        finally:
            plan.exit_device(token[1])

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
        query = self.plan.query_event
        return all(query(event) for _, event in self.events)

    def synchronize(self) -> None:
        """Block the host until every recorded event has completed.

        The events cover every buffer found at completion (each was ordered before
        its device's event), so afterwards the host may read the value directly;
        this is what a ``concurrent.futures`` bridge must do before handing a device
        value to threads that know nothing of streams.
        """
        for _, event in self.events:
            self.plan.synchronize_event(event)

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


class _CallbackStreams:
    """The context manager of :meth:`DeviceState.callback_streams`."""

    __slots__ = ("state", "token")

    def __init__(self, state: DeviceState) -> None:
        self.state = state
        self.token: Any = None

    def __enter__(self) -> None:
        self.token = self.state.enter_callback()

    def __exit__(self, *exc: object) -> None:
        self.state.exit_callback(self.token)
