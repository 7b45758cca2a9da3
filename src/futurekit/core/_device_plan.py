"""Device plans: what every future made with the same ``devices=`` shares.

``Future(devices=X, backend=B)`` parses ``X``, asks the resolver (see
:mod:`._resolver`) for the backend, checks the indices against its device count and
binds the backend's methods once; the result, a :class:`DevicePlan`, is cached by
what the user passed (while no plugin changes), so the next future with the same
arguments costs a dictionary lookup. A pending device future holds its plan's
shared, event-less :class:`~._device_state.DeviceState`; completion replaces it by
one that carries the recorded events.

What a backend returns enters the core here and is checked here: a ``device_of``
that returns something other than a :class:`Device` (or ``None``), a
``device_count`` that is not a non-negative int, or a missing method raises a
:class:`BackendError` that names the plugin, the method and the fix.
"""

from __future__ import annotations

from . import _resolver
from ._accelerator import speedups
from ._devices import Device, parse_devices
from ._errors import BackendError, InvalidDeviceError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from ._device_state import DeviceState

__all__ = ["DevicePlan", "backend_error", "plan_for"]

#: The methods every backend must have (see ``futurekit.backends.Backend``).
REQUIRED = (
    "device_count",
    "current_stream",
    "record_event",
    "wait_event",
    "query_event",
    "synchronize_event",
    "device_of",
)
_MISSING = object()
#: The core's future class, never walked for buffers (``_future`` sets it: this module
#: sits below the completion path and does not import it).
FUTURE_TYPES: tuple[type, ...] = ()
_PLANS: dict[Any, Any] = {}  # what the user passed -> plan (or None: a CPU future)
_SHARED: dict[Any, Any] = {}  # (id(backend), devices) -> plan
_MAX_PLANS = 1024
#: Types whose instances are values (their own ``__eq__`` and ``__hash__``): a
#: ``devices=`` entry of such a type can key the plan cache.
_VALUE_TYPES: dict[type, bool] = {str: True, int: True, Device: True}


def backend_error(backend: Any, method: str, problem: str, fix: str) -> BackendError:
    """A :class:`BackendError` naming the backend's plugin, the method and the fix."""
    try:
        who = _resolver.resolver.describe(backend)
    except Exception:  # naming must never fail the caller
        who = f"backend {type(backend).__qualname__}"
    return BackendError(f"{who}: {method} {problem}; {fix}")


def _is_value_type(cls: type) -> bool:
    known = _VALUE_TYPES.get(cls)
    if known is None:
        known = (
            getattr(cls, "__hash__", None) not in (None, object.__hash__)
            and getattr(cls, "__eq__", None) is not object.__eq__
        )
        if len(_VALUE_TYPES) < 256:
            _VALUE_TYPES[cls] = known
    return known


def _cache_key(devices: Any, backend: str | None) -> Any:
    """A hashable key for ``devices=`` (types included: ``1`` is not ``True``), or None."""
    cls = devices.__class__
    if cls is not list and cls is not tuple:
        return None
    if len(devices) == 1:
        entry = devices[0]
        kind = entry.__class__
        if kind is str or kind is int or kind is Device:
            return (backend, kind, entry)
    parts: list[Any] = [backend]
    for entry in devices:
        kind = entry.__class__
        if not _is_value_type(kind):
            return None
        parts.append(kind)
        parts.append(entry)
    try:
        key = tuple(parts)
        hash(key)
    except Exception:
        return None
    return key


