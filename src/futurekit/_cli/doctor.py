"""``futurekit doctor``: a real round trip through every available backend.

For each device of each available backend the doctor drives the backend protocol
directly (current stream, record an event, synchronize and query it, a pool stream
waiting on it, ``use_streams``) and then a :class:`futurekit.Future` on that device:
``then`` registered before completion, ``set_result`` with a device buffer when one
can be made, ``wait``, ``synchronize``, ``is_ready`` and the callback's child. Every
device check runs in a worker thread with a time limit, so a hung driver gives a
failed verdict instead of a hung command.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from futurekit.core._devices import Device
from futurekit.core._future import Future

__all__ = ["BackendReport", "DeviceReport", "check_device", "command", "run_doctor"]

logger = logging.getLogger("futurekit")

#: Devices checked per backend at most (a machine with 8 GPUs takes 8 round trips).
MAX_DEVICES = 8


class DoctorError(AssertionError):
    """A round-trip step gave a wrong answer."""


@dataclass
class DeviceReport:
    """The outcome of the round trip on one device."""

    device: str
    ok: bool
    detail: str
    buffer: str | None = None


@dataclass
class BackendReport:
    """The verdict for one backend: ``pass``, ``fail`` or ``unavailable``."""

    name: str
    device_type: str
    verdict: str
    detail: str
    devices: list[DeviceReport] = field(default_factory=list)


def _torch_tensor(device: Device) -> Any:
    torch = importlib.import_module("torch")
    tensor = torch.zeros(4, device=str(device))
    tensor.add_(1)  # queued on the current stream: set_result must record after it
    return tensor


def _sim_buffer(device: Device) -> Any:
    sim = importlib.import_module("futurekit.testing.sim")
    return sim.Buffer(device, 1)


def _cuda_core_buffer(device: Device) -> Any:
    core = importlib.import_module("cuda.core")
    return core.Device(device.index).allocate(64)


#: Ways to make a buffer for a device type, tried in order; the first one the
#: backend recognises (``device_of``) is used.
_SAMPLES: dict[str, tuple[Callable[[Device], Any], ...]] = {
    "sim": (_sim_buffer,),
    "cuda": (_torch_tensor, _cuda_core_buffer),
}


def _sample_value(backend: Any, device: Device) -> tuple[Any, str | None]:
    """A value holding one buffer on ``device`` if one can be made, else a plain value."""
    makers = _SAMPLES.get(device.type)
    if makers is None and device.type != "cpu":
        makers = (_torch_tensor,) if "torch" in sys.modules else ()
    for make in makers or ():
        try:
            buf = make(device)
            if backend.device_of(buf) == device:
                return {"buffer": buf, "tag": "doctor"}, type(buf).__name__
        except Exception as exc:
            logger.debug("doctor: %s could not make a %s buffer: %r", make.__name__, device, exc)
    return {"tag": "doctor"}, None


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise DoctorError(what)


def check_device(name: str, backend: Any, device: Device, timeout: float = 10.0) -> DeviceReport:
    """Run the round trip for one device in this thread.

    Args:
        name: the backend's registered name.
        backend: the backend object.
        device: the device to check.
        timeout: seconds each ``wait`` may take.

    Returns:
        A passing report (a failure raises).

    Raises:
        DoctorError: a step gave a wrong answer (any other exception of the backend
            propagates too).
    """
    # The protocol, step by step.
    stream = backend.current_stream(device)
    event = backend.record_event(stream)
    backend.synchronize_event(event)
    _expect(backend.query_event(event) is True, "query_event() is not True after synchronize")
    pool = backend.stream_from_pool(device)
    backend.wait_event(pool, event)
    with backend.use_streams([pool]):
        backend.current_stream(device)
    # A future on the device.
    value, buffer = _sample_value(backend, device)
    fut: Future[Any] = Future(devices=[str(device)], backend=name)
    seen: dict[str, Any] = {}

    def callback(f: Future[Any]) -> str:
        seen["value"] = f.value()
        seen["stream"] = backend.current_stream(device)
        return "callback ran"

    child = fut.then(callback)
    _expect(not fut.done() and not child.done(), "a new future is already done")
    fut.set_result(value)
    _expect(fut.wait(timeout) is value, "wait() did not return the object given to set_result")
    fut.synchronize()
    _expect(fut.is_ready(), "is_ready() is False after synchronize()")
    _expect(child.wait(timeout) == "callback ran", "the then() child has the wrong value")
    child.synchronize()
    _expect(child.is_ready(), "the then() child is not ready after synchronize()")
    _expect(seen.get("value") is value, "the callback did not see the value")
    steps = "events, set_result, wait, synchronize, is_ready, then: ok"
    if buffer:
        how = f"{steps} (value held a {buffer})"
    elif device.type == "cpu":
        how = f"{steps} (host values need no synchronization)"
    else:
        how = f"{steps} (plain value: futurekit knows no buffer type for this backend)"
    return DeviceReport(str(device), True, how, buffer)


def _run_limited(fn: Callable[[], DeviceReport], device: str, timeout: float) -> DeviceReport:
    box: list[DeviceReport] = []

    def target() -> None:
        try:
            box.append(fn())
        except BaseException as exc:
            logger.debug("doctor: %s failed", device, exc_info=True)
            box.append(DeviceReport(device, False, f"{type(exc).__name__}: {exc}"))

    worker = threading.Thread(target=target, name=f"futurekit-doctor-{device}", daemon=True)
    worker.start()
    worker.join(timeout)
    if not box:
        return DeviceReport(device, False, f"timed out after {timeout:g} s (a hung stream?)")
    return box[0]


def _unavailable_detail(info: Any) -> str:
    """Why a backend is unavailable, and how to get it (said once)."""
    reason = info.reason or "unavailable"
    fix = getattr(info, "fix", None)
    if fix and info.extra:  # a reason that says how to install: the fix does not repeat it
        from futurekit.backends._spec import install_hint

        hint = install_hint(info.extra)
        if hint in reason:
            fix = fix.replace(f" ({hint})", "")
            fix = None if fix.endswith(hint) else fix
    if fix:  # the registry knows what is missing (an extra, or a CUDA build of torch)
        return f"{reason}; {fix}" if fix not in reason else str(reason)
    if not info.extra:
        return f"{reason}; to use it: see its plugin's documentation"
    return str(reason)  # its extra is installed: the reason says what else is missing


def run_doctor(
    timeout: float = 30.0, on_progress: Callable[[str], None] | None = None
) -> list[BackendReport]:
    """Check every registered backend; one report per backend.

    Args:
        timeout: seconds allowed for each device's round trip.
        on_progress: called with a short line before each backend is checked.

    Returns:
        One report per registered backend, in the registry's order.
    """
    from futurekit.backends import available_backends, get_backend

    reports = []
    for info in available_backends():
        if not info.available:
            reports.append(
                BackendReport(info.name, info.device_type, "unavailable", _unavailable_detail(info))
            )
            continue
        if on_progress is not None:
            on_progress(f"checking {info.name} ({info.device_type}) ...")
        try:
            backend = get_backend(info.device_type, info.name)
            count = int(backend.device_count())
        except Exception as exc:
            reports.append(
                BackendReport(info.name, info.device_type, "fail", f"{type(exc).__name__}: {exc}")
            )
            continue
        if count <= 0:
            reports.append(
                BackendReport(info.name, info.device_type, "fail", "available but has no devices")
            )
            continue
        checks = []
        for index in range(min(count, MAX_DEVICES)):
            device = Device(info.device_type, index)
            checks.append(
                _run_limited(
                    functools.partial(check_device, info.name, backend, device, timeout),
                    str(device),
                    timeout,
                )
            )
        ok = all(c.ok for c in checks)
        more = f" (first {MAX_DEVICES} of {count})" if count > MAX_DEVICES else ""
        detail = f"{sum(c.ok for c in checks)}/{len(checks)} devices passed{more}"
        reports.append(
            BackendReport(info.name, info.device_type, "pass" if ok else "fail", detail, checks)
        )
    return reports


_MARKS = {"pass": "PASS", "fail": "FAIL", "unavailable": "----"}


def command(args: argparse.Namespace, out: TextIO) -> int:
    """``futurekit doctor``: print the reports; 1 if a backend or a plugin failed.

    Plugins that failed to load count as failures: a plugin the user installed
    that cannot be used is a broken installation, not an absent device.
    """
    from futurekit.backends import plugin_failures

    from ._output import EXIT_FAILED, EXIT_OK, failure_line

    def progress(line: str) -> None:
        if not args.json:
            print(line, file=sys.stderr, flush=True)

    reports = run_doctor(timeout=args.timeout, on_progress=progress)
    failures = [asdict(f) for f in plugin_failures()]
    failed = [r for r in reports if r.verdict == "fail"]
    status = EXIT_FAILED if failed or failures else EXIT_OK
    from futurekit.core._accelerator import status as core

    if args.json:
        data = {
            "ok": status == EXIT_OK,
            "core": core,
            "backends": [asdict(r) for r in reports],
            "failures": failures,
        }
        json.dump(data, out, indent=2)
        out.write("\n")
        return status
    out.write(f"core: {core}\n")
    for r in sorted(reports, key=lambda r: r.verdict == "unavailable"):
        out.write(f"[{_MARKS[r.verdict]}] {r.name} ({r.device_type}): {r.detail}\n")
        for d in r.devices:
            out.write(f"         {d.device}: {'ok' if d.ok else 'FAILED'}: {d.detail}\n")
    for f in failures:
        out.write(f"[FAIL] plugin {failure_line(f)}\n")
    passed = sum(r.verdict == "pass" for r in reports)
    unavailable = sum(r.verdict == "unavailable" for r in reports)
    plugins = f", {len(failures)} plugin(s) failed to load" if failures else ""
    out.write(
        f"\n{passed} backend(s) passed, {len(failed)} failed{plugins}, {unavailable} "
        "unavailable (not counted as failures).\n"
    )
    return status
