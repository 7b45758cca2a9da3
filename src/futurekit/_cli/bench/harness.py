"""The one benchmark harness, behind ``futurekit bench`` and ``benchmarks/run.py``.

Both parse the same options (:func:`add_arguments`) and run :func:`command`: the
suite (:func:`futurekit._cli.bench.suite.run`) with progress on stderr, then the
table and a line saying when, where and with what it was measured on stdout, and
the JSON file, the plot and the docs table when asked. From a checkout
(``benchmarks/run.py``, :func:`checkout_main`) the JSON and the plot go to their
places in the repository by default and ``--update-docs`` rewrites the table of
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from . import cases, suite
from .report import format_table, machine_info, stamp, title, to_json, update_docs

__all__ = ["add_arguments", "checkout_main", "command"]

_BENCH_EXTRA = "the bench extra: pip install 'futurekit[bench]'"


def add_arguments(parser: argparse.ArgumentParser, *, checkout: Path | None = None) -> None:
    """Add the benchmark options to ``parser``.

    Args:
        parser: the ``futurekit bench`` sub-parser, or ``benchmarks/run.py``'s parser.
        checkout: the repository root when run from a checkout: the JSON and the plot
            are then written by default, and ``--no-plot`` and ``--update-docs`` exist.
    """
    json_default = None if checkout is None else str(checkout / "benchmarks/results/latest.json")
    plot_default = None if checkout is None else str(checkout / "docs/img/benchmarks.png")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, smaller sizes; "
                        "under a minute")  # fmt: skip
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # for tests
    parser.add_argument("--json", metavar="PATH", default=json_default,
                        help="also write the rows and the machine as JSON"
                        + (f" (default: {json_default})" if json_default else ""))  # fmt: skip
    parser.add_argument("--plot", metavar="PATH", default=plot_default,
                        help="also draw the speed-up plot (needs matplotlib, "
                        f"{_BENCH_EXTRA})" + (f"; default: {plot_default}" if plot_default
                                              else ""))  # fmt: skip
    parser.set_defaults(docs_page=None, no_plot=False, checkout=checkout is not None)
    if checkout is not None:
        parser.add_argument("--no-plot", action="store_true", help="do not draw the plot")
        parser.add_argument(
            "--update-docs",
            dest="docs_page",
            action="store_const",
            const=str(checkout / "docs/benchmarks.md"),
            help="also replace the measured table in docs/benchmarks.md",
        )


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _write_json(path: str, data: object) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.write("\n")
    _say(f"wrote {path}")


def command(args: argparse.Namespace, out: TextIO) -> int:
    """Run the suite as the options in ``args`` say; the exit status.

    Returns:
        0; 1 if a case failed with an error (a missed target is not an error); 2 if
        ``--plot`` was asked for without matplotlib (from the ``futurekit`` command).
    """
    plot_path = None if args.no_plot else args.plot
    if plot_path and importlib.util.find_spec("matplotlib") is None:
        if not args.checkout:  # asked for on the command line: fail before the long run
            _say(f"futurekit bench: --plot needs matplotlib ({_BENCH_EXTRA})")
            return 2
        _say(f"no plot: matplotlib is not installed ({_BENCH_EXTRA})")
        plot_path = None
    rows = suite.run(quick=args.quick, progress=_say, tiny=args.tiny)
    info = machine_info()
    heading = stamp(info, args.quick, cases.torch_missing())
    table = format_table(rows)
    out.write(f"{table}\n\n{heading}\n")
    out.flush()
    if args.json:
        data = to_json(rows)
        data["quick"] = args.quick
        data["torch_missing"] = cases.torch_missing()
        _write_json(args.json, data)
    if plot_path:
        from .plot import plot

        plot(rows, Path(plot_path), title(info, args.quick))
        _say(f"wrote {plot_path}")
    if args.docs_page:
        page = Path(args.docs_page)
        if update_docs(page, table, heading):
            _say(f"updated {page}")
        else:
            _say(f"{page} has no table markers; not updated")
    return 1 if any(r.note.startswith("error:") for r in rows) else 0


def checkout_main(root: Path, argv: Sequence[str] | None = None) -> int:
    """``benchmarks/run.py``: the harness with the checkout's default paths.

    Args:
        root: the repository root.
        argv: the arguments; ``None`` uses ``sys.argv``.

    Returns:
        The exit status of :func:`command`.
    """
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description="Run the benchmark suite: print the table, write the JSON results and "
        "the docs plot (the same harness as 'futurekit bench').",
    )
    add_arguments(parser, checkout=root)
    args = parser.parse_args(None if argv is None else list(argv))
    return command(args, sys.stdout)
