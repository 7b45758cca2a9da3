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

import collections
import contextlib
import itertools
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from futurekit.core._devices import Device, parse_device
from futurekit.core._errors import BackendError, BackendUnavailableError

from ._cuda_arrays import cai_stream, foreign_cuda_device
from ._current import swap_current
from ._hookspec import hookimpl
from ._protocol import BackendBase
from ._spec import BackendSpec, install_hint
from .torch import record_tensor_on_stream, tensor_device

__all__ = ["CudaPythonBackend", "CudaStream", "current_stream", "use_stream"]

_INSTALL = install_hint("cuda")
NOT_INSTALLED = f"cuda-python is not installed: {_INSTALL}"
#: Streams kept per device in the round-robin pool used for callbacks.
POOL_SIZE = 8
#: Idle events kept per device for reuse.
EVENT_POOL_SIZE = 256
_DEFAULT_HANDLES = frozenset({0, 1, 2})  # 0: "default", 1: legacy, 2: per-thread
_NEVER_BUFFERS = frozenset({int, float, complex, bool, str, bytes, type(None)})
#: Torch streams kept per (device, handle) for record_stream and the torch mirror.
_TORCH_STREAM_CACHE = 1024


class CudaStream:
    """A CUDA stream bound to the device it belongs to.

    Default streams (handles 0, 1, 2) act on whichever context is current, so the
    device is kept alongside. The object speaks ``__cuda_stream__``, so it can be
    handed to CuPy, ``cuda.core`` or ``torch.cuda.ExternalStream``.

    Attributes:
        device: the futurekit device (``cuda:N``).
        stream: the ``cuda.core.Stream``.
        handle: the ``cudaStream_t`` address as an int.
        owner: the foreign object the stream was made from, kept alive.
    """

    __slots__ = ("device", "handle", "owner", "stream")

    def __init__(self, device: Device, stream: Any, owner: Any = None) -> None:
        self.device = device
        self.stream = stream
        self.handle = int(stream.handle)
        self.owner = owner

    @property
    def is_default(self) -> bool:
        """Whether this is a default stream (legacy or per-thread)."""
        return self.handle in _DEFAULT_HANDLES

    def __cuda_stream__(self) -> tuple[int, int]:
        """The ``__cuda_stream__`` protocol: ``(0, handle)``."""
        return (0, self.handle)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CudaStream):
            return NotImplemented
        return self.device == other.device and self.handle == other.handle

    def __hash__(self) -> int:
        return hash((self.device, self.handle))

    def __repr__(self) -> str:
        return f"<CudaStream {self.device} handle={self.handle:#x}>"


class _PooledEvent:
    """An event handed to the core; its CUDA event goes back to the pool when dropped."""

    __slots__ = ("event", "free", "index")

    def __init__(self, event: Any, free: collections.deque[Any], index: int) -> None:
        self.event = event
        self.free = free
        self.index = index

    def __del__(self) -> None:
        # Nothing can query the event any more, so re-recording it is safe.
        self.free.append(self.event)

    def __repr__(self) -> str:
        return f"<cuda-python event {self.event!r}>"


def _import_cuda() -> tuple[Any, Any]:
    """``(cuda.core, cuda.bindings.driver)``, or BackendUnavailableError."""
    try:
        import cuda.core as core
        from cuda.bindings import driver
    except ModuleNotFoundError:
        raise BackendUnavailableError(NOT_INSTALLED) from None
    except ImportError as exc:
        raise BackendUnavailableError(f"cuda-python failed to import ({exc}): {_INSTALL}") from None
    except Exception as exc:
        raise BackendUnavailableError(
            f"cuda-python failed to import: {type(exc).__name__}: {exc}"
        ) from None
    return core, driver


