"""The torch backend's CUDA hot path: torch's cheapest entry points, resolved once.

Measured on an H200 (``../shared/reference/gpu-measurements.md``):
``torch.cuda.current_stream(i)`` costs 1.5-3.9 µs per call, where
``torch._C._cuda_getCurrentRawStream(i)`` costs 0.09 µs; ``torch.cuda.Event()``
costs 0.69 µs before its first record creates the CUDA event. So:

* the current stream is found by its raw handle, and the ``torch.cuda.Stream``
  object for a handle is made once and cached (torch's pool streams are never
  destroyed; an external stream at a reused address is the same stream for
  recording purposes);
* events are pooled per device and reused once the future that recorded them is
  gone (:class:`TorchPooledEvent`); ``record``/``wait`` call torch's C methods
  directly (``torch._C._CudaEventBase``), skipping the Python wrappers;
* switching streams for a callback reads and sets torch's current streams by id
  (``_cuda_getCurrentStream``/``_cuda_setStream``), restoring the device that
  ``_cuda_setStream`` changes.

:func:`make_fast` checks every private entry point against the public API once
(``self_check``); if one is missing or disagrees (another torch version), the
backend keeps the public path.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

__all__ = ["EVENT_POOL_SIZE", "FastCuda", "TorchPooledEvent", "make_fast"]

#: Idle events kept per device for reuse.
EVENT_POOL_SIZE = 256
_STREAM_CACHE = 1024


class TorchPooledEvent:
    """A torch CUDA event handed to the core; back to its device's pool when dropped."""

    __slots__ = ("event", "pool")

    def __init__(self, event: Any, pool: collections.deque[Any]) -> None:
        self.event = event
        self.pool = pool

    def __del__(self) -> None:
        pool = self.pool
        if len(pool) < EVENT_POOL_SIZE:  # re-recording is safe: nobody can query it now
            pool.append(self.event)

    def query(self) -> bool:
        """Whether the work before the event is done."""
        return bool(self.event.query())

    def synchronize(self) -> None:
        """Block the host until the event completes."""
        self.event.synchronize()

    def __repr__(self) -> str:
        return f"<torch CUDA event {self.event!r}>"


class FastCuda:
    """torch's private CUDA entry points and the caches built on them."""

    def __init__(self, torch: Any, count: int) -> None:
        c = torch._C
        self.torch = torch
        self.raw_stream = c._cuda_getCurrentRawStream
        self.stream_id = c._cuda_getCurrentStream
        self.set_stream_id = c._cuda_setStream
        self.get_device = c._cuda_getDevice
        self.set_device = c._cuda_setDevice
        self.event_record = c._CudaEventBase.record
        self.event_wait = c._CudaEventBase.wait
        self.new_event = torch.cuda.Event
        self.public_stream = torch.cuda.current_stream
        self.streams: list[dict[int, Any]] = [{} for _ in range(count)]
        self.pools = [collections.deque[Any]() for _ in range(count)]

    def current_stream(self, index: int) -> Any:
        """The current stream of device ``index``, by its raw handle (cached object)."""
        table = self.streams[index]
        handle = self.raw_stream(index)
        stream = table.get(handle)
        if stream is None:
            stream = self.public_stream(index)
            if len(table) >= _STREAM_CACHE:
                table.clear()
            table[handle] = stream
        return stream

    def record(self, stream: Any) -> TorchPooledEvent:
        """A pooled event (timing disabled, blocking sync) recorded on ``stream``."""
        pool = self.pools[stream.device_index]
        try:
            event = pool.pop()
        except IndexError:
            event = self.new_event(blocking=True)
        self.event_record(event, stream)
        return TorchPooledEvent(event, pool)

    def wait(self, stream: Any, event: Any) -> None:
        """``stream`` waits for ``event`` (device side; the host does not block)."""
        self.event_wait(getattr(event, "event", event), stream)

    def enter_streams(self, streams: Sequence[Any]) -> tuple[int, list[tuple[int, int, int]]]:
        """Make ``streams`` torch's current streams; the token restores them."""
        device = self.get_device()
        previous = [self.stream_id(s.device_index) for s in streams]
        try:
            for s in streams:
                self.set_stream_id(s.stream_id, s.device_index, s.device_type)
        finally:
            self.set_device(device)
        return device, previous

    def exit_streams(self, token: tuple[int, list[tuple[int, int, int]]]) -> None:
        """Restore what :meth:`enter_streams` replaced, and the device."""
        device, previous = token
        try:
            for stream_id, index, kind in reversed(previous):
                self.set_stream_id(stream_id, index, kind)
        finally:
            self.set_device(device)

    def enter_device(self, index: int) -> int | None:
        """Make device ``index`` current; the token restores the previous one."""
        previous: int = self.get_device()
        if previous == index:
            return None
        self.set_device(index)
        return previous

    def exit_device(self, token: int | None) -> None:
        """Restore the device :meth:`enter_device` replaced."""
        if token is not None:
            self.set_device(token)

    def self_check(self) -> None:
        """Compare the private entry points with the public API on device 0.

        Raises:
            Exception: an entry point is missing or disagrees.
        """
        torch = self.torch
        public = torch.cuda.current_stream(0)
        if self.raw_stream(0) != public.cuda_stream:
            raise RuntimeError("_cuda_getCurrentRawStream disagrees with current_stream")
        sid, index, kind = self.stream_id(0)
        if (sid, index, kind) != (public.stream_id, public.device_index, public.device_type):
            raise RuntimeError("_cuda_getCurrentStream disagrees with current_stream")
        if self.get_device() != torch.cuda.current_device():
            raise RuntimeError("_cuda_getDevice disagrees with current_device")
        token = self.enter_streams([public])
        self.exit_streams(token)
        event = self.record(public)
        self.wait(public, event)
        event.synchronize()


def make_fast(torch: Any, count: int) -> FastCuda | None:
    """The fast path for ``torch.cuda``, or ``None`` when this torch lacks or breaks it."""
    try:
        fast = FastCuda(torch, count)
        fast.self_check()
    except Exception:
        return None
    return fast
