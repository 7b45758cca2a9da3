"""Fakes of ``cuda.bindings.driver`` and ``cuda.core`` 1.2 that keep the real rules.

The first GPU run found what lenient fakes had hidden: cuda.core refuses
``Device(i).create_event()`` / ``create_stream()`` in any thread where
``Device(i).set_current()`` has not run, even when the driver already has that
device's context current (torch made it so, or another library did). These fakes
model the rules the real libraries enforce, so that the CPU suite fails on that
class of bug:

* the driver keeps a **current context per thread** (a fresh thread has none);
  every call that needs one fails with ``CUDA_ERROR_INVALID_CONTEXT`` without it;
* the default-stream handles (0, 1, 2) mean the **current context's** default
  stream; an event can only be recorded on a stream of **its own context**
  (``CUDA_ERROR_INVALID_HANDLE`` otherwise); a stream may wait on an event of any
  context;
* ``cuda.core.Device(i)`` is a **per-thread singleton** with its own
  "initialized" flag, set only by its ``set_current()``; ``create_stream`` and
  ``create_event`` raise ``CUDAError("Device i is not yet initialized, perhaps you
  forgot to call .set_current() first?")`` otherwise, and (1.2) act on the
  **current** context, whichever device that is;
* calls before ``cuInit`` fail with ``CUDA_ERROR_NOT_INITIALIZED``.

No device work runs: events report done unless a test marks them pending. Every
driver call is logged with its thread, for tests to inspect.
"""

from __future__ import annotations

import enum
import itertools
import threading
from typing import Any


class CUresult(enum.IntEnum):
    CUDA_SUCCESS = 0
    CUDA_ERROR_INVALID_VALUE = 1
    CUDA_ERROR_NOT_INITIALIZED = 3
    CUDA_ERROR_NO_DEVICE = 100
    CUDA_ERROR_INVALID_CONTEXT = 201
    CUDA_ERROR_INVALID_HANDLE = 400
    CUDA_ERROR_NOT_READY = 600
    CUDA_ERROR_ILLEGAL_ADDRESS = 700


OK = CUresult.CUDA_SUCCESS
_ADDRESSES = itertools.count(0x10_0000, 0x100)


class _Handle:
    """A driver handle: ``int()`` is its address, as with cuda.bindings objects."""

    def __init__(self, address: int | None = None) -> None:
        self.address = next(_ADDRESSES) if address is None else address

    def __int__(self) -> int:
        return self.address

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.address:#x}>"


class CUcontext(_Handle):
    def __init__(self, device: int | None) -> None:
        super().__init__(0 if device is None else None)
        self.device = device


NULL_CONTEXT = CUcontext(None)


class CUstream(_Handle):
    def __init__(self, ctx: CUcontext, address: int | None = None) -> None:
        super().__init__(address)
        self.ctx = ctx


class CUevent(_Handle):
    def __init__(self, ctx: CUcontext, flags: int) -> None:
        super().__init__()
        self.ctx = ctx
        self.flags = flags
        self.pending = False
        self.destroyed = False
        self.recorded_on: list[int] = []


