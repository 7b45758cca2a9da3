"""The ``torch`` backend: CUDA and the other accelerators PyTorch exposes.

One :class:`TorchBackend` object serves one device type. The ``cuda`` backend
(named ``"torch"``, priority 10) uses ``torch.cuda`` streams and events, exactly
what ``torch.futures.Future(devices=...)`` uses. The other accelerators (``xpu``,
``mps``, ``hpu``, ``npu``, ``mtia``; backends named ``"torch-<type>"``) use
PyTorch's device-generic API: ``torch.Stream``, ``torch.Event``,
``torch.get_device_module(type)`` and ``torch.accelerator``.

torch is never imported when this module is imported (``import futurekit`` stays
fast); it is imported when the registry loads the backend. Without torch, or with a
torch build that lacks the accelerator, or on a machine without a device, the
backend still loads and reports why through :meth:`TorchBackend.unavailable_reason`.

Install with ``pip install '.[torch]'`` from a futurekit checkout.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from typing import Any

from futurekit.core._devices import Device
from futurekit.core._errors import BackendError, BackendUnavailableError

from ._cuda_arrays import cai_stream, foreign_cuda_device, is_array_type
from ._hookspec import hookimpl
from ._protocol import BackendBase
from ._spec import BackendSpec, install_hint
from ._torch_tensors import record_tensor_on_stream, tensor_device

__all__ = ["ACCELERATOR_TYPES", "TorchBackend", "record_tensor_on_stream", "tensor_device"]

#: Device types other than ``cuda`` served through torch's device-generic API.
ACCELERATOR_TYPES: tuple[str, ...] = ("xpu", "mps", "hpu", "npu", "mtia")

_INSTALL = install_hint("torch")
_MISS: Any = object()
_HOST_TYPES = frozenset({"cpu", "meta"})


class _Unavailable:
    """Stands in for the torch API when the backend cannot be used."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __getattr__(self, name: str) -> Any:
        raise BackendUnavailableError(f"the torch backend is not available: {self.reason}")


class _Api:
    """The few torch callables one device type needs, resolved once."""

    def __init__(self, torch: Any, device_type: str, module: Any) -> None:
        self.torch = torch
        self.device_type = device_type
        accel = getattr(torch, "accelerator", None)
        current = None
        if accel is not None and accel.is_available():
            current = accel.current_accelerator()
        use_accel = accel is not None and current is not None and current.type == device_type

        def pick(name: str, accel_name: str) -> Any:
            fn = getattr(module, name, None)
            if fn is None and use_accel:
                fn = getattr(accel, accel_name, None)
            return fn

        self.get_stream: Any = pick("current_stream", "current_stream")
        self.set_stream: Any = pick("set_stream", "set_stream")
        self.get_device: Any = pick("current_device", "current_device_index")
        self.set_device: Any = pick("set_device", "set_device_index")
        # Blocking-sync events: synchronize() yields the CPU instead of spinning a core.
        if device_type == "cuda":
            self.new_stream: Any = lambda index: module.Stream(device=index)
            self.new_event: Any = lambda stream: module.Event(blocking=True)
        else:
            self.new_stream = lambda index: torch.Stream(device=torch.device(device_type, index))
            self.new_event = lambda stream: torch.Event(device=stream.device, blocking=True)
        self.pool_works = True


