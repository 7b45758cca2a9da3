"""The CUDA driver side of the ``cuda-python`` backend: contexts, streams, events.

Everything on the hot path goes through ``cuda.bindings.driver`` with raw handles
(``cuEventRecord``, ``cuStreamWaitEvent``, ``cuEventQuery``,
``cuEventSynchronize``): the driver only needs the right **context current in the
calling thread**, which :meth:`_Runtime.enter` ensures with one
``cuCtxGetCurrent`` (and a ``cuCtxSetCurrent`` only when another context, or
none, is current). ``cuda.core`` is used for the objects users hand over
(``cuda.core.Stream``) and never for a call that needs its per-thread
``Device(i).set_current()``: cuda.core 1.2 refuses ``create_event`` /
``create_stream`` in any thread where that has not run, even when the driver
already has the device's context current (torch made it so), which is how the
backend once failed in every executor thread and after torch.

Contexts are the devices' **primary contexts** (``cuDevicePrimaryCtxRetain``, as
``cudaSetDevice``, torch and CuPy use), retained when a device is first used.
Events are created with timing disabled and blocking sync, pooled per device and
reused once the future that recorded them is gone.

This module never imports ``cuda.core``/``cuda.bindings`` at import time.
"""

from __future__ import annotations

import collections
import itertools
import os
import threading
from typing import Any

from futurekit.core._devices import Device, parse_device
from futurekit.core._errors import BackendError, BackendUnavailableError

from ._spec import install_hint

__all__ = [
    "CudaStream",
    "PooledEvent",
    "device_hint",
    "import_cuda",
    "probe_driver",
    "runtime",
    "stream_handle",
]

_INSTALL = install_hint("cuda")
NOT_INSTALLED = f"cuda-python is not installed: {_INSTALL}"
#: Streams kept per device in the round-robin pool used for callbacks.
POOL_SIZE = 8
#: Idle events kept per device for reuse (the rest are destroyed).
EVENT_POOL_SIZE = 256
DEFAULT_HANDLES = frozenset({0, 1, 2})  # 0: "default", 1: legacy, 2: per-thread


class CudaStream:
    """A CUDA stream bound to the device it belongs to.

    Default streams (handles 0, 1, 2) act on whichever context is current, so the
    device is kept alongside. The object speaks ``__cuda_stream__``, so it can be
    handed to CuPy, ``cuda.core`` or ``torch.cuda.ExternalStream``.

    Attributes:
        device: the futurekit device (``cuda:N``).
        index: the device ordinal (``device.index``).
        stream: the ``cuda.core.Stream``.
        handle: the ``cudaStream_t`` address as an int.
        owner: the foreign object the stream was made from, kept alive.
    """

    __slots__ = ("device", "handle", "index", "owner", "stream")

    def __init__(self, device: Device, stream: Any, owner: Any = None) -> None:
        self.device = device
        self.index = device.index
        self.stream = stream
        self.handle = int(stream.handle)
        self.owner = owner

    @property
    def is_default(self) -> bool:
        """Whether this is a default stream (legacy or per-thread)."""
        return self.handle in DEFAULT_HANDLES

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


class PooledEvent:
    """An event handed to the core; its CUDA event goes back to the pool when dropped.

    Attributes:
        event: the driver's ``CUevent``.
        index: the device ordinal whose context owns it.
    """

    __slots__ = ("event", "index", "runtime")

    def __init__(self, event: Any, index: int, runtime: _Runtime) -> None:
        self.event = event
        self.index = index
        self.runtime = runtime

    def __del__(self) -> None:
        # Nothing can query the event any more, so re-recording it is safe.
        try:
            self.runtime.release_event(self.index, self.event)
        except Exception:  # interpreter shutdown: the driver may be gone
            pass

    def __repr__(self) -> str:
        return f"<cuda-python event on cuda:{self.index}>"


def import_cuda() -> tuple[Any, Any]:
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


