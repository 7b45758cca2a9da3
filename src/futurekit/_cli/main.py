"""The ``futurekit`` command (also ``python -m futurekit``).

Commands:

* ``futurekit backends [--json]``: every registered backend with its availability,
  plugins that failed to load, and disabled ones.
* ``futurekit doctor [--json] [--timeout S]``: the conformance kit and a round trip
  through a future on every device of every available backend, from new threads;
  exit status 0 when all pass and no plugin failed to load, 1 otherwise.
* ``futurekit bench [--quick] [--json PATH] [--plot PATH]``: the benchmark table
  (futurekit vs ``torch.futures`` vs ``concurrent.futures``).

Without a command it prints the help and a one-line summary per backend.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, TextIO

from ._output import EXIT_BROKEN_PIPE, EXIT_FAILED, EXIT_OK, EXIT_USAGE, failure_line

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]


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
    from .bench.harness import add_arguments

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
        help="check every available backend as the conformance kit and programs use it",
        description="For each available backend: the conformance kit "
        "(futurekit.testing.check_backend), then on each device a future used as a program "
        "uses one (Future(devices=...), add_done_callback, then, set_result, wait, "
        "synchronize, is_ready) from a new thread and from a concurrent.futures worker. "
        "Exit status 0 when every available backend passes and every plugin loaded, 1 "
        "otherwise; unavailable backends are listed with the extra to install, not failed.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument(
        "--timeout",
        type=_positive_float,
        default=30.0,
        metavar="S",
        help="seconds allowed for each blocking step (default: 30)",
    )

    p = sub.add_parser(
        "bench",
        help="benchmark futurekit against torch.futures and concurrent.futures",
        description="Print the benchmark table (medians and speed-ups) with a progress "
        "indication on stderr while it runs. Needs no extra: without torch the torch "
        "columns stay empty; --plot needs matplotlib (the bench extra).",
    )
    add_arguments(p)
    return parser


# -- backends ------------------------------------------------------------------------


def backends_data() -> dict[str, Any]:
    """What ``futurekit backends --json`` prints: version, backends, failures, disabled."""
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


def _extras_footer(backends: list[dict[str, Any]], out: TextIO) -> None:
    """Which extra provides which unavailable backends: once per extra, not once per row."""
    by_extra: dict[str, list[str]] = {}
    for b in backends:
        fix = b.get("fix") or ""
        if not b["available"] and b["extra"] and f"futurekit[{b['extra']}]" in fix:
            by_extra.setdefault(b["extra"], []).append(b["name"])  # its extra is missing
    if by_extra:
        out.write(
            "\nExtras that provide the unavailable backends (pip install '.[EXTRA]' in a "
            "futurekit checkout; pip install 'futurekit[EXTRA]' once it is on PyPI):\n"
        )
        for extra, names in by_extra.items():
            out.write(f"  {extra}: {', '.join(names)}\n")


def _print_backends(data: dict[str, Any], out: TextIO) -> None:
    rows = [["NAME", "TYPE", "PRIORITY", "DEVICES", "PROVIDED BY", "AVAILABLE"]]
    for b in data["backends"]:
        provider = b["distribution"] or "?"
        if b["version"]:
            provider += f" {b['version']}"
        name = b["name"] + (" (testing)" if b["testing"] else "")
        count = "-" if b["device_count"] is None else str(b["device_count"])
        state = "yes" if b["available"] else f"no: {b['reason'] or 'unavailable'}"
        rows.append([name, b["device_type"], str(b["priority"]), count, provider, state])
    if len(rows) == 1:
        out.write("No backends are registered.\n")
    else:
        _table(rows, out)
    _extras_footer(data["backends"], out)
    if data["failures"]:
        out.write("\nPlugins that failed to load:\n")
        for f in data["failures"]:
            out.write(f"  {failure_line(f)}\n")
    if data["disabled"]:
        out.write("\nDisabled by FUTUREKIT_DISABLE_PLUGINS: " + ", ".join(data["disabled"]) + "\n")


def _cmd_backends(args: argparse.Namespace, out: TextIO) -> int:
    data = backends_data()
    if args.json:
        json.dump(data, out, indent=2)
        out.write("\n")
    else:
        _print_backends(data, out)
    return EXIT_OK


def _summary(out: TextIO) -> None:
    try:
        data = backends_data()
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


# -- the other commands ---------------------------------------------------------------


def _cmd_doctor(args: argparse.Namespace, out: TextIO) -> int:
    from .doctor import command

    return command(args, out)


def _cmd_bench(args: argparse.Namespace, out: TextIO) -> int:
    from .bench.harness import command

    return command(args, out)


_COMMANDS = {"backends": _cmd_backends, "doctor": _cmd_doctor, "bench": _cmd_bench}


def _silence_stdout() -> None:
    """After a broken pipe: send stdout to /dev/null so the flush at exit cannot fail too."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (captured output)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``futurekit`` command line; returns the exit status.

    Args:
        argv: the arguments (without the program name); ``None`` uses ``sys.argv``.

    Returns:
        0 on success; 1 when ``doctor`` finds a failing backend or a plugin that
        failed to load, or a benchmark case fails; 2 for bad arguments; 141 when the
        reader of the output went away (``futurekit backends | head -1``); 130 on
        Ctrl-C.

    Raises:
        TypeError: ``argv`` is a string or not a sequence.
    """
    if argv is not None and (isinstance(argv, str) or not isinstance(argv, Sequence)):
        raise TypeError(f"argv must be a sequence of strings or None, got {argv!r}")
    out = sys.stdout
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(None if argv is None else list(argv))
        except SystemExit as exc:  # --help, --version and usage errors
            out.flush()
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
        if args.command is None:
            parser.print_help(out)
            _summary(out)
            status = EXIT_OK
        else:
            status = _COMMANDS[args.command](args, out)
        out.flush()  # a closed pipe shows up here, not at interpreter exit
        return status
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("futurekit: interrupted", file=sys.stderr)
        return 130