class TorchBackend(BackendBase):
    """A backend for one torch device type (``cuda``, ``xpu``, ``mps`` ...).

    Streams are torch stream objects (``torch.cuda.Stream`` for CUDA,
    ``torch.Stream`` otherwise) and events are ``torch.cuda.Event`` /
    ``torch.Event`` with timing disabled. Pool streams come from torch's own
    round-robin stream pool, as for ``torch.futures``.

    Args:
        device_type: the torch device type to serve.
    """

    def __init__(self, device_type: str = "cuda") -> None:
        self.device_type = device_type
        self.opaque_types: tuple[type, ...] = ()
        self._arrays: dict[type, bool] = {}  # type -> may be a foreign CUDA array
        self._reason: str | None = None
        self._count = 0
        self._tensor_type: Any = None
        self._api: Any = None
        self._fast: Any = None  # the CUDA fast path: None until first use, then it or False
        self._devices: dict[Any, Device | None] = {}  # torch.device -> Device (or None)
        self._probe()
        if self._reason is not None:
            self._api = _Unavailable(self._reason)

    # -- availability ---------------------------------------------------------------
    def _probe(self) -> None:
        try:
            import torch as torch_module
        except ImportError:
            self._reason = f"torch is not installed: {_INSTALL}"
            return
        except Exception as exc:  # a broken install must not break the registry
            self._reason = f"torch failed to import: {type(exc).__name__}: {exc}"
            return
        torch: Any = torch_module
        self._tensor_type = torch.Tensor
        from ._torch_cuda_fast import TorchPooledEvent

        self.opaque_types = tuple(
            t
            for t in (
                TorchPooledEvent,
                getattr(torch, "Stream", None),
                getattr(torch, "Event", None),
                getattr(torch.cuda, "Stream", None),
                getattr(torch.cuda, "Event", None),
            )
            if isinstance(t, type)
        )
        version = getattr(torch, "__version__", "?")
        kind = self.device_type
        try:
            if kind == "cuda":
                if not torch.backends.cuda.is_built():
                    self._reason = f"torch {version} was built without CUDA"
                    return
                module: Any = torch.cuda
            else:
                if not (hasattr(torch, "Stream") and hasattr(torch, "Event")):
                    self._reason = (
                        f"torch {version} has no device-generic torch.Stream/torch.Event "
                        "(torch>=2.5 is needed)"
                    )
                    return
                try:
                    module = torch.get_device_module(kind)
                except Exception:
                    self._reason = (
                        f"torch {version} has no {kind!r} device support (install the "
                        f"PyTorch extension for {kind})"
                    )
                    return
            if not module.is_available():
                self._reason = f"no {kind.upper()} device found (torch {version})"
                return
            self._count = int(module.device_count())
            if self._count <= 0:  # pragma: no cover - is_available() says otherwise
                self._reason = f"no {kind.upper()} device found (torch {version})"
                return
            api = _Api(torch, kind, module)
            missing = [
                n
                for n in ("get_stream", "set_stream", "get_device", "set_device")
                if getattr(api, n) is None
            ]
            if missing:
                self._reason = (
                    f"torch {version} does not expose current/set stream and device "
                    f"functions for {kind!r}"
                )
                return
            self._api = api
        except Exception as exc:  # is_available() must never raise
            self._reason = f"probing torch {kind} failed: {type(exc).__name__}: {exc}"

    def unavailable_reason(self) -> str | None:
        """Why torch cannot serve this device type here, or ``None``."""
        return self._reason

    def device_count(self) -> int:
        """Number of devices of this type torch sees (0 when unavailable)."""
        return self._count

    def _get_fast(self) -> Any:
        """The CUDA fast path (``_torch_cuda_fast``), made on first use; False if none."""
        fast = self._fast
        if fast is None:
            fast = False
            if self.device_type == "cuda" and self._reason is None:
                from ._torch_cuda_fast import make_fast

                fast = make_fast(self._api.torch, self._count) or False
            self._fast = fast
        return fast

    def current_device(self) -> Device:
        """The calling thread's current device of this type (torch's ``current_device``)."""
        fast = self._fast
        if fast is None:
            fast = self._get_fast()
        index = fast.get_device() if fast else self._api.get_device()
        return Device(self.device_type, int(index))

    def enter_device(self, device: Device) -> Any:
        """Make ``device`` current; returns what :meth:`exit_device` restores."""
        fast = self._fast
        if fast is None:
            fast = self._get_fast()
        if fast:
            return fast.enter_device(device.index)
        api = self._api
        previous = api.get_device()
        if previous == device.index:
            return None
        api.set_device(device.index)
        return previous

    def exit_device(self, token: Any) -> None:
        """Restore the device :meth:`enter_device` replaced."""
        if token is not None:
            self._api.set_device(token)

    @contextlib.contextmanager
    def use_device(self, device: Device) -> Iterator[None]:
        """Make ``device`` torch's current device for the block, restoring the previous one."""
        token = self.enter_device(device)
        try:
            yield
        finally:
            self.exit_device(token)

    # -- streams --------------------------------------------------------------------
    def current_stream(self, device: Device) -> Any:
        """The current torch stream on ``device`` for the calling thread.

        On CUDA found by its raw handle (0.09 µs, not ``current_stream``'s 1.5-3.9 µs).
        """
        fast = self._fast
        if fast is None:
            fast = self._get_fast()
        if fast:
            return fast.current_stream(device.index)
        return self._api.get_stream(device.index)

    def stream_from_pool(self, device: Device) -> Any:
        """A stream from torch's per-device stream pool.

        Devices that have a single stream (such as ``mps``) give their current
        stream.
        """
        api = self._api
        if api.pool_works:
            try:
                return api.new_stream(device.index)
            except (RuntimeError, NotImplementedError):
                if self.device_type == "cuda":
                    raise
                api.pool_works = False
        return api.get_stream(device.index)

    @contextlib.contextmanager
    def use_streams(self, streams: Sequence[Any]) -> Iterator[None]:
        """Make ``streams`` torch's current streams, restoring the previous ones after.

        The current device is left as it was (torch's ``set_stream`` switches it).
        """
        token = self.enter_streams(streams)
        try:
            yield
        finally:
            self.exit_streams(token)

    def enter_streams(self, streams: Sequence[Any]) -> Any:
        """Make ``streams`` torch's current streams; returns what :meth:`exit_streams` restores."""
        if not streams:
            return None
        fast = self._fast
        if fast is None:
            fast = self._get_fast()
        if fast:
            return fast.enter_streams(streams)
        api = self._api
        prev_device = api.get_device()
        previous = [api.get_stream(s.device_index) for s in streams]
        try:
            for stream in streams:
                api.set_stream(stream)
        except BaseException:
            self.exit_streams((prev_device, previous))
            raise
        api.set_device(prev_device)
        return prev_device, previous

    def exit_streams(self, token: Any) -> None:
        """Restore the streams (and the device) :meth:`enter_streams` replaced."""
        if token is None:
            return
        fast = self._fast
        if fast:
            fast.exit_streams(token)
            return
        api = self._api
        prev_device, previous = token
        try:
            for stream in reversed(previous):
                api.set_stream(stream)
        finally:
            api.set_device(prev_device)

    # -- events ---------------------------------------------------------------------
    def record_event(self, stream: Any) -> Any:
        """Record an event (timing disabled; pooled on CUDA) on ``stream``."""
        fast = self._fast
        if fast is None:
            fast = self._get_fast()
        if fast:
            return fast.record(stream)
        event = self._api.new_event(stream)
        event.record(stream)
        return event

    def wait_event(self, stream: Any, event: Any) -> None:
        """Make ``stream`` wait for ``event`` (device-side, the host does not block)."""
        fast = self._fast
        if fast:
            fast.wait(stream, event)
        else:
            event.wait(stream)

    def query_event(self, event: Any) -> bool:
        """Whether the work before ``event`` is done."""
        return bool(event.query())

    def synchronize_event(self, event: Any) -> None:
        """Block the host until ``event`` completes."""
        event.synchronize()

    # -- values ---------------------------------------------------------------------
    def devices_of(self, objs: Sequence[Any]) -> list[Device | None]:
        """:meth:`device_of` for many objects at once (the core's list fast path)."""
        tensor_type = self._tensor_type
        device_of = self.device_of
        if tensor_type is None:
            return [None] * len(objs)
        get = self._devices.get
        miss = _MISS
        return [
            (found if (found := get(t.device, miss)) is not miss else device_of(t))
            if type(t) is tensor_type
            else device_of(t)
            for t in objs
        ]

    def device_of(self, obj: Any) -> Device | None:
        """The device of a tensor (dense or sparse), or of a foreign CUDA array.

        CPU and meta tensors give ``None``. A tensor on another accelerator type
        gives its device, so that the future rejects it as torch does. For ``cuda``,
        CuPy, numba and other arrays with ``__dlpack_device__`` or
        ``__cuda_array_interface__`` are buffers too (the driver is asked, through
        cuda-python, which GPU owns a CAI-only pointer).
        """
        tensor_type = self._tensor_type
        if tensor_type is None:
            return None
        if isinstance(obj, tensor_type):
            where = obj.device
            known = self._devices
            try:
                return known[where]  # one interned Device per torch.device
            except KeyError:
                found = known[where] = tensor_device(obj)
                return found
        if self.device_type != "cuda":
            return None
        cls = type(obj)
        maybe = self._arrays.get(cls)
        if maybe is None:
            maybe = self._arrays[cls] = is_array_type(cls)
        if not maybe:
            return None
        return foreign_cuda_device(obj, _pointer_device_via_cuda_python)

    def order_buffer(self, obj: Any, stream: Any) -> None:
        """Make ``stream`` wait for the producer stream a foreign array names (CAI ``stream``).

        Tensors are produced on torch's current stream, where the event is recorded:
        nothing to do. CuPy and numba arrays may name the stream that writes them.
        """
        tensor_type = self._tensor_type
        if tensor_type is None or isinstance(obj, tensor_type) or self.device_type != "cuda":
            return
        handle = cai_stream(obj)
        if handle is None or handle == stream.cuda_stream:
            return
        torch = self._api.torch
        index = stream.device_index
        if handle == 1:
            producer = torch.cuda.default_stream(index)
        else:
            producer = torch.cuda.ExternalStream(handle, device=torch.device("cuda", index))
        event = torch.cuda.Event()
        event.record(producer)
        stream.wait_event(event)

    def record_value_on_stream(self, obj: Any, stream: Any) -> None:
        """``Tensor.record_stream`` for tensors of this device type (sparse: each part).

        Foreign arrays (CuPy ...) get no allocator hint: their pools have no
        ``record_stream``; keep such arrays alive until the consumer's work is done.
        """
        tensor_type = self._tensor_type
        if tensor_type is None or not isinstance(obj, tensor_type):
            return
        if obj.device.type != self.device_type:
            return
        record_tensor_on_stream(obj, stream)

    def record_values_on_stream(self, buffers: Sequence[Any], stream: Any) -> None:
        """:meth:`record_value_on_stream` for many buffers: one tight loop.

        The core hands over only buffers on this backend's devices, so the device
        check is not repeated; dense tensors call ``record_stream`` directly.
        """
        tensor_type = self._tensor_type
        if tensor_type is None:
            return
        strided = self._api.torch.strided
        for obj in buffers:
            if type(obj) is tensor_type and obj.layout is strided:
                obj.record_stream(stream)
            elif isinstance(obj, tensor_type) and obj.device.type == self.device_type:
                record_tensor_on_stream(obj, stream)

    def __repr__(self) -> str:
        state = "available" if self._reason is None else f"unavailable: {self._reason}"
        return f"<TorchBackend {self.device_type!r} ({state})>"


def _pointer_device_via_cuda_python(ptr: int) -> int | None:
    """The GPU owning a CAI pointer, asked of the driver through cuda-python."""
    from . import _cuda_driver

    try:
        rt = _cuda_driver.runtime()
    except BackendUnavailableError as exc:
        raise BackendError(
            "a value holds an array with only __cuda_array_interface__; telling which "
            f"GPU owns its memory needs cuda-python ({exc}); or pass torch.as_tensor(array)"
        ) from exc
    return rt.pointer_device(ptr)


@hookimpl
def futurekit_device_backends() -> Iterator[BackendSpec]:
    """The torch backends: ``cuda`` (named ``torch``) and ``torch-<type>`` for others."""
    yield BackendSpec(
        name="torch",
        device_type="cuda",
        load=functools.partial(TorchBackend, "cuda"),
        priority=10,
        extra="torch",
        description="PyTorch CUDA streams and events (torch.cuda)",
    )
    for kind in ACCELERATOR_TYPES:
        yield BackendSpec(
            name=f"torch-{kind}",
            device_type=kind,
            load=functools.partial(TorchBackend, kind),
            priority=10,
            extra="torch",
            description=f"PyTorch {kind} streams and events (torch.Stream, torch.Event)",
        )
