"""``futurekit doctor``: every backend checked as the conformance kit and programs use it.

For each available backend the doctor runs

1. the conformance kit, :func:`futurekit.testing.check_backend`, with the same
   checks and defaults (and real buffers where it can make them): a backend that
   passes the doctor passes the kit;
2. on each device (at most :data:`MAX_DEVICES`), a round trip through a
   ``Future`` as a program makes one (see :mod:`._round_trip`), from a new thread
   and from a ``concurrent.futures`` worker, so that a backend that works only in
   threads where it was set up fails here rather than in the program.

Every step is bounded in time, so a hung driver gives a failed verdict instead of
a hung command. A failure names the backend's plugin and distribution, the check or
the function called, the backend method at fault and what it must do.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from futurekit.core._devices import Device
from futurekit.testing._kit import THREAD_NAME as KIT_THREAD

from ._output import EXIT_FAILED, EXIT_OK, failure_line
from ._round_trip import THREAD_PREFIX, buffer_maker, round_trips

__all__ = ["BackendReport", "DeviceReport", "command", "run_doctor"]

logger = logging.getLogger("futurekit")

#: Devices checked per backend at most (a machine with 8 GPUs takes 8 round trips).
MAX_DEVICES = 8


@dataclass
class DeviceReport:
    """The outcome of the round trips on one device."""

    device: str
    ok: bool
    detail: str
    buffer: str | None = None


@dataclass
class BackendReport:
    """The verdict for one backend: ``pass``, ``fail`` or ``unavailable``.

    Attributes:
        name: the backend's name.
        device_type: the device type it serves.
        verdict: ``pass``, ``fail`` or ``unavailable``.
        detail: the summary line (why unavailable, what failed).
        devices: the round trip on each device checked.
        checks: the conformance checks that passed, in order.
        conformance: ``None`` when the kit passed (or did not run), else its failure.
        backend: the backend named with its plugin and distribution.
    """

    name: str
    device_type: str
    verdict: str
    detail: str
    devices: list[DeviceReport] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    conformance: str | None = None
    backend: str = ""


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


#: Threads whose futurekit log records are the doctor's own: the round trips' and the kit's.
_OWN_THREADS = (THREAD_PREFIX, KIT_THREAD)


class _OwnRecordsToDebug(logging.Filter):
    """Logs the errors of the doctor's own futures at DEBUG: its report says what failed."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.threadName and record.threadName.startswith(_OWN_THREADS):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logger.isEnabledFor(logging.DEBUG)
        return True


@contextlib.contextmanager
def _own_records_to_debug() -> Iterator[None]:
    quiet = _OwnRecordsToDebug()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def _conformance(backend: Any, who: str, make: Any, timeout: float) -> tuple[list[str], str | None]:
    """Run the conformance kit; the checks that passed and the failure, if any."""
    from futurekit.testing import check_backend

    try:
        return check_backend(backend, make_buffer=make, timeout=timeout), None
    except AssertionError as exc:
        text = str(exc)
        prefix = f"check_backend({who}): "
        return [], text[len(prefix) :] if text.startswith(prefix) else text
    except Exception as exc:  # the kit refused the backend (no devices ...)
        return [], f"check_backend() raised {type(exc).__name__}: {exc}"


def check_backend_devices(
    name: str, device_type: str, timeout: float
) -> tuple[str, list[str], str | None, list[DeviceReport], str]:
    """The conformance kit and the round trips of one available backend.

    Returns:
        The verdict, the checks that passed, the kit's failure (or None), the
        round trip on each device, and the backend named with its plugin.
    """
    from futurekit.backends._contract import contract
    from futurekit.backends._registry import backend_spec, describe_backend, get_backend

    backend = get_backend(device_type, name)
    who = describe_backend(backend)
    count = backend.device_count()
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        fail = (
            f"device_count() returned {count!r} on an available backend; {contract('device_count')}"
        )
        return "fail", [], fail, [], who
    first = Device(device_type, 0)
    make = buffer_maker(backend_spec(backend), backend, first)
    checks, failure = _conformance(backend, who, make, timeout)
    reports = []
    for index in range(min(count, MAX_DEVICES)):
        device = Device(device_type, index)
        ok, how, buffer = round_trips(name, backend, device, make, timeout)
        if ok:
            if buffer is not None:
                how += f"; the value held a {buffer}"
            elif device_type == "cpu":
                how += "; host values need no synchronization"
            else:
                how += (
                    "; the value was plain: no buffer could be made, so device_of() and "
                    "events were not tried on a real buffer (give the BackendSpec a make_buffer)"
                )
        reports.append(DeviceReport(str(device), ok, how, buffer))
    ok = failure is None and all(r.ok for r in reports)
    return "pass" if ok else "fail", checks, failure, reports, who


def run_doctor(
    timeout: float = 30.0, on_progress: Callable[[str], None] | None = None
) -> list[BackendReport]:
    """Check every registered backend; one report per backend.

    Args:
        timeout: seconds allowed for each conformance check and each round trip.
        on_progress: called with a short line before each backend is checked.

    Returns:
        One report per registered backend, in the registry's order.
    """
    from futurekit.backends import available_backends

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
            with _own_records_to_debug():
                verdict, checks, failure, devices, who = check_backend_devices(
                    info.name, info.device_type, timeout
                )
        except Exception as exc:
            logger.debug("doctor: %s failed", info.name, exc_info=True)
            detail = f"{type(exc).__name__}: {exc}"
            reports.append(BackendReport(info.name, info.device_type, "fail", detail))
            continue
        passed = sum(d.ok for d in devices)
        count = info.device_count or 0
        more = f" (the first {MAX_DEVICES} of {count})" if count > MAX_DEVICES else ""
        kit = "conformance failed" if failure else f"{len(checks)} conformance checks passed"
        detail = f"{who}: {kit}, {passed}/{len(devices)} devices passed{more}"
        reports.append(
            BackendReport(
                info.name, info.device_type, verdict, detail, devices, checks, failure, who
            )
        )
    return reports


_MARKS = {"pass": "PASS", "fail": "FAIL", "unavailable": "----"}


def command(args: argparse.Namespace, out: TextIO) -> int:
    """``futurekit doctor``: print the reports; 1 if a backend or a plugin failed.

    Plugins that failed to load count as failures: a plugin the user installed
    that cannot be used is a broken installation, not an absent device.
    """
    from futurekit.backends import plugin_failures

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
        if r.conformance is not None:
            out.write(f"         conformance: FAILED: {r.conformance}\n")
        elif r.checks:
            out.write(f"         conformance: ok: {', '.join(r.checks)}\n")
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