class FakeDriver:
    """``cuda.bindings.driver`` with per-thread current contexts."""

    CUresult = CUresult

    class CUpointer_attribute:
        CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL = 9

    class CUevent_flags:
        CU_EVENT_DEFAULT = 0
        CU_EVENT_BLOCKING_SYNC = 1
        CU_EVENT_DISABLE_TIMING = 2

    class CUstream_flags:
        CU_STREAM_DEFAULT = 0
        CU_STREAM_NON_BLOCKING = 1

    def __init__(self, count: int = 2, pointers: dict[int, int] | None = None) -> None:
        self.count = count
        self.initialized = False
        self.tls = threading.local()
        self.lock = threading.Lock()
        self.primaries: dict[int, CUcontext] = {}
        self.streams: dict[int, CUstream] = {}
        self.events: list[CUevent] = []
        self.pointers = dict(pointers or {})
        self.log: list[tuple[str, int, Any]] = []
        self.pointer_errors: list[CUresult] = []

    # -- helpers ------------------------------------------------------------------------
    def current(self) -> CUcontext:
        ctx: CUcontext = getattr(self.tls, "ctx", NULL_CONTEXT)
        return ctx

    def _note(self, name: str, arg: Any = None) -> None:
        self.log.append((name, threading.get_ident(), arg))

    def _stream_ctx(self, stream: Any) -> CUcontext | None:
        handle = int(stream) if stream is not None else 0
        if handle in (0, 1, 2):
            ctx = self.current()
            return None if ctx is NULL_CONTEXT else ctx
        found = self.streams.get(handle)
        return None if found is None else found.ctx

    def _ready(self) -> CUresult | None:
        if not self.initialized:
            return CUresult.CUDA_ERROR_NOT_INITIALIZED
        if self.current() is NULL_CONTEXT:
            return CUresult.CUDA_ERROR_INVALID_CONTEXT
        return None

    # -- initialisation and devices -----------------------------------------------------
    def cuInit(self, flags: int) -> tuple[CUresult]:
        self.initialized = True
        return (OK,)

    def cuDeviceGetCount(self) -> tuple[CUresult, int]:
        if not self.initialized:
            return (CUresult.CUDA_ERROR_NOT_INITIALIZED, 0)
        return (OK, self.count)

    def cuDeviceGet(self, ordinal: int) -> tuple[CUresult, int | None]:
        if not self.initialized:
            return (CUresult.CUDA_ERROR_NOT_INITIALIZED, None)
        if not 0 <= ordinal < self.count:
            return (CUresult.CUDA_ERROR_INVALID_VALUE, None)
        return (OK, ordinal)

    def cuDevicePrimaryCtxRetain(self, device: int) -> tuple[CUresult, CUcontext | None]:
        if not self.initialized:
            return (CUresult.CUDA_ERROR_NOT_INITIALIZED, None)
        with self.lock:
            ctx = self.primaries.get(int(device))
            if ctx is None:
                ctx = self.primaries[int(device)] = CUcontext(int(device))
        return (OK, ctx)

    # -- contexts (per thread) ----------------------------------------------------------
    def cuCtxGetCurrent(self) -> tuple[CUresult, CUcontext]:
        return (OK, self.current())

    def cuCtxSetCurrent(self, ctx: Any) -> tuple[CUresult]:
        if ctx is None or int(ctx) == 0:
            self.tls.ctx = NULL_CONTEXT
            return (OK,)
        if not isinstance(ctx, CUcontext):
            return (CUresult.CUDA_ERROR_INVALID_CONTEXT,)
        self.tls.ctx = ctx
        self._note("cuCtxSetCurrent", ctx.device)
        return (OK,)

    def cuCtxGetDevice(self) -> tuple[CUresult, int | None]:
        err = self._ready()
        if err is not None:
            return (err, None)
        return (OK, self.current().device)

    def cuCtxPushCurrent(self, ctx: CUcontext) -> tuple[CUresult]:
        stack = self.tls.__dict__.setdefault("stack", [])
        stack.append(self.current())
        self.tls.ctx = ctx
        return (OK,)

    def cuCtxPopCurrent(self) -> tuple[CUresult, CUcontext]:
        stack = self.tls.__dict__.setdefault("stack", [])
        popped = self.current()
        self.tls.ctx = stack.pop() if stack else NULL_CONTEXT
        return (OK, popped)

    # -- streams ------------------------------------------------------------------------
    def cuStreamCreate(self, flags: int) -> tuple[CUresult, CUstream | None]:
        err = self._ready()
        if err is not None:
            return (err, None)
        stream = CUstream(self.current())
        self.streams[int(stream)] = stream
        self._note("cuStreamCreate", stream.ctx.device)
        return (OK, stream)

    def cuStreamGetCtx(self, stream: Any) -> tuple[CUresult, CUcontext | None]:
        ctx = self._stream_ctx(stream)
        if ctx is None:
            return (CUresult.CUDA_ERROR_INVALID_HANDLE, None)
        return (OK, ctx)

    def cuStreamWaitEvent(self, stream: Any, event: CUevent, flags: int) -> tuple[CUresult]:
        err = self._ready()
        if err is not None:
            return (err,)
        if self._stream_ctx(stream) is None or event.destroyed:
            return (CUresult.CUDA_ERROR_INVALID_HANDLE,)
        self._note("cuStreamWaitEvent", (int(stream), event))
        return (OK,)

    # -- events -------------------------------------------------------------------------
    def cuEventCreate(self, flags: int) -> tuple[CUresult, CUevent | None]:
        err = self._ready()
        if err is not None:
            return (err, None)
        event = CUevent(self.current(), int(flags))
        self.events.append(event)
        self._note("cuEventCreate", event.ctx.device)
        return (OK, event)

    def cuEventRecord(self, event: CUevent, stream: Any) -> tuple[CUresult]:
        err = self._ready()
        if err is not None:
            return (err,)
        ctx = self._stream_ctx(stream)
        if ctx is None or event.destroyed or event.ctx is not ctx:
            return (CUresult.CUDA_ERROR_INVALID_HANDLE,)  # another context's event
        event.recorded_on.append(int(stream))
        self._note("cuEventRecord", (int(stream), event))
        return (OK,)

    def cuEventQuery(self, event: CUevent) -> tuple[CUresult]:
        if event.destroyed:
            return (CUresult.CUDA_ERROR_INVALID_HANDLE,)
        return (CUresult.CUDA_ERROR_NOT_READY if event.pending else OK,)

    def cuEventSynchronize(self, event: CUevent) -> tuple[CUresult]:
        if event.destroyed:
            return (CUresult.CUDA_ERROR_INVALID_HANDLE,)
        event.pending = False
        self._note("cuEventSynchronize", event)
        return (OK,)

    def cuEventDestroy(self, event: CUevent) -> tuple[CUresult]:
        event.destroyed = True
        return (OK,)

    # -- pointers -----------------------------------------------------------------------
    def cuPointerGetAttribute(self, attr: int, ptr: int) -> tuple[CUresult, int | None]:
        self._note("cuPointerGetAttribute", ptr)
        if self.pointer_errors:
            return (self.pointer_errors.pop(0), None)
        err = self._ready()
        if err is not None:
            return (err, None)
        if ptr not in self.pointers:
            return (CUresult.CUDA_ERROR_INVALID_VALUE, None)
        return (OK, self.pointers[ptr])

    def cuGetErrorName(self, err: CUresult) -> tuple[CUresult, bytes]:
        return (OK, CUresult(err).name.encode())