def plan_for(devices: Any, backend: str | None) -> DeviceState | None:
    """The shared pending state of a future made with ``devices=`` and ``backend=``.

    ``None`` for a CPU future (``None``, ``[]`` or CPU devices).

    Raises:
        TypeError, ValueError, InvalidDeviceError: ``devices`` is malformed.
        BackendUnavailableError, BackendError: no backend serves the type, or the
            backend misbehaves (the message names it and the fix).
    """
    if devices.__class__ is list and len(devices) == 1:  # the common case, inlined
        entry = devices[0]
        kind = entry.__class__
        if kind is str or kind is int or kind is Device:
            key: Any = (backend, kind, entry)
        else:
            key = _cache_key(devices, backend)
    else:
        key = _cache_key(devices, backend)
    if key is not None:
        try:
            plan = _PLANS.get(key, _MISSING)
        except Exception:  # an __eq__ that raises: do not cache
            plan, key = _MISSING, None
        if plan is not _MISSING and (plan is None or plan.generation == _resolver.generation[0]):
            return None if plan is None else plan.pending
    generation = _resolver.generation[0]
    parsed = parse_devices(devices, _resolver.resolver.int_type)
    plan = None
    if parsed:
        resolved = _resolver.resolver.backend(parsed[0].type, backend)
        shared = (id(resolved), parsed)  # one plan for every spelling of the same devices
        plan = _SHARED.get(shared)
        if plan is None or plan.generation != generation or plan.backend is not resolved:
            plan = DevicePlan(resolved, parsed, generation)
            if len(_SHARED) >= _MAX_PLANS:
                _SHARED.clear()
            _SHARED[shared] = plan
    if key is not None:
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        _PLANS[key] = plan
    return None if plan is None else plan.pending


def _bind(backend: Any, name: str) -> Any:
    method = getattr(backend, name, None)
    if method is None or not callable(method):
        raise backend_error(
            backend,
            f"{name}()",
            "is missing" if method is None else f"is not callable ({method!r})",
            "every backend implements device_count, current_stream, record_event, "
            "wait_event, query_event, synchronize_event and device_of (subclass "
            "futurekit.backends.BackendBase for defaults of the optional members)",
        )
    return method


_STATE_TYPE: Any = None


def _state_type() -> type[DeviceState]:
    """``DeviceState``, imported on first use (it is heavy), and handed to the accelerator."""
    global _STATE_TYPE
    if _STATE_TYPE is None:
        from ._device_state import DeviceState

        if speedups is not None:  # prepare() and sync_current() for one buffer, in C
            speedups.configure_states(DeviceState, DevicePlan)
        _STATE_TYPE = DeviceState
    state_type: type[DeviceState] = _STATE_TYPE
    return state_type


class DevicePlan:
    """The backend, the devices and the bound backend methods of one ``devices=``.

    Shared by every future made with the same arguments; immutable.
    """

    __slots__ = (
        "allowed",
        "backend",
        "current_device",
        "current_stream",
        "device_of",
        "devices",
        "devices_of",
        "enter_device",
        "enter_streams",
        "exit_device",
        "exit_streams",
        "first",
        "generation",
        "kind",
        "order_buffer",
        "pending",
        "query_event",
        "record_event",
        "record_values",
        "skip",
        "stream_from_pool",
        "synchronize_event",
        "wait_event",
    )

    def __init__(self, backend: Any, devices: Sequence[Device], generation: int = -1) -> None:
        DeviceState = _state_type()
        devices = tuple(devices)
        if not devices:
            raise ValueError("a device plan needs at least one device")
        self.backend = backend
        self.devices = devices
        self.first = devices[0]
        self.kind = devices[0].type
        self.allowed = frozenset(devices)
        self.generation = generation
        for name in REQUIRED:
            _bind(backend, name)
        check_indices(backend, devices)
        self.device_of = backend.device_of
        self.devices_of = getattr(backend, "devices_of", None)
        self.current_stream = backend.current_stream
        self.record_event = backend.record_event
        self.wait_event = backend.wait_event
        self.query_event = backend.query_event
        self.synchronize_event = backend.synchronize_event
        pool = getattr(backend, "stream_from_pool", None)
        self.stream_from_pool = pool if pool is not None else backend.current_stream
        current = getattr(backend, "current_device", None)  # BackendBase's says None: skipped
        self.current_device = None if getattr(current, "futurekit_default", False) else current
        self.order_buffer = getattr(backend, "order_buffer", None)
        self.skip: tuple[type, ...] = (*FUTURE_TYPES, *getattr(backend, "opaque_types", ()))
        self.record_values = _record_values(backend)
        self.enter_streams, self.exit_streams = _stream_switch(backend)
        self.enter_device, self.exit_device = _device_switch(backend)
        self.pending = DeviceState(self)

    def check_device(self, device: Any) -> Device:
        """Check a device that ``device_of`` returned; the future's own device object.

        Raises:
            BackendError: ``device_of`` returned something other than a Device.
            ValueError: the device is not among the future's devices (torch's messages).
        """
        if device.__class__ is not Device and not isinstance(device, Device):
            raise backend_error(
                self.backend,
                "device_of()",
                f"returned {device!r} ({type(device).__name__})",
                "it must return a futurekit.Device (e.g. Device('cuda', 0)) or None "
                "for objects that are not its buffers",
            )
        if device.type != self.kind:
            raise ValueError(
                f"Expected all data ptrs to be on a device of type {self.kind}, "
                f"got one on device {device}"
            )
        for mine in self.devices:
            if mine == device:
                return mine
        raise ValueError(
            "The result contained tensors residing on device(s) "
            f"{device} which are not among the expected device(s) "
            f"{_list_devices(self.devices)}"
        )

    def bad_batch(self, found: Any, value: Sequence[Any]) -> BackendError:
        """The error for a ``devices_of`` answer that does not match its input."""
        return backend_error(
            self.backend,
            "devices_of()",
            f"returned {type(found).__name__} of {len(found)} items for {len(value)} objects",
            "it must return a list with one Device or None per object, in order",
        )

    def __repr__(self) -> str:
        return f"<DevicePlan {_list_devices(self.devices)} on {self.backend!r}>"


