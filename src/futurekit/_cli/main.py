"""The ``futurekit`` command (also ``python -m futurekit``).

Commands:

* ``futurekit backends [--json]``: every registered backend with its availability,
  plugins that failed to load, and disabled ones.
* ``futurekit doctor [--json] [--timeout S]``: a real round trip on every device
  of every available backend; exit status 0 when all pass, 1 otherwise.
* ``futurekit bench [--quick] [--json PATH]``: the benchmark table (futurekit vs
  ``torch.futures`` vs ``concurrent.futures``).

Without a command it prints the help and a one-line summary per backend.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, TextIO

__all__ = ["build_parser", "main"]

#: Exit statuses.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _version_line() -> str:
    import importlib.metadata
    import platform

    from futurekit import __version__

    try:
        pluggy = f", pluggy {importlib.metadata.version('pluggy')}"
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a dependency
        pluggy = ""
    return f"futurekit {__version__} (Python {platform.python_version()}{pluggy})"


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``futurekit`` command."""
    parser = argparse.ArgumentParser(
        prog="futurekit",
        description="torch.futures for any device: inspect backends, check devices, benchmark.",
        epilog="Run 'futurekit COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=_version_line())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "backends",
        help="list registered backends and whether each is available",
        description="List every registered backend (name, device type, priority, devices, "
        "providing distribution, availability or why not), plugins that failed to load, "
        "and disabled ones.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser(
        "doctor",
        help="run a real round trip on every available backend",
        description="For each available backend and each of its devices: record and "
        "synchronize an event, then create a future on the device, set_result, wait, "
        "synchronize, is_ready and a then() callback on pool streams. Exit status 0 when "
        "every available backend passes, 1 otherwise; unavailable backends are listed "
        "with the extra to install, not failed.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument(
        "--timeout",
        type=_positive_float,
        default=30.0,
        metavar="S",
        help="seconds allowed for each device's round trip (default: 30)",
    )

    p = sub.add_parser(
        "bench",
        help="benchmark futurekit against torch.futures and concurrent.futures",
        description="Print the benchmark table (medians and speed-ups) with a progress "
        "indication while it runs.",
    )
    p.add_argument("--quick", action="store_true", help="fewer runs; under a minute")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the results as JSON")
    return parser


# -- backends ------------------------------------------------------------------------


def _backends_data() -> dict[str, Any]:
    from futurekit import __version__
    from futurekit.backends import available_backends, disabled_plugins, plugin_failures

    return {
        "futurekit": __version__,
        "backends": [asdict(info) for info in available_backends()],
        "failures": [asdict(f) for f in plugin_failures()],
        "disabled": list(disabled_plugins()),
    }


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)] + [row[-1]]
        out.write("  ".join(cells).rstrip() + "\n")


def _availability(b: dict[str, Any]) -> str:
    if b["available"]:
        return "yes"
    hint = f" [extra: futurekit[{b['extra']}]]" if b["extra"] else ""
    return f"no: {b['reason']}{hint}"


def _print_backends(data: dict[str, Any], out: TextIO) -> None:
    rows = [["NAME", "TYPE", "PRIORITY", "DEVICES", "PROVIDED BY", "AVAILABLE"]]
    for b in data["backends"]:
        provider = b["distribution"] or "?"
        if b["version"]:
            provider += f" {b['version']}"
        name = b["name"] + (" (testing)" if b["testing"] else "")
        count = "-" if b["device_count"] is None else str(b["device_count"])
        rows.append([name, b["device_type"], str(b["priority"]), count, provider, _availability(b)])
    if len(rows) == 1:
        out.write("No backends are registered.\n")
    else:
        _table(rows, out)
    if data["failures"]:
        out.write("\nPlugins that failed to load:\n")
        for f in data["failures"]:
            where = f" (distribution {f['distribution']})" if f["distribution"] else ""
            out.write(f"  {f['name']}{where}: {f['error']}\n")
    if data["disabled"]:
        out.write("\nDisabled by FUTUREKIT_DISABLE_PLUGINS: " + ", ".join(data["disabled"]) + "\n")