def probe_driver(core: Any, driver: Any) -> tuple[str | None, int]:
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
    """Process-wide state: primary contexts, default streams, stream and event pools."""

    def __init__(self, core: Any, driver: Any, count: int) -> None:
        self.core = core
        self.driver = driver
        self.count = count
        self.ok = driver.CUresult.CUDA_SUCCESS
        self.not_ready = driver.CUresult.CUDA_ERROR_NOT_READY
        flags = driver.CUevent_flags
        # blocking sync: synchronize() yields the CPU instead of spinning a core
        self.event_flags = int(flags.CU_EVENT_DISABLE_TIMING) | int(flags.CU_EVENT_BLOCKING_SYNC)
        self.stream_flags = int(driver.CUstream_flags.CU_STREAM_NON_BLOCKING)
        flag = os.environ.get("CUDA_PYTHON_CUDA_PER_THREAD_DEFAULT_STREAM", "0").strip()
        per_thread = flag.isdigit() and int(flag) != 0
        default = core.PER_THREAD_DEFAULT_STREAM if per_thread else core.LEGACY_DEFAULT_STREAM
        self.devices = [Device("cuda", i) for i in range(count)]
        self.defaults = [CudaStream(self.devices[i], default) for i in range(count)]
        self.lock = threading.Lock()
        self.context_lock = threading.Lock()
        self.contexts: list[Any] = [None] * count  # primary contexts, retained on first use
        self.addresses: list[int] = [-1] * count  # their addresses, for a cheap comparison
        self.pools: list[list[CudaStream]] = [[] for _ in range(count)]
        self.turns = [itertools.count() for _ in range(count)]
        self.free_events = [collections.deque[Any]() for _ in range(count)]
        self.local = threading.local()
        self.torch_streams: dict[tuple[int, int], Any] = {}
        self.torch_cuda: bool | None = None

    def check(self, result: Any, call: str) -> None:
        """Raise a BackendError for a failed driver call."""
        if result != self.ok:
            name = getattr(result, "name", str(result))
            raise BackendError(f"cuda-python: {call} failed with {name}")

    # -- contexts -----------------------------------------------------------------------
    def context(self, index: int) -> Any:
        """Device ``index``'s primary context (retained once per process)."""
        ctx = self.contexts[index]
        if ctx is None:
            with self.context_lock:  # not self.lock: from_pool() holds that one
                ctx = self.contexts[index]
                if ctx is None:
                    driver = self.driver
                    err, dev = driver.cuDeviceGet(index)
                    self.check(err, f"cuDeviceGet({index})")
                    err, ctx = driver.cuDevicePrimaryCtxRetain(dev)
                    self.check(err, f"cuDevicePrimaryCtxRetain(cuda:{index})")
                    self.addresses[index] = int(ctx)
                    self.contexts[index] = ctx
        return ctx

    def enter(self, index: int) -> Any:
        """Make device ``index``'s primary context current in this thread.

        Returns the context to restore (``None``: it was current already). Works in
        any thread: a fresh one (no context), one where torch or CuPy made another
        device current, one where cuda.core was never initialised.
        """
        err, current = self.driver.cuCtxGetCurrent()
        if err == self.ok and int(current) == self.addresses[index]:
            return None
        err = self.driver.cuCtxSetCurrent(self.context(index))[0]
        self.check(err, f"cuCtxSetCurrent(cuda:{index})")
        return current

    def leave(self, previous: Any) -> None:
        """Restore what :meth:`enter` replaced (possibly no context at all)."""
        if previous is not None:
            self.driver.cuCtxSetCurrent(previous)

    def current_index(self) -> int | None:
        """The device of this thread's current context, or ``None`` without one."""
        err, dev = self.driver.cuCtxGetDevice()
        return int(dev) if err == self.ok else None

    # -- streams ------------------------------------------------------------------------
    def streams(self) -> dict[int, CudaStream]:
        """This thread's table of current streams, by device ordinal."""
        try:
            mapping: dict[int, CudaStream] = self.local.streams
        except AttributeError:
            mapping = self.local.streams = {}
        return mapping

    def current(self, index: int) -> CudaStream:
        stream = self.streams().get(index)
        return stream if stream is not None else self.defaults[index]

    def from_pool(self, index: int) -> CudaStream:
        """A stream from device ``index``'s round-robin pool of non-blocking streams."""
        pool = self.pools[index]
        if len(pool) < POOL_SIZE:
            with self.lock:
                if len(pool) < POOL_SIZE:
                    previous = self.enter(index)
                    try:
                        err, raw = self.driver.cuStreamCreate(self.stream_flags)
                        self.check(err, f"cuStreamCreate(cuda:{index})")
                    finally:
                        self.leave(previous)
                    stream = CudaStream(
                        self.devices[index], self.core.Stream.from_handle(int(raw)), raw
                    )
                    pool.append(stream)
                    return stream
        return pool[next(self.turns[index]) % len(pool)]

    def stream_device(self, handle: int) -> int:
        """The ordinal of the device owning a (non-default) stream handle."""
        driver = self.driver
        err, ctx = driver.cuStreamGetCtx(handle)
        self.check(err, f"cuStreamGetCtx({handle:#x})")
        address = int(ctx)
        if address in self.addresses:
            return self.addresses.index(address)
        driver.cuCtxPushCurrent(ctx)
        try:
            err, dev = driver.cuCtxGetDevice()
        finally:
            driver.cuCtxPopCurrent()
        self.check(err, "cuCtxGetDevice")
        return int(dev)

    def as_stream(self, obj: Any, device: Any = None) -> CudaStream:
        """Wrap a cuda.core Stream or any ``__cuda_stream__`` object."""
        if isinstance(obj, CudaStream):
            if device is not None and self.index_of(device) != obj.index:
                raise ValueError(f"{obj!r} is not on {device!r}")
            return obj
        core = self.core
        owner = None
        if isinstance(obj, core.Stream):
            stream = obj
        else:
            stream = core.Stream.from_handle(stream_handle(obj))
            owner = obj
        handle = int(stream.handle)
        if handle in DEFAULT_HANDLES:
            hint = device if device is not None else device_hint(obj)
            index = self.index_of(hint)
        else:
            index = self.stream_device(handle)
            if device is not None and self.index_of(device) != index:
                raise ValueError(f"stream {obj!r} belongs to cuda:{index}, not {device!r}")
        return CudaStream(self.devices[index], stream, owner)

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

    # -- events (the hot path) ----------------------------------------------------------
    def record(self, stream: CudaStream) -> PooledEvent:
        """Record a pooled event on ``stream``, with the stream's context current."""
        index = stream.index
        driver = self.driver
        previous = self.enter(index)
        try:
            try:
                event = self.free_events[index].pop()
            except IndexError:
                err, event = driver.cuEventCreate(self.event_flags)
                self.check(err, f"cuEventCreate(cuda:{index})")
            err = driver.cuEventRecord(event, stream.handle)[0]
            if err != self.ok:
                self.free_events[index].append(event)
                self.check(err, f"cuEventRecord({stream!r})")
        finally:
            if previous is not None:
                driver.cuCtxSetCurrent(previous)
        return PooledEvent(event, index, self)

    def wait(self, stream: CudaStream, event: PooledEvent) -> None:
        """``cuStreamWaitEvent``: the stream waits; the host does not block."""
        driver = self.driver
        previous = self.enter(stream.index)
        try:
            err = driver.cuStreamWaitEvent(stream.handle, event.event, 0)[0]
            if err != self.ok:
                self.check(err, f"cuStreamWaitEvent({stream!r})")
        finally:
            if previous is not None:
                driver.cuCtxSetCurrent(previous)

    def query(self, event: PooledEvent) -> bool:
        """``cuEventQuery``: True when done, False while pending."""
        previous = self.enter(event.index)
        try:
            (err,) = self.driver.cuEventQuery(event.event)
        finally:
            self.leave(previous)
        if err == self.ok:
            return True
        if err == self.not_ready:
            return False
        self.check(err, "cuEventQuery")
        return False  # pragma: no cover - check() raised

    def synchronize(self, event: PooledEvent) -> None:
        """``cuEventSynchronize``: block the host (the GIL is released by the bindings)."""
        previous = self.enter(event.index)
        try:
            (err,) = self.driver.cuEventSynchronize(event.event)
        finally:
            self.leave(previous)
        self.check(err, "cuEventSynchronize")

    def release_event(self, index: int, event: Any) -> None:
        """Take an event back into the pool (destroyed when the pool is full)."""
        free = self.free_events[index]
        if len(free) < EVENT_POOL_SIZE:
            free.append(event)
        else:
            self.driver.cuEventDestroy(event)

    # -- pointers -----------------------------------------------------------------------
    def pointer_device(self, ptr: int) -> int | None:
        """The device owning ``ptr``; ``None`` for memory the driver does not know.

        ``CUDA_ERROR_INVALID_VALUE`` means host (or unknown) memory. Without a
        current context (a fresh thread) the lookup is retried with device 0's
        primary context current (then restored). Any other error is raised: a CUDA
        buffer must never pass for host memory and go unsynchronized.

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
            previous = self.enter(0)  # any context serves a unified-address lookup
            try:
                err, ordinal = driver.cuPointerGetAttribute(attr, ptr)
            finally:
                self.leave(previous)
        if err == self.ok:
            return int(ordinal)
        if err == driver.CUresult.CUDA_ERROR_INVALID_VALUE:
            return None
        name = getattr(err, "name", str(err))
        raise BackendError(
            f"cuPointerGetAttribute(DEVICE_ORDINAL, {ptr:#x}) failed with {name}: cannot "
            "tell which GPU owns this buffer, so it cannot be synchronized"
        )


def stream_handle(obj: Any) -> int:
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


def device_hint(obj: Any) -> Any:
    """The device a default-stream object says it belongs to (torch, CuPy), if any."""
    for attr in ("device_index", "device_id"):
        value = getattr(obj, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


_RUNTIME: _Runtime | None = None
_RUNTIME_LOCK = threading.Lock()


def runtime() -> _Runtime:
    """The process's runtime (made on first use).

    Raises:
        BackendUnavailableError: cuda-python, a driver or a GPU is missing.
    """
    global _RUNTIME
    found = _RUNTIME
    if found is not None:
        return found
    with _RUNTIME_LOCK:
        if _RUNTIME is None:
            core, driver = import_cuda()
            reason, count = probe_driver(core, driver)
            if reason is not None:
                raise BackendUnavailableError(f"the cuda-python backend is unavailable: {reason}")
            _RUNTIME = _Runtime(core, driver, count)
        return _RUNTIME