def _list_devices(devices: Sequence[Device] | set[Device]) -> str:
    names = [str(d) for d in sorted(devices)]
    if not names:
        return "(none)"
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def check_indices(backend: Any, devices: Sequence[Device]) -> None:
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
        raise backend_error(
            backend,
            "device_count()",
            f"returned {count!r}",
            "a backend must return the number of its devices as an int",
        )
    for device in devices:
        if not 0 <= device.index < count:
            raise InvalidDeviceError(
                f"Device index value {device.index} is out of index range [0, {count}): "
                f"{device} does not exist ({_resolver.resolver.describe(backend)} has "
                f"{count} {device.type} device{'' if count == 1 else 's'})"
            )


def _record_values(backend: Any) -> Callable[[Sequence[Any], Any], None] | None:
    """The backend's batch allocator hint, or one made from its per-buffer one."""
    batch = getattr(backend, "record_values_on_stream", None)
    if batch is not None and not getattr(batch, "futurekit_default", False):
        return batch  # type: ignore[no-any-return]
    one = getattr(backend, "record_value_on_stream", None)
    if one is None or getattr(one, "futurekit_default", False):
        return None  # no hint (BackendBase's default does nothing): no buffers kept
    if batch is not None:
        return batch  # type: ignore[no-any-return]

    def record_values(buffers: Sequence[Any], stream: Any) -> None:
        for buffer in buffers:
            one(buffer, stream)

    return record_values


def _switch(
    backend: Any, what: str, use_name: str
) -> tuple[Callable[[Any], Any], Callable[[Any], None]]:
    """``(enter, exit)`` for streams or the device.

    The backend's own ``enter_<what>`` / ``exit_<what>`` pair, else one made from its
    context manager ``use_name``, else nothing at all (BackendBase's defaults, which
    change nothing).
    """
    enter = getattr(backend, f"enter_{what}", None)
    leave = getattr(backend, f"exit_{what}", None)
    if enter is not None and leave is not None and not getattr(enter, "futurekit_default", 0):
        return enter, leave
    use = getattr(backend, use_name, None)
    if use is None or getattr(use, "futurekit_default", False):
        return _nothing, _nothing
    return _enter_with(use), _exit_with


def _stream_switch(backend: Any) -> tuple[Callable[[Any], Any], Callable[[Any], None]]:
    return _switch(backend, "streams", "use_streams")


def _device_switch(backend: Any) -> tuple[Callable[[Any], Any], Callable[[Any], None]]:
    return _switch(backend, "device", "use_device")


def _nothing(arg: Any) -> None:
    return None


def _enter_with(use: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def enter(arg: Any) -> Any:
        manager = use(arg)
        manager.__enter__()
        return manager

    return enter


def _exit_with(manager: Any) -> None:
    manager.__exit__(None, None, None)