def _probe_driver(core: Any, driver: Any) -> tuple[str | None, int]:
    """``(reason or None, device count)``; never raises."""
    version = getattr(core, "__version__", "0")
    try:
        major_minor = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        major_minor = (0, 0)
    if major_minor < (1, 2):
        return f"cuda-core {version} is too old (futurekit needs cuda-core>=1.2): {_INSTALL}", 0
    ok = driver.CUresult.CUDA_SUCCESS
    try:
        (err,) = driver.cuInit(0)
        if err != ok:
            name = getattr(err, "name", str(err))
            if err == driver.CUresult.CUDA_ERROR_NO_DEVICE:
                return f"no CUDA device found (cuInit returned {name})", 0
            return f"the CUDA driver failed to initialize (cuInit returned {name})", 0
        err, count = driver.cuDeviceGetCount()
    except (RuntimeError, OSError) as exc:  # cuda.pathfinder.DynamicLibNotFoundError
        return f"no NVIDIA driver found ({exc})", 0
    except Exception as exc:
        return f"probing the CUDA driver failed: {type(exc).__name__}: {exc}", 0
    if err != ok or not count:
        return "no CUDA device found", 0
    return None, int(count)


class _Runtime:
    """Process-wide state: default streams, stream and event pools, current streams."""

    def __init__(self, core: Any, driver: Any, count: int) -> None:
        self.core = core
        self.driver = driver
        self.count = count
        self.ok = driver.CUresult.CUDA_SUCCESS
        # blocking_sync: synchronize() yields the CPU instead of spinning a core
        self.event_options = core.EventOptions(timing_enabled=False, blocking_sync=True)
        self.torch_streams: dict[tuple[int, int], Any] = {}
        self.torch_cuda: bool | None = None
        self.stream_options = core.StreamOptions(nonblocking=True)
        flag = os.environ.get("CUDA_PYTHON_CUDA_PER_THREAD_DEFAULT_STREAM", "0").strip()
        per_thread = flag.isdigit() and int(flag) != 0
        default = core.PER_THREAD_DEFAULT_STREAM if per_thread else core.LEGACY_DEFAULT_STREAM
        self.defaults = [CudaStream(Device("cuda", i), default) for i in range(count)]
        self.local = threading.local()
        self.lock = threading.Lock()
        self.pools: list[list[CudaStream]] = [[] for _ in range(count)]
        self.turns = [itertools.count() for _ in range(count)]
        self.free_events = [collections.deque[Any](maxlen=EVENT_POOL_SIZE) for _ in range(count)]

    # -- devices ----------------------------------------------------------------------
    def current_index(self) -> int | None:
        err, dev = self.driver.cuCtxGetDevice()
        return int(dev) if err == self.ok else None

    def enter(self, index: int, force: bool = False) -> int | None:
        """Make ``index`` current; returns the device to restore, if any."""
        prev = self.current_index()
        if prev == index and not force:
            return None
        self.core.Device(index).set_current()
        return prev if prev != index else None

    def leave(self, prev: int | None) -> None:
        if prev is not None:
            self.core.Device(prev).set_current()

    def index_of(self, device: Any) -> int:
        if device is None:
            index = self.current_index()
            return 0 if index is None else index
        if isinstance(device, int) and not isinstance(device, bool):
            kind, index = "cuda", device
        else:
            kind, parsed = parse_device(device)
            if parsed is None:
                current = self.current_index()
                parsed = 0 if current is None else current
            index = parsed
        if kind != "cuda":
            raise ValueError(f"expected a cuda device, got {device!r}")
        if not 0 <= index < self.count:
            raise ValueError(f"cuda:{index} does not exist: this machine has {self.count} GPU(s)")
        return index

    # -- streams ----------------------------------------------------------------------
    def streams(self) -> dict[int, CudaStream]:
        try:
            mapping: dict[int, CudaStream] = self.local.streams
        except AttributeError:
            mapping = self.local.streams = {}
        return mapping

    def current(self, index: int) -> CudaStream:
        stream = self.streams().get(index)
        return stream if stream is not None else self.defaults[index]

    def from_pool(self, index: int) -> CudaStream:
        pool = self.pools[index]
        if len(pool) < POOL_SIZE:
            with self.lock:
                if len(pool) < POOL_SIZE:
                    prev = self.enter(index, force=True)
                    try:
                        created = self.core.Device(index).create_stream(options=self.stream_options)
                    finally:
                        self.leave(prev)
                    stream = CudaStream(Device("cuda", index), created)
                    pool.append(stream)
                    return stream
        return pool[next(self.turns[index]) % len(pool)]

    def as_stream(self, obj: Any, device: Any = None) -> CudaStream:
        """Wrap a cuda.core Stream or any ``__cuda_stream__`` object."""
        if isinstance(obj, CudaStream):
            if device is not None and self.index_of(device) != obj.device.index:
                raise ValueError(f"{obj!r} is not on {device!r}")
            return obj
        core = self.core
        owner = None
        if isinstance(obj, core.Stream):
            stream = obj
        else:
            handle = _stream_handle(obj)
            stream = core.Stream.from_handle(handle)
            owner = obj
        handle = int(stream.handle)
        if handle in _DEFAULT_HANDLES:
            hint = device if device is not None else _device_hint(obj)
            index = self.index_of(hint)
        else:
            index = int(stream.device.device_id)
            if device is not None and self.index_of(device) != index:
                raise ValueError(f"stream {obj!r} belongs to cuda:{index}, not {device!r}")
        return CudaStream(Device("cuda", index), stream, owner)

    # -- events -----------------------------------------------------------------------
    def record(self, stream: CudaStream) -> _PooledEvent:
        """Record a pooled event on ``stream``, with the stream's device current.

        Every stream, not only the default ones, is used with its own device's
        context current: a fresh thread (an executor's) has no context at all.
        """
        index = stream.device.index
        free = self.free_events[index]
        prev = self.enter(index)
        try:
            try:
                event = free.pop()
            except IndexError:
                event = self.core.Device(index).create_event(options=self.event_options)
            stream.stream.record(event=event)
        finally:
            self.leave(prev)
        return _PooledEvent(event, free, index)

    def wait(self, stream: CudaStream, event: _PooledEvent) -> None:
        prev = self.enter(stream.device.index)
        try:
            stream.stream.wait(event.event)
        finally:
            self.leave(prev)

    def query(self, event: _PooledEvent) -> bool:
        prev = self.enter(event.index)
        try:
            return bool(event.event.is_done)
        finally:
            self.leave(prev)

    def synchronize(self, event: _PooledEvent) -> None:
        prev = self.enter(event.index)
        try:
            event.event.sync()
        finally:
            self.leave(prev)

    def pointer_device(self, ptr: int) -> int | None:
        """The device owning ``ptr``; ``None`` for memory the driver does not know.

        ``CUDA_ERROR_INVALID_VALUE`` means host (or unknown) memory. Without a
        current context (a fresh thread) the lookup is retried with device 0's
        primary context current. Any other error is raised: a CUDA buffer must
        never pass for host memory and go unsynchronized.

        Raises:
            BackendError: the driver failed.
        """
        driver = self.driver
        attr = driver.CUpointer_attribute.CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL
        err, ordinal = driver.cuPointerGetAttribute(attr, ptr)
        if err in (
            driver.CUresult.CUDA_ERROR_INVALID_CONTEXT,
            driver.CUresult.CUDA_ERROR_NOT_INITIALIZED,
        ):
            self.enter(0)  # any context serves a unified-address lookup
            err, ordinal = driver.cuPointerGetAttribute(attr, ptr)
        if err == self.ok:
            return int(ordinal)
        if err == driver.CUresult.CUDA_ERROR_INVALID_VALUE:
            return None
        name = getattr(err, "name", str(err))
        raise BackendError(
            f"cuPointerGetAttribute(DEVICE_ORDINAL, {ptr:#x}) failed with {name}: cannot "
            "tell which GPU owns this buffer, so it cannot be synchronized"
        )

    # -- torch interoperation ---------------------------------------------------------
    def torch_stream(self, torch: Any, stream: CudaStream) -> Any:
        """The torch stream object for ``stream`` (cached; made once per handle)."""
        key = (stream.device.index, stream.handle)
        found = self.torch_streams.get(key)
        if found is None:
            if stream.handle in (0, 1):  # torch's default stream is the legacy one
                found = torch.cuda.default_stream(stream.device.index)
            else:
                found = torch.cuda.ExternalStream(
                    stream.handle, device=torch.device("cuda", stream.device.index)
                )
            if len(self.torch_streams) >= _TORCH_STREAM_CACHE:
                self.torch_streams.clear()
            self.torch_streams[key] = found
        return found

    def torch_has_cuda(self, torch: Any) -> bool:
        has = self.torch_cuda
        if has is None:
            try:
                has = bool(torch.cuda.is_available())
            except Exception:
                has = False
            self.torch_cuda = has
        return has