def _cmd_backends(args: argparse.Namespace, out: TextIO) -> int:
    data = _backends_data()
    if args.json:
        json.dump(data, out, indent=2)
        out.write("\n")
    else:
        _print_backends(data, out)
    return EXIT_OK


def _summary(out: TextIO) -> None:
    try:
        data = _backends_data()
    except Exception as exc:  # never let the help screen fail
        out.write(f"\nBackends: could not be listed ({type(exc).__name__}: {exc})\n")
        return
    out.write("\nBackends on this machine (details: futurekit backends):\n")
    for b in data["backends"]:
        count = "" if b["device_count"] is None else f", {b['device_count']} device(s)"
        state = "available" + count if b["available"] else "unavailable"
        out.write(f"  {b['name']:<14} {b['device_type']:<8} {state}\n")
    if data["failures"]:
        out.write(f"  ({len(data['failures'])} plugin(s) failed to load)\n")


# -- doctor ----------------------------------------------------------------------------


def _cmd_doctor(args: argparse.Namespace, out: TextIO) -> int:
    from futurekit._doctor import run_doctor

    def progress(line: str) -> None:
        if not args.json:
            print(line, file=sys.stderr, flush=True)

    reports = run_doctor(timeout=args.timeout, on_progress=progress)
    failed = [r for r in reports if r.verdict == "fail"]
    if args.json:
        json.dump({"ok": not failed, "backends": [asdict(r) for r in reports]}, out, indent=2)
        out.write("\n")
        return EXIT_FAILED if failed else EXIT_OK
    marks = {"pass": "PASS", "fail": "FAIL", "unavailable": "----"}
    for r in sorted(reports, key=lambda r: r.verdict == "unavailable"):
        out.write(f"[{marks[r.verdict]}] {r.name} ({r.device_type}): {r.detail}\n")
        for d in r.devices:
            out.write(f"         {d.device}: {'ok' if d.ok else 'FAILED'}: {d.detail}\n")
    passed = sum(r.verdict == "pass" for r in reports)
    unavailable = sum(r.verdict == "unavailable" for r in reports)
    out.write(
        f"\n{passed} backend(s) passed, {len(failed)} failed, {unavailable} unavailable "
        "(not counted as failures).\n"
    )
    return EXIT_FAILED if failed else EXIT_OK


# -- bench -----------------------------------------------------------------------------


def _cmd_bench(args: argparse.Namespace, out: TextIO) -> int:
    try:
        from futurekit import _bench
    except Exception as exc:
        print(
            f"futurekit bench: the benchmark module could not be imported "
            f"({type(exc).__name__}: {exc}). Install the bench extra "
            "(pip install 'futurekit[bench]') and check that futurekit is complete.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    run_cli = getattr(_bench, "run_cli", None)
    if not callable(run_cli):
        print("futurekit bench: futurekit._bench has no run_cli() function", file=sys.stderr)
        return EXIT_USAGE
    return int(run_cli(quick=args.quick, json_path=args.json))


# -- main ------------------------------------------------------------------------------

_COMMANDS = {"backends": _cmd_backends, "doctor": _cmd_doctor, "bench": _cmd_bench}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``futurekit`` command line; returns the exit status.

    Args:
        argv: the arguments (without the program name); ``None`` uses ``sys.argv``.

    Returns:
        0 on success, 1 when ``doctor`` finds a failing backend, 2 for bad
        arguments or a missing benchmark module.
    """
    if argv is not None and (isinstance(argv, str) or not isinstance(argv, Sequence)):
        raise TypeError(f"argv must be a sequence of strings or None, got {argv!r}")
    parser = build_parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    out = sys.stdout
    if args.command is None:
        parser.print_help(out)
        _summary(out)
        return EXIT_OK
    try:
        return _COMMANDS[args.command](args, out)
    except KeyboardInterrupt:
        print("futurekit: interrupted", file=sys.stderr)
        return 130
