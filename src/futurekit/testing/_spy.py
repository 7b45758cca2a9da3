"""A wrapper backend that records what the future core asks of a backend.

The conformance kit runs futures on a :class:`Spy` around the backend under test
so that it can check *when* streams are made current and *which* streams events
are recorded on and waited for, whatever the backend. :class:`Marker` objects
stand in for buffers when the kit cannot create real ones.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any

from futurekit.core._devices import Device

__all__ = ["FailingRecordSpy", "InjectedError", "Marker", "Spy"]


class Marker:
    """A stand-in buffer: the spy reports it as living on ``device``."""

    __slots__ = ("__weakref__", "device")

    def __init__(self, device: Device) -> None:
        self.device = device

    def __repr__(self) -> str:
        return f"Marker({self.device})"


class InjectedError(RuntimeError):
    """The error :class:`FailingRecordSpy` raises from ``record_event``."""


class Spy:
    """Forwards every protocol call to ``inner`` and logs the interesting ones.

    ``log`` holds tuples ``("pool", device, stream)``, ``("record", stream, event)``
    and ``("wait", stream, event)`` in call order.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.device_type: str = inner.device_type
        self.log: list[tuple[str, Any, Any]] = []
        self._lock = threading.Lock()

    def _note(self, *entry: Any) -> None:
        with self._lock:
            self.log.append(entry)

    def entries(self, kind: str, start: int = 0) -> list[tuple[str, Any, Any]]:
        """The log entries of one kind, from position ``start`` on."""
        with self._lock:
            return [e for e in self.log[start:] if e[0] == kind]

    def is_available(self) -> bool:
        """Forwarded."""
        return bool(self.inner.is_available())

    def device_count(self) -> int:
        """Forwarded."""
        return int(self.inner.device_count())

    def current_stream(self, device: Device) -> Any:
        """Forwarded."""
        return self.inner.current_stream(device)

    def stream_from_pool(self, device: Device) -> Any:
        """Forwarded and logged."""
        stream = self.inner.stream_from_pool(device)
        self._note("pool", device, stream)
        return stream

    def use_streams(self, streams: Sequence[Any]) -> contextlib.AbstractContextManager[None]:
        """Forwarded."""
        manager: contextlib.AbstractContextManager[None] = self.inner.use_streams(streams)
        return manager

    def record_event(self, stream: Any) -> Any:
        """Forwarded and logged."""
        event = self.inner.record_event(stream)
        self._note("record", stream, event)
        return event

    def wait_event(self, stream: Any, event: Any) -> None:
        """Logged and forwarded."""
        self._note("wait", stream, event)
        self.inner.wait_event(stream, event)

    def query_event(self, event: Any) -> bool:
        """Forwarded."""
        return bool(self.inner.query_event(event))

    def synchronize_event(self, event: Any) -> None:
        """Forwarded."""
        self.inner.synchronize_event(event)

    def device_of(self, obj: Any) -> Device | None:
        """The device of a :class:`Marker`, else what the backend says."""
        if isinstance(obj, Marker):
            return obj.device
        device: Device | None = self.inner.device_of(obj)
        return device

    def record_value_on_stream(self, obj: Any, stream: Any) -> None:
        """Forwarded if the backend has it (markers are skipped)."""
        record = getattr(self.inner, "record_value_on_stream", None)
        if record is not None and not isinstance(obj, Marker):
            record(obj, stream)


class FailingRecordSpy(Spy):
    """A spy whose ``record_event`` raises one :class:`InjectedError` object."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.error = InjectedError("record_event failed (injected by check_backend)")

    def record_event(self, stream: Any) -> Any:
        """Always raises :attr:`error`."""
        raise self.error
