"""The device backend protocol that the Future core talks to."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from futurekit.core._devices import Device

__all__ = ["Backend", "BackendBase"]


@runtime_checkable
class Backend(Protocol):
    """What a device backend provides to the core.

    Streams and events are opaque objects owned by the backend; a stream knows its
    device. The core calls these methods at fixed moments (see the devices guide):
    ``set_result`` records one event per used device on that device's current
    stream; ``wait()`` makes the current streams wait on those events; callbacks run
    with fresh pool streams made current, each already waiting on the events.
    """

    #: The device type this backend serves, e.g. ``"cuda"``.
    device_type: str

    def is_available(self) -> bool:
        """Whether the backend can be used now (library and driver present). Never raises."""
        ...

    def device_count(self) -> int:
        """How many devices of this type exist."""
        ...

    def current_stream(self, device: Device) -> Any:
        """The calling thread's current stream on ``device``."""
        ...

    def stream_from_pool(self, device: Device) -> Any:
        """A stream from the backend's pool for ``device`` (used to run callbacks)."""
        ...

    def use_streams(self, streams: Sequence[Any]) -> contextlib.AbstractContextManager[None]:
        """Make ``streams`` current for their devices in this thread, restoring after."""
        ...

    def record_event(self, stream: Any) -> Any:
        """Enqueue a new event on ``stream`` and return it."""
        ...

    def wait_event(self, stream: Any, event: Any) -> None:
        """Make ``stream`` wait for ``event``; the host does not block."""
        ...

    def query_event(self, event: Any) -> bool:
        """Whether the work before ``event`` has completed. Does not block."""
        ...

    def synchronize_event(self, event: Any) -> None:
        """Block the host until ``event`` has completed."""
        ...

    def device_of(self, obj: Any) -> Device | None:
        """If ``obj`` is a buffer of this backend, the device it lives on; else ``None``.

        Called for every leaf of a value passed to ``set_result``; must be cheap and
        must not raise for foreign objects.
        """
        ...


class BackendBase:
    """Optional base class giving defaults for the optional parts of :class:`Backend`.

    Subclasses must set ``device_type`` and implement the stream and event methods;
    this class supplies ``device_count`` (1: override it when there are more, since
    a future naming a larger index is refused), ``stream_from_pool`` (the current
    stream), ``use_streams`` (does nothing), ``record_value_on_stream`` (does
    nothing), ``current_device`` (``None``: no current device), ``use_device``
    (does nothing), ``opaque_types`` (none), ``from_torch_streams`` (does nothing)
    and ``unavailable_reason`` (``None`` when available).

    Another optional member, not defined here: ``order_buffer(buffer, stream)``,
    called at ``set_result`` for each buffer found, before the event is recorded on
    ``stream`` (that device's current stream); a backend whose buffers can name the
    stream that produces them (the CUDA Array Interface's ``stream`` key) makes
    ``stream`` wait for it there.
    """

    device_type: str = ""

    #: Types the value walk never descends into (the backend's streams and events).
    opaque_types: tuple[type, ...] = ()

    def is_available(self) -> bool:
        """Available unless :meth:`unavailable_reason` says otherwise."""
        return self.unavailable_reason() is None

    def unavailable_reason(self) -> str | None:
        """Why the backend cannot be used, or ``None`` if it can."""
        return None

    def device_count(self) -> int:
        """One device by default."""
        return 1

    def current_stream(self, device: Device) -> Any:
        """Subclasses must implement this."""
        raise NotImplementedError

    def stream_from_pool(self, device: Device) -> Any:
        """By default, the current stream (a backend without a pool)."""
        return self.current_stream(device)

    @contextlib.contextmanager
    def use_streams(self, streams: Sequence[Any]) -> Iterator[None]:
        """By default, a context that changes nothing."""
        yield

    use_streams.futurekit_default = True  # type: ignore[attr-defined]

    def record_value_on_stream(self, obj: Any, stream: Any) -> None:
        """Allocator hint (torch's ``record_stream``); nothing by default."""
        return None

    #: Marks the default: the core keeps no buffers for a backend without a hint.
    record_value_on_stream.futurekit_default = True  # type: ignore[attr-defined]

    def record_values_on_stream(self, buffers: Sequence[Any], stream: Any) -> None:
        """The allocator hint for many buffers at once (the core calls this one).

        By default, :meth:`record_value_on_stream` for each buffer; a backend whose
        hint does nothing (or that can do it in bulk) overrides it.
        """
        record = self.record_value_on_stream
        for buffer in buffers:
            record(buffer, stream)

    record_values_on_stream.futurekit_default = True  # type: ignore[attr-defined]

    def enter_streams(self, streams: Sequence[Any]) -> Any:
        """Make ``streams`` current; returns a token for :meth:`exit_streams`.

        The core's fast form of :meth:`use_streams` (no context-manager object per
        callback). By default it enters ``use_streams(streams)``; a backend that
        overrides one of the pair overrides both.
        """
        manager = self.use_streams(streams)
        manager.__enter__()
        return manager

    enter_streams.futurekit_default = True  # type: ignore[attr-defined]

    def exit_streams(self, token: Any) -> None:
        """Restore the streams that :meth:`enter_streams` replaced."""
        token.__exit__(None, None, None)

    def enter_device(self, device: Device) -> Any:
        """Make ``device`` current; returns a token for :meth:`exit_device`.

        The core's fast form of :meth:`use_device`; by default it enters it.
        """
        manager = self.use_device(device)
        manager.__enter__()
        return manager

    enter_device.futurekit_default = True  # type: ignore[attr-defined]

    def exit_device(self, token: Any) -> None:
        """Restore the device that :meth:`enter_device` replaced."""
        token.__exit__(None, None, None)

    def current_device(self) -> Device | None:
        """The calling thread's current device of this type; ``None``: no such notion.

        Recorded when a future completes; callbacks run with it made current
        (:meth:`use_device`), as torch's do.
        """
        return None

    current_device.futurekit_default = True  # type: ignore[attr-defined]

    def use_device(self, device: Device) -> contextlib.AbstractContextManager[None]:
        """Make ``device`` the calling thread's current device, restoring after."""
        return contextlib.nullcontext()

    use_device.futurekit_default = True  # type: ignore[attr-defined]

    def from_torch_streams(
        self, devices: Sequence[Device]
    ) -> contextlib.AbstractContextManager[None]:
        """Make torch's current streams on ``devices`` this backend's current streams.

        Used by ``from_torch`` inside a torch future's callback. Backends whose
        streams are torch's (or that cannot hold torch buffers) change nothing.
        """
        return contextlib.nullcontext()
