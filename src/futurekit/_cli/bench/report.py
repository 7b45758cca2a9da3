"""The benchmark table: rows, the Markdown table, JSON, the machine, the docs page."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

__all__ = [
    "DOCS_END",
    "DOCS_START",
    "Row",
    "check_rows",
    "format_table",
    "machine_info",
    "stamp",
    "title",
    "to_json",
    "update_docs",
]

_TIMES = "\u00d7"
_DASH = "\u2013"


@dataclass
class Row:
    """One line of the benchmark table.

    Times are in :attr:`unit` (µs unless said otherwise: ``ms``, ``B``, ``MB``, ``s``).
    Speed-ups are the other implementation's figure divided by futurekit's (higher
    is better for futurekit); ``None`` where an implementation lacks the operation.
    ``met`` is ``None`` where the row has no checkable target.
    """

    case: str
    futurekit_us: float | None
    torch_us: float | None
    concurrent_us: float | None
    speedup_vs_torch: float | None
    speedup_vs_concurrent: float | None
    target: str
    met: bool | None
    note: str = ""
    unit: str = "µs"
    #: ``"speedup"`` (speed-up vs torch at least ``target_value``), ``"max"``
    #: (futurekit's figure at most ``target_value``) or ``""``.
    target_kind: str = ""
    target_value: float | None = None


def check_rows(rows: object) -> list[Row]:
    """``rows`` as a list of :class:`Row`.

    Raises:
        TypeError: ``rows`` is not an iterable of rows.
    """
    if isinstance(rows, (str, bytes)) or not hasattr(rows, "__iter__"):
        raise TypeError(f"rows must be a list of Row (from run()), got {type(rows).__name__}")
    checked = list(rows)
    for i, row in enumerate(checked):
        if not isinstance(row, Row):
            raise TypeError(
                f"rows must hold Row objects (from run()), got {type(row).__name__} at index {i}"
            )
    return checked


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return _DASH
    text = f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}" if abs(value) < 100 else (
        f"{value:,.0f}")  # fmt: skip
    return f"{text} {unit}".rstrip()


def _mark(met: bool | None) -> str:
    return "n/a" if met is None else "pass" if met else "MISS"


def format_table(rows: list[Row]) -> str:
    """The rows as a Markdown table (also readable as plain text).

    Raises:
        TypeError: ``rows`` is not a list of :class:`Row`.
    """
    head = ["case", "futurekit", "torch", "concurrent", "vs torch", "vs concurrent", "target",
            "met", "note"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in check_rows(rows):
        cells = [
            r.case,
            _fmt(r.futurekit_us, r.unit),
            _fmt(r.torch_us, r.unit),
            _fmt(r.concurrent_us, r.unit),
            _fmt(r.speedup_vs_torch, _TIMES),
            _fmt(r.speedup_vs_concurrent, _TIMES),
            r.target,
            _mark(r.met),
            r.note.replace("|", "/"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU, core count, OS, Python, torch and futurekit versions, and the date (UTC)."""
    from futurekit import __version__
    from futurekit.core._accelerator import status as core

    return {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "torch": _version("torch"),
        "futurekit": __version__,
        "core": core,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def to_json(rows: list[Row]) -> dict[str, Any]:
    """The rows and the machine they were measured on, as JSON-ready data.

    Raises:
        TypeError: ``rows`` is not a list of :class:`Row`.
    """
    return {
        "machine": machine_info(),
        "fields": [f.name for f in fields(Row)],
        "rows": [asdict(r) for r in check_rows(rows)],
    }


def title(info: dict[str, Any], quick: bool) -> str:
    """A one-line description of a run: versions, machine, date (the plot's title)."""
    return (
        f"futurekit {info['futurekit']} vs torch {info['torch'] or 'absent'} (CPU), Python "
        f"{info['python']}, {info['cpu']} ({info['cores']} cores), {info['date'][:10]}"
        + (" (quick)" if quick else "")
    )


def stamp(info: dict[str, Any], quick: bool, torch_missing: str | None) -> str:
    """The sentence above the table: when, where, with what; and once, if torch is absent."""
    text = (
        f"Measured {info['date']} on {info['cpu']} ({info['cores']} cores, "
        f"{info['platform']}), {info['implementation']} {info['python']}, torch "
        f"{info['torch'] or 'absent'}, futurekit {info['futurekit']} "
        f"({info.get('core', 'core unknown')}); medians of "
        "alternating runs" + (" (quick mode)" if quick else "") + "."
    )
    if torch_missing:
        text += (
            f" Without torch ({torch_missing}) the torch columns are empty and the targets "
            "against torch are not checked (n/a)."
        )
    return text


DOCS_START, DOCS_END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"


def update_docs(path: Path, table: str, heading: str) -> bool:
    """Replace the table between the markers of a Markdown page.

    Args:
        path: the page (``docs/benchmarks.md``).
        table: :func:`format_table`'s output.
        heading: the sentence put above the table (:func:`stamp`).

    Returns:
        False (and the page untouched) if the page has no markers.
    """
    text = path.read_text(encoding="utf-8")
    if DOCS_START not in text or DOCS_END not in text:
        return False
    head, rest = text.split(DOCS_START, 1)
    _, tail = rest.split(DOCS_END, 1)
    body = f"{DOCS_START}\n{heading}\n\n{table}\n{DOCS_END}"
    path.write_text(head + body + tail, encoding="utf-8")
    return True