def _stream_handle(obj: Any) -> int:
    """The ``cudaStream_t`` of a foreign stream object."""
    proto = getattr(obj, "__cuda_stream__", None)
    if proto is not None:
        version, handle = proto() if callable(proto) else proto
        if version != 0:
            raise ValueError(f"unsupported __cuda_stream__ protocol version {version}")
        return int(handle)
    for attr in ("cuda_stream", "ptr"):  # torch, CuPy without __cuda_stream__
        handle = getattr(obj, attr, None)
        if isinstance(handle, int) and not isinstance(handle, bool):
            return handle
    raise TypeError(
        "expected a CUDA stream (an object with __cuda_stream__, such as a cuda.core, "
        f"CuPy or torch stream), got {type(obj).__name__}"
    )


def _device_hint(obj: Any) -> Any:
    """The device a default-stream object says it belongs to (torch, CuPy), if any."""
    for attr in ("device_index", "device_id"):
        value = getattr(obj, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


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


_RUNTIME: _Runtime | None = None
_RUNTIME_LOCK = threading.Lock()


def _runtime() -> _Runtime:
    global _RUNTIME
    runtime = _RUNTIME
    if runtime is not None:
        return runtime
    with _RUNTIME_LOCK:
        if _RUNTIME is None:
            core, driver = _import_cuda()
            reason, count = _probe_driver(core, driver)
            if reason is not None:
                raise BackendUnavailableError(f"the cuda-python backend is unavailable: {reason}")
            _RUNTIME = _Runtime(core, driver, count)
        return _RUNTIME


def current_stream(device: Any = None) -> CudaStream:
    """Futurekit's current stream on a CUDA device for this thread.

    Args:
        device: an index, ``"cuda:N"``, a :class:`~futurekit.Device` or a
            ``torch.device``; ``None`` means the current CUDA device.

    Raises:
        BackendUnavailableError: cuda-python, a driver or a GPU is missing.
    """
    runtime = _runtime()
    return runtime.current(runtime.index_of(device))


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
    runtime = _runtime()
    bound = runtime.as_stream(stream, device)
    streams = runtime.streams()
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
    """The ``cuda`` backend built on ``cuda.core`` (no torch needed).

    Streams are :class:`CudaStream`; events come from a per-device pool of
    ``cuda.core`` events with timing disabled; callback streams come from a
    round-robin pool of non-blocking streams per device.
    """

    device_type = "cuda"

    def __init__(self) -> None:
        self._reason: str | None = None
        self._count = 0
        self._rt: Any = None
        self._tensor_type: Any = None
        try:
            _import_cuda()  # always re-checked, even when the runtime is cached
            self._rt = _runtime()
            self._count = self._rt.count
        except BackendUnavailableError as exc:
            self._reason = str(exc).removeprefix("the cuda-python backend is unavailable: ")
        core = None if self._rt is None else self._rt.core
        extra = () if core is None else (core.Stream, core.Event)
        #: Streams and events: never walked for buffers.
        self.opaque_types: tuple[type, ...] = (CudaStream, _PooledEvent, *extra)

    def unavailable_reason(self) -> str | None:
        """Why cuda-python cannot be used here, or ``None``."""
        return self._reason

    def device_count(self) -> int:
        """Number of CUDA devices the driver sees (0 when unavailable)."""
        return self._count

    def _require(self) -> _Runtime:
        if self._rt is None:
            raise BackendUnavailableError(f"the cuda-python backend is unavailable: {self._reason}")
        runtime: _Runtime = self._rt
        return runtime

    def current_stream(self, device: Device) -> CudaStream:
        """This thread's current stream on ``device`` (see :func:`use_stream`)."""
        return self._require().current(device.index)

    def stream_from_pool(self, device: Device) -> CudaStream:
        """A stream from the device's round-robin pool of non-blocking streams."""
        return self._require().from_pool(device.index)

    def current_device(self) -> Device:
        """The device of this thread's current context; ``cuda:0`` without one (as cudart)."""
        index = self._require().current_index()
        return Device("cuda", 0 if index is None else index)

    @contextlib.contextmanager
    def use_device(self, device: Device) -> Iterator[None]:
        """Make ``device``'s primary context current for the block, then restore the previous one.

        torch and CuPy see the change (``cudaGetDevice`` follows the current context).
        """
        runtime = self._require()
        driver = runtime.driver
        if runtime.current_index() == device.index:
            yield
            return
        err, previous = driver.cuCtxGetCurrent()
        runtime.core.Device(device.index).set_current()
        try:
            yield
        finally:
            if err == runtime.ok:
                driver.cuCtxSetCurrent(previous)

    @contextlib.contextmanager
    def use_streams(self, streams: Sequence[Any]) -> Iterator[None]:
        """Make ``streams`` current on their devices, restoring the previous ones after.

        When torch is imported (with CUDA), the streams are made torch's current
        streams too: torch code in a callback runs on the synchronized pool
        streams, and a torch future completed there (``to_torch``) records its
        events after ours.
        """
        runtime = self._require()
        bound = [runtime.as_stream(stream) for stream in streams]
        with swap_current(runtime.streams(), [(b.device.index, b) for b in bound]):
            torch = sys.modules.get("torch")
            if bound and torch is not None and runtime.torch_has_cuda(torch):
                with _torch_current(torch, [runtime.torch_stream(torch, b) for b in bound]):
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
        runtime = self._require()
        if torch is None or not devices or not runtime.torch_has_cuda(torch):
            yield
            return
        pairs = [
            (d.index, runtime.as_stream(torch.cuda.current_stream(d.index), d.index))
            for d in devices
        ]
        with swap_current(runtime.streams(), pairs):
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
        tensor_type = self._torch_tensor_type()
        if tensor_type is not None and isinstance(obj, tensor_type):
            return tensor_device(obj)
        return foreign_cuda_device(obj, self._pointer_device)

    def _pointer_device(self, ptr: int) -> int | None:
        """The device ordinal owning ``ptr`` (``cuPointerGetAttribute``), or ``None``.

        Without a driver no memory can be CUDA memory: ``None``.
        """
        runtime: _Runtime | None = self._rt
        return None if runtime is None else runtime.pointer_device(ptr)

    def order_buffer(self, obj: Any, stream: CudaStream) -> None:
        """Make ``stream`` wait for the stream a CUDA Array Interface names as producer."""
        tensor_type = self._torch_tensor_type()
        if tensor_type is not None and isinstance(obj, tensor_type):
            return  # produced on torch's current stream: use_stream it, see the docs
        handle = cai_stream(obj)
        if handle is None or handle == stream.handle:
            return
        runtime = self._require()
        producer = CudaStream(stream.device, runtime.core.Stream.from_handle(handle))
        runtime.wait(stream, runtime.record(producer))

    def record_value_on_stream(self, obj: Any, stream: CudaStream) -> None:
        """For torch CUDA tensors, ``record_stream`` on the stream (allocator hint).

        CuPy and other arrays get none: CuPy's memory pool has no ``record_stream``.
        """
        tensor_type = self._torch_tensor_type()
        if tensor_type is None or not isinstance(obj, tensor_type):
            return
        if obj.device.type != "cuda":
            return
        torch: Any = sys.modules["torch"]
        record_tensor_on_stream(obj, self._require().torch_stream(torch, stream))

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
