"""The CPU backend: every stream and event operation is a no-op.

CPU futures never call it (they take a fast path with no backend at all); it is
registered so that ``"cpu"`` is a known device type and so that tools listing
backends show it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from futurekit.core._devices import Device

from ._hookspec import hookimpl
from ._protocol import BackendBase
from ._spec import BackendSpec

__all__ = ["CpuBackend"]


class CpuBackend(BackendBase):
    """No-op backend for ``cpu``: nothing is asynchronous on the host."""

    device_type = "cpu"

    def current_stream(self, device: Device) -> None:
        """CPU has no streams."""
        return None

    def record_event(self, stream: Any) -> None:
        """Nothing to record."""
        return None

    def wait_event(self, stream: Any, event: Any) -> None:
        """Nothing to wait for."""
        return None

    def query_event(self, event: Any) -> bool:
        """Always complete."""
        return True

    def synchronize_event(self, event: Any) -> None:
        """Returns at once."""
        return None

    def device_of(self, obj: Any) -> Device | None:
        """CPU values are never device buffers."""
        return None


@hookimpl
def futurekit_device_backends() -> Iterator[BackendSpec]:
    """The built-in CPU backend."""
    yield BackendSpec(
        name="cpu",
        device_type="cpu",
        load=CpuBackend,
        priority=0,
        description="host memory; no synchronization needed",
    )
