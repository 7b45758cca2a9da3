"""What the conformance checks share: their context and small helpers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from futurekit.core._device_plan import DevicePlan
from futurekit.core._devices import Device, DeviceLike, parse_device
from futurekit.core._future import Future

from ._ops import BufferOps
from ._spy import Marker

__all__ = [
    "ATTEMPTS",
    "THREAD_NAME",
    "Ctx",
    "Probe",
    "bounded",
    "events_of",
    "future_on",
    "parse_devices",
    "retry_async",
]


#: The name of the threads the checks run in (``futurekit doctor`` recognises them).
THREAD_NAME = "futurekit-check-backend"


class Probe(Exception):
    """Raised inside ``use_streams`` to check that it restores on errors."""


class Ctx:
    """The backend under test, its devices, buffer operations and the time limit."""

    def __init__(
        self,
        backend: Any,
        devices: Sequence[DeviceLike] | DeviceLike | None,
        make_buffer: Callable[[Device], Any] | None,
        ops: BufferOps | None,
        timeout: float,
    ) -> None:
        self.backend = backend
        self.wanted = devices
        self.devices: tuple[Device, ...] = ()
        self.make_buffer = make_buffer
        self.ops = ops
        self.timeout = timeout

    def buffer(self, device: Device) -> Any:
        """A real buffer if the ops or the caller can make one, else a marker."""
        if self.ops is not None:
            return self.ops.make_buffer(device)
        if self.make_buffer is not None:
            return self.make_buffer(device)
        return Marker(device)

    def pools(self, devices: Sequence[Device] | None = None) -> dict[Device, Any]:
        return {d: self.backend.stream_from_pool(d) for d in devices or self.devices}

    def current(self) -> dict[Device, Any]:
        return {d: self.backend.current_stream(d) for d in self.devices}

    def in_thread(self, fn: Callable[[], Any]) -> Any:
        return bounded(fn, self.timeout, "a call in another thread")

    @property
    def asynchronous(self) -> bool:
        """Whether the ops launch work that runs after the host call returns."""
        return self.ops is not None and self.ops.asynchronous

    def early(self, since: float) -> bool:
        """Whether the slow producer started at ``since`` must still be running now.

        True while well under ``delay`` has passed. On an overloaded machine more may
        have passed; asynchrony is then not judged (and the check retries).
        """
        ops = self.ops
        return ops is not None and ops.asynchronous and time.monotonic() - since < ops.delay / 2


def bounded(fn: Callable[[], Any], timeout: float, what: str) -> Any:
    """Run ``fn`` in a daemon thread; fail if it does not finish within ``timeout``."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=run, name=THREAD_NAME, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise AssertionError(f"{what} did not finish within {timeout} s (a hang?)")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def future_on(backend: Any, devices: Sequence[Device]) -> Future[Any]:
    """A device future that uses ``backend`` (no registry involved)."""
    fut: Future[Any] = Future()
    fut._dev = DevicePlan(backend, tuple(devices)).pending
    return fut


def events_of(fut: Future[Any]) -> tuple[tuple[Device, Any], ...]:
    dev = fut._dev
    assert dev is not None
    return dev.events


def parse_devices(ctx: Ctx) -> tuple[Device, ...]:
    backend = ctx.backend
    kind = backend.device_type
    count = backend.device_count()
    wanted = ctx.wanted
    if wanted is None:
        return tuple(Device(kind, i) for i in range(min(2, count)))
    if isinstance(wanted, (str, int, Device)) or hasattr(wanted, "type"):
        wanted = [wanted]
    found = set()
    for entry in wanted:
        if isinstance(entry, int) and not isinstance(entry, bool):
            found.add(Device(kind, entry))
            continue
        etype, index = parse_device(entry)
        if etype != kind or index is None:
            raise ValueError(
                f"check_backend: device {entry!r} is not a {kind!r} device with an index "
                f"(the backend serves {kind!r})"
            )
        found.add(Device(etype, index))
    if not found:
        raise ValueError("check_backend: devices is empty; pass at least one device")
    for device in found:
        if device.index >= count:
            raise ValueError(
                f"check_backend: device {device} does not exist: the backend reports "
                f"device_count() == {count}"
            )
    return tuple(sorted(found))


#: How often a check retries when load made its asynchrony verdict doubtful.
ATTEMPTS = 3


def retry_async(check: Callable[[], str | None], ctx: Ctx) -> None:
    """Run ``check`` until it finds no asynchrony problem, at most ``ATTEMPTS`` times.

    ``check`` asserts correctness itself and returns a complaint about asynchrony
    (the host blocked on device work), or ``None``. A backend that blocks the host
    complains every time; a machine under load rarely does so twice.
    """
    complaint: str | None = None
    for _ in range(ATTEMPTS if ctx.asynchronous else 1):
        complaint = check()
        if complaint is None:
            return
    raise AssertionError(f"{complaint} (in {ATTEMPTS} attempts)")
