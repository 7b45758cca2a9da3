"""The ``cuda-python`` backend: CUDA streams and events through ``cuda.core``, no torch.

It serves device type ``cuda`` with priority 5. The ``torch`` backend serves the same
type with priority 10, so when both are available torch is the default (the values
in a CUDA future are usually torch tensors, and torch's current streams are what
torch code runs on). Pick this one with ``Future(devices=..., backend="cuda-python")``
or ``FUTUREKIT_BACKEND_CUDA=cuda-python``.

CUDA has no "current stream", so this module keeps one per thread and per device.
It starts as the device's default stream (the legacy default stream, or the
per-thread one when ``CUDA_PYTHON_CUDA_PER_THREAD_DEFAULT_STREAM`` is set, as in
``cuda.core``). Change it with :func:`use_stream`, which accepts any object with
``__cuda_stream__`` (``cuda.core``, CuPy, PyTorch, numba streams)::

    from futurekit.backends.cuda import use_stream

    with use_stream(cupy_stream):      # futurekit's current stream on that device
        fut.set_result(array)          # the event is recorded on cupy_stream

Buffers are found through ``torch.Tensor`` (only when torch is already imported;
this module never imports it), ``__dlpack_device__`` and
``__cuda_array_interface__`` (the device of the pointer is asked of the driver).

``cuda.core`` and ``cuda.bindings`` are imported when the backend is loaded, never
when this module is imported; without them, or without a driver or a GPU, the
backend loads and says why it is unavailable. Install with
``pip install '.[cuda]'`` from a futurekit checkout.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from futurekit.core._devices import Device
from futurekit.core._errors import BackendUnavailableError

from . import _cuda_driver
from ._cuda_arrays import cai_stream, foreign_cuda_device
from ._cuda_driver import (
    CudaStream,
    PooledEvent,
    _Runtime,
    import_cuda,
    runtime,
)
from ._current import swap_current
from ._hookspec import hookimpl
from ._protocol import BackendBase
from ._spec import BackendSpec
from ._torch_tensors import record_tensor_on_stream, tensor_device

__all__ = ["CudaPythonBackend", "CudaStream", "current_stream", "use_stream"]

_NEVER_BUFFERS = frozenset({int, float, complex, bool, str, bytes, type(None)})
#: Torch streams kept per (device, handle) for record_stream and the torch mirror.
_TORCH_STREAM_CACHE = 1024


def _torch_stream(rt: _Runtime, torch: Any, stream: CudaStream) -> Any:
    """The torch stream object for ``stream`` (cached; made once per handle)."""
    key = (stream.index, stream.handle)
    found = rt.torch_streams.get(key)
    if found is None:
        if stream.handle in (0, 1):  # torch's default stream is the legacy one
            found = torch.cuda.default_stream(stream.index)
        else:
            found = torch.cuda.ExternalStream(
                stream.handle, device=torch.device("cuda", stream.index)
            )
        if len(rt.torch_streams) >= _TORCH_STREAM_CACHE:
            rt.torch_streams.clear()
        rt.torch_streams[key] = found
    return found


def _torch_has_cuda(rt: _Runtime, torch: Any) -> bool:
    has = rt.torch_cuda
    if has is None:
        try:
            has = bool(torch.cuda.is_available())
        except Exception:
            has = False
        rt.torch_cuda = has
    return has


@contextlib.contextmanager
def _torch_current(torch: Any, streams: Sequence[Any]) -> Iterator[None]:
    """Make torch ``streams`` torch's current streams; keep the current device."""
    previous_device = torch.cuda.current_device()
    previous = [torch.cuda.current_stream(s.device_index) for s in streams]
    try:
        for stream in streams:
            torch.cuda.set_stream(stream)
        torch.cuda.set_device(previous_device)  # set_stream switches the device
        yield
    finally:
        for stream in reversed(previous):
            torch.cuda.set_stream(stream)
        torch.cuda.set_device(previous_device)


def current_stream(device: Any = None) -> CudaStream:
    """Futurekit's current stream on a CUDA device for this thread.

    Args:
        device: an index, ``"cuda:N"``, a :class:`~futurekit.Device` or a
            ``torch.device``; ``None`` means the current CUDA device.

    Raises:
        BackendUnavailableError: cuda-python, a driver or a GPU is missing.
    """
    rt = runtime()
    return rt.current(rt.index_of(device))


@contextlib.contextmanager
def use_stream(stream: Any, device: Any = None) -> Iterator[CudaStream]:
    """Make ``stream`` futurekit's current stream on its device in this thread.

    Args:
        stream: a ``cuda.core.Stream``, a :class:`CudaStream`, or any object with
            ``__cuda_stream__`` (CuPy, torch and numba streams).
        device: the device, needed only for a default stream (handle 0, 1 or 2)
            that is not on the current device.

    Yields:
        The stream as a :class:`CudaStream`. The previous current stream of that
        device is restored on exit.
    """
    rt = runtime()
    bound = rt.as_stream(stream, device)
    streams = rt.streams()
    index = bound.device.index
    previous = streams.get(index)
    streams[index] = bound
    try:
        yield bound
    finally:
        if previous is None:
            streams.pop(index, None)
        else:
            streams[index] = previous