class CUDAError(Exception):
    """cuda.core's error type (an ``Exception``, not a ``RuntimeError``)."""


class FakeCore:
    """``cuda.core`` 1.2: per-thread Device singletons that need ``set_current()``."""

    CUDAError = CUDAError

    class EventOptions:
        def __init__(self, timing_enabled: bool = False, blocking_sync: bool = False) -> None:
            self.timing_enabled = timing_enabled
            self.blocking_sync = blocking_sync

    class StreamOptions:
        def __init__(self, nonblocking: bool = True, priority: int | None = None) -> None:
            self.nonblocking = nonblocking

    def __init__(self, driver: FakeDriver, version: str = "1.2.0") -> None:
        self.__version__ = version
        self.driver = driver
        core = self
        tls = threading.local()

        class Stream:
            def __init__(self, handle: Any) -> None:
                raise RuntimeError("Stream cannot be instantiated directly")

            @classmethod
            def from_handle(cls, handle: int) -> Any:
                obj = object.__new__(cls)
                obj._handle = int(handle)
                return obj

            @property
            def handle(self) -> _Handle:
                return _Handle(self._handle)

            @property
            def device(self) -> Any:
                ctx = core.driver._stream_ctx(self._handle)
                if ctx is None:
                    raise CUDAError(f"stream {self._handle:#x} has no context")
                return core.Device(ctx.device)

            def __cuda_stream__(self) -> tuple[int, int]:
                return (0, self._handle)

        class Device:
            def __new__(cls, device_id: int | None = None) -> Any:
                if device_id is None:
                    ctx = core.driver.current()
                    device_id = 0 if ctx is NULL_CONTEXT else ctx.device
                table = tls.__dict__.setdefault("devices", {})
                found = table.get(device_id)
                if found is None:
                    found = object.__new__(cls)
                    found.device_id = device_id
                    found.initialized = False  # per thread: this object is this thread's
                    table[device_id] = found
                return found

            def set_current(self) -> None:
                err, ctx = core.driver.cuDevicePrimaryCtxRetain(self.device_id)
                if err != OK:
                    raise CUDAError(err.name)
                core.driver.cuCtxSetCurrent(ctx)
                self.initialized = True

            def _check(self) -> None:
                if not self.initialized:
                    raise CUDAError(
                        f"Device {self.device_id} is not yet initialized, perhaps you forgot "
                        "to call .set_current() first?"
                    )

            def create_stream(self, obj: Any = None, options: Any = None) -> Any:
                self._check()
                err, raw = core.driver.cuStreamCreate(1)  # 1.2: in the *current* context
                if err != OK:
                    raise CUDAError(err.name)
                return Stream.from_handle(int(raw))

            def create_event(self, options: Any = None) -> Any:
                self._check()
                err, raw = core.driver.cuEventCreate(2)
                if err != OK:
                    raise CUDAError(err.name)
                return raw

        self.Stream = Stream
        self.Device = Device
        self.LEGACY_DEFAULT_STREAM = Stream.from_handle(1)
        self.PER_THREAD_DEFAULT_STREAM = Stream.from_handle(2)


def make(count: int = 2, pointers: dict[int, int] | None = None) -> tuple[FakeCore, FakeDriver]:
    """A fake ``(cuda.core, cuda.bindings.driver)`` pair with ``count`` devices."""
    driver = FakeDriver(count, pointers)
    return FakeCore(driver), driver
