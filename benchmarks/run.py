"""Run the full benchmark suite: print the table, write JSON and the docs plot.

    python benchmarks/run.py              # full run (a few minutes)
    python benchmarks/run.py --quick      # the quick version (under a minute)

Writes ``benchmarks/results/latest.json`` and ``docs/img/benchmarks.png`` (use
``--json`` / ``--plot`` to choose other paths, ``--no-plot`` to skip matplotlib).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from futurekit import _bench  # noqa: E402


def _short(case: str) -> str:
    return (
        case.replace(" over completed futures", "")
        .replace(" over pending futures", "")
        .replace(", per callback", "")
        .replace(", per future", "")
        .replace("value walk vs pickling", "walk vs pickling")
    )


def plot(rows: list[_bench.Row], path: Path, title: str) -> None:
    """Two panels: speed-up vs torch against the targets; every target as measured/target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    speed = [r for r in rows if r.target_kind == "speedup" and r.speedup_vs_torch is not None]
    goals = [r for r in rows if r.target_kind and r.target_value and r.futurekit_us]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [3, 2]})

    names = [_short(r.case) for r in speed]
    values = [r.speedup_vs_torch or 0.0 for r in speed]
    colors = ["tab:green" if r.met else "tab:red" for r in speed]
    y = range(len(speed))
    ax1.barh(list(y), values, color=colors, alpha=0.8, label="measured speed-up")
    ax1.scatter([r.target_value for r in speed], list(y), marker="|", s=400, color="black",
                zorder=3, label="target")  # fmt: skip
    ax1.axvline(1.0, color="grey", linestyle=":", linewidth=1)
    for i, v in enumerate(values):
        ax1.text(v, i, f" {v:.1f}\u00d7", va="center", fontsize=8)
    ax1.set_yticks(list(y), names, fontsize=8)
    ax1.invert_yaxis()
    ax1.set_xscale("log")
    ax1.set_xlim(0.3, max([*values, *(r.target_value or 1 for r in speed)]) * 2)
    ax1.set_xlabel("speed-up vs torch.futures (torch time / futurekit time, log scale)")
    ax1.legend(loc="best", fontsize=8)

    def score(r: _bench.Row) -> float:
        assert r.target_value is not None and r.futurekit_us is not None
        if r.target_kind == "speedup":
            return (r.speedup_vs_torch or 0.0) / r.target_value
        return r.target_value / r.futurekit_us

    names2 = [_short(r.case) for r in goals]
    scores = [score(r) for r in goals]
    colors2 = ["tab:green" if s >= 1 else "tab:red" for s in scores]
    y2 = range(len(goals))
    ax2.barh(list(y2), scores, color=colors2, alpha=0.8)
    ax2.axvline(1.0, color="black", linewidth=1)
    ax2.set_yticks(list(y2), names2, fontsize=8)
    ax2.invert_yaxis()
    ax2.set_xscale("log")
    lo, hi = min(0.5, *scores) / 1.5, max(2.0, *scores) * 1.5
    ax2.set_xlim(lo, hi)
    ax2.set_xticks([t for t in (0.1, 0.25, 0.5, 1, 2, 4, 10) if lo <= t <= hi])
    for ax in (ax1, ax2):
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax2.set_xlabel("measured / target (\u2265 1: target met)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"


def update_docs(path: Path, table: str, title: str) -> bool:
    """Replace the table between the markers in ``docs/benchmarks.md``; False if absent."""
    text = path.read_text(encoding="utf-8")
    if START not in text or END not in text:
        return False
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    body = f"{START}\n{title}\n\n{table}\n{END}"
    path.write_text(head + body + tail, encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, smaller sizes")
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/latest.json"))
    parser.add_argument("--plot", default=str(ROOT / "docs/img/benchmarks.png"))
    parser.add_argument("--no-plot", action="store_true", help="do not draw the plot")
    parser.add_argument(
        "--update-docs",
        action="store_true",
        help="also replace the measured table in docs/benchmarks.md",
    )
    args = parser.parse_args(argv)

    rows = _bench.run(quick=args.quick, progress=lambda m: print(m, file=sys.stderr, flush=True))
    data: dict[str, Any] = _bench.to_json(rows)
    data["quick"] = args.quick
    info = data["machine"]
    print(_bench.format_table(rows))
    title = (
        f"futurekit {info['futurekit']} vs torch {info['torch']} (CPU), Python {info['python']}, "
        f"{info['cpu']} ({info['cores']} cores), {info['date'][:10]}"
        + (" (quick)" if args.quick else "")
    )
    print("\n" + title)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {args.json}", file=sys.stderr)
    if not args.no_plot:
        try:
            plot(rows, Path(args.plot), title)
        except ImportError as exc:
            print(f"no plot: {exc} (pip install 'futurekit[bench]')", file=sys.stderr)
        else:
            print(f"wrote {args.plot}", file=sys.stderr)
    if args.update_docs:
        docs = ROOT / "docs/benchmarks.md"
        stamp = (
            f"Measured {info['date']} on {info['cpu']} ({info['cores']} cores, "
            f"{info['platform']}), CPython {info['python']}, torch {info['torch']}, "
            f"futurekit {info['futurekit']}" + (" (quick mode)" if args.quick else "") + "."
        )
        if update_docs(docs, _bench.format_table(rows), stamp):
            print(f"updated {docs}", file=sys.stderr)
        else:
            print(f"{docs} has no table markers; not updated", file=sys.stderr)
    return 1 if any(r.note.startswith("error:") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