class CudaPythonBackend(BackendBase):
    """The ``cuda`` backend built on cuda-python (no torch needed).

    Streams are :class:`CudaStream` (a ``cuda.core.Stream`` and its device);
    events come from a per-device pool of driver events with timing disabled;
    callback streams come from a round-robin pool of non-blocking streams per
    device. Every operation works from any thread: the device's primary context
    is made current for the call when it is not (see ``_cuda_driver``).
    """

    device_type = "cuda"

    def __init__(self) -> None:
        self._reason: str | None = None
        self._count = 0
        self._rt: Any = None
        self._tensor_type: Any = None
        try:
            import_cuda()  # always re-checked, even when the runtime is cached
            self._rt = _cuda_driver.runtime()
            self._count = self._rt.count
        except BackendUnavailableError as exc:
            self._reason = str(exc).removeprefix("the cuda-python backend is unavailable: ")
        core = None if self._rt is None else self._rt.core
        extra = () if core is None else (core.Stream,)
        #: Streams and events: never walked for buffers.
        self.opaque_types: tuple[type, ...] = (CudaStream, PooledEvent, *extra)
        rt = self._rt
        if rt is not None:  # the hot path: the runtime's methods, bound once
            self.record_event = rt.record  # type: ignore[method-assign]
            self.wait_event = rt.wait  # type: ignore[method-assign]
            self.query_event = rt.query  # type: ignore[method-assign]
            self.synchronize_event = rt.synchronize  # type: ignore[method-assign]

    def unavailable_reason(self) -> str | None:
        """Why cuda-python cannot be used here, or ``None``."""
        return self._reason

    def device_count(self) -> int:
        """Number of CUDA devices the driver sees (0 when unavailable)."""
        return self._count

    def _require(self) -> _Runtime:
        if self._rt is None:
            raise BackendUnavailableError(f"the cuda-python backend is unavailable: {self._reason}")
        rt: _Runtime = self._rt
        return rt

    def current_stream(self, device: Device) -> CudaStream:
        """This thread's current stream on ``device`` (see :func:`use_stream`)."""
        rt = self._rt
        if rt is None:
            rt = self._require()
        try:
            stream: CudaStream = rt.local.streams[device.index]
            return stream
        except (AttributeError, KeyError):
            default: CudaStream = rt.defaults[device.index]
            return default

    def stream_from_pool(self, device: Device) -> CudaStream:
        """A stream from the device's round-robin pool of non-blocking streams."""
        return self._require().from_pool(device.index)

    def current_device(self) -> Device:
        """The device of this thread's current context; ``cuda:0`` without one (as cudart)."""
        rt = self._require()
        index = rt.current_index()
        return rt.devices[0 if index is None else index]

    def enter_device(self, device: Device) -> Any:
        """Make ``device``'s primary context current; returns what to restore.

        torch and CuPy see the change (``cudaGetDevice`` follows the current context).
        """
        return self._require().enter(device.index)

    def exit_device(self, token: Any) -> None:
        """Restore the context :meth:`enter_device` replaced (possibly none)."""
        self._require().leave(token)

    @contextlib.contextmanager
    def use_device(self, device: Device) -> Iterator[None]:
        """Make ``device``'s primary context current for the block; restore the previous one."""
        token = self.enter_device(device)
        try:
            yield
        finally:
            self.exit_device(token)

    def enter_streams(self, streams: Sequence[Any]) -> Any:
        """Make ``streams`` current on their devices; returns what to restore.

        When torch is imported (with CUDA), the streams are made torch's current
        streams too: torch code in a callback runs on the synchronized pool
        streams, and a torch future completed there records its events after ours.
        """
        manager = self.use_streams(streams)
        manager.__enter__()
        return manager

    def exit_streams(self, token: Any) -> None:
        """Restore the streams :meth:`enter_streams` replaced."""
        token.__exit__(None, None, None)

    @contextlib.contextmanager
    def use_streams(self, streams: Sequence[Any]) -> Iterator[None]:
        """Make ``streams`` current on their devices, restoring the previous ones after.

        When torch is imported (with CUDA), the streams are made torch's current
        streams too (see :meth:`enter_streams`).
        """
        rt = self._require()
        bound = [rt.as_stream(stream) for stream in streams]
        with swap_current(rt.streams(), [(b.index, b) for b in bound]):
            torch = sys.modules.get("torch")
            if bound and torch is not None and _torch_has_cuda(rt, torch):
                with _torch_current(torch, [_torch_stream(rt, torch, b) for b in bound]):
                    yield
            else:
                yield

    @contextlib.contextmanager
    def from_torch_streams(self, devices: Sequence[Device]) -> Iterator[None]:
        """Make torch's current streams on ``devices`` futurekit's, for the block.

        ``from_torch`` completes its future inside a torch future's callback, where
        torch made its synchronized pool streams current; the events must be
        recorded there, not on the default stream.
        """
        torch = sys.modules.get("torch")
        rt = self._require()
        if torch is None or not devices or not _torch_has_cuda(rt, torch):
            yield
            return
        pairs = [
            (d.index, rt.as_stream(torch.cuda.current_stream(d.index), d.index)) for d in devices
        ]
        with swap_current(rt.streams(), pairs):
            yield

    def record_event(self, stream: CudaStream) -> Any:
        """Record a pooled event (timing disabled, blocking sync) on ``stream``."""
        return self._require().record(stream)

    def wait_event(self, stream: CudaStream, event: Any) -> None:
        """``cuStreamWaitEvent``: ``stream`` waits for ``event``; the host does not block."""
        self._require().wait(stream, event)

    def query_event(self, event: Any) -> bool:
        """``cuEventQuery``: whether the work before ``event`` is done."""
        return self._require().query(event)

    def synchronize_event(self, event: Any) -> None:
        """``cuEventSynchronize``: block the host (yielding the CPU) until ``event`` completes."""
        self._require().synchronize(event)

    def _torch_tensor_type(self) -> Any:
        tensor_type = self._tensor_type
        if tensor_type is None:
            torch = sys.modules.get("torch")  # never import torch from here
            tensor_type = getattr(torch, "Tensor", None)
            if isinstance(tensor_type, type):
                self._tensor_type = tensor_type
        return tensor_type

    def device_of(self, obj: Any) -> Device | None:
        """The CUDA device of a buffer, or ``None``.

        Recognises torch tensors (when torch is already imported), objects with
        ``__dlpack_device__`` (``kDLCUDA`` and ``kDLCUDAManaged``) and objects with
        ``__cuda_array_interface__`` (the driver says which device owns the
        pointer). Host memory, zero-size arrays and foreign objects give ``None``.

        Raises:
            BackendError: the driver failed to look a pointer up (never taken for
                "host memory").
        """
        cls = type(obj)
        if cls in _NEVER_BUFFERS:
            return None
        tensor_type = self._tensor_type
        if tensor_type is None:
            tensor_type = self._torch_tensor_type()
        if tensor_type is not None and isinstance(obj, tensor_type):
            return tensor_device(obj)
        return foreign_cuda_device(obj, self._pointer_device)

    def _pointer_device(self, ptr: int) -> int | None:
        """The device ordinal owning ``ptr`` (``cuPointerGetAttribute``), or ``None``.

        Without a driver no memory can be CUDA memory: ``None``.
        """
        rt: _Runtime | None = self._rt
        return None if rt is None else rt.pointer_device(ptr)

    def order_buffer(self, obj: Any, stream: CudaStream) -> None:
        """Make ``stream`` wait for the stream a CUDA Array Interface names as producer."""
        tensor_type = self._tensor_type
        if tensor_type is not None and isinstance(obj, tensor_type):
            return  # produced on torch's current stream: use_stream it, see the docs
        handle = cai_stream(obj)
        if handle is None or handle == stream.handle:
            return
        rt = self._require()
        producer = CudaStream(stream.device, rt.core.Stream.from_handle(handle))
        rt.wait(stream, rt.record(producer))

    def record_values_on_stream(self, buffers: Sequence[Any], stream: CudaStream) -> None:
        """For torch CUDA tensors, ``record_stream`` on the stream (allocator hint).

        CuPy and other arrays get none: CuPy's memory pool has no ``record_stream``
        (see the cuda-python backend page for what holds for them).
        """
        tensor_type = self._torch_tensor_type()
        if tensor_type is None:
            return
        torch_stream = None
        for obj in buffers:
            if isinstance(obj, tensor_type) and obj.is_cuda:
                if torch_stream is None:
                    torch: Any = sys.modules["torch"]
                    torch_stream = _torch_stream(self._require(), torch, stream)
                record_tensor_on_stream(obj, torch_stream)

    def record_value_on_stream(self, obj: Any, stream: CudaStream) -> None:
        """The allocator hint for one buffer (see :meth:`record_values_on_stream`)."""
        self.record_values_on_stream((obj,), stream)

    def __repr__(self) -> str:
        state = "available" if self._reason is None else f"unavailable: {self._reason}"
        return f"<CudaPythonBackend ({state})>"


@hookimpl
def futurekit_device_backends() -> Iterator[BackendSpec]:
    """The cuda-python backend for ``cuda`` (priority 5, below torch's 10)."""
    yield BackendSpec(
        name="cuda-python",
        device_type="cuda",
        load=CudaPythonBackend,
        priority=5,
        extra="cuda",
        description="CUDA streams and events through cuda.core (no torch needed)",
    )
