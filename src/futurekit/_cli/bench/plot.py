"""The benchmark plot (``docs/img/benchmarks.png``); needs matplotlib (the bench extra)."""

from __future__ import annotations

from pathlib import Path

from .report import Row

__all__ = ["plot"]


def _short(case: str) -> str:
    return (
        case.replace(" over completed futures", "")
        .replace(" over pending futures", "")
        .replace(", per callback", "")
        .replace(", per future", "")
        .replace("value walk vs pickling", "walk vs pickling")
    )


def _score(r: Row) -> float:
    """Measured / target: at least 1 when the target is met."""
    assert r.target_value is not None and r.futurekit_us is not None
    if r.target_kind == "speedup":
        return (r.speedup_vs_torch or 0.0) / r.target_value
    return r.target_value / r.futurekit_us


def plot(rows: list[Row], path: Path, title: str) -> None:
    """Two panels: speed-up vs torch against the targets; every target as measured/target.

    Raises:
        ImportError: matplotlib is not installed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    speed = [r for r in rows if r.target_kind == "speedup" and r.speedup_vs_torch is not None]
    goals = [r for r in rows if r.target_kind and r.target_value and r.futurekit_us]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [3, 2]})
    for ax in (ax1, ax2):
        ax.set_xscale("log")

    values = [r.speedup_vs_torch or 0.0 for r in speed]
    y = list(range(len(speed)))
    ax1.barh(y, values, color=["tab:green" if r.met else "tab:red" for r in speed], alpha=0.8,
             label="measured speed-up")  # fmt: skip
    ax1.scatter([r.target_value for r in speed], y, marker="|", s=400, color="black",
                zorder=3, label="target")  # fmt: skip
    ax1.axvline(1.0, color="grey", linestyle=":", linewidth=1)
    for i, v in enumerate(values):
        ax1.text(v, i, f" {v:.1f}\u00d7", va="center", fontsize=8)
    ax1.set_yticks(y, [_short(r.case) for r in speed], fontsize=8)
    ax1.set_xlim(0.3, max([1.0, *values, *(r.target_value or 1 for r in speed)]) * 2)
    ax1.set_xlabel("speed-up vs torch.futures (torch time / futurekit time, log scale)")
    ax1.legend(loc="best", fontsize=8)

    scores = [_score(r) for r in goals]
    y2 = list(range(len(goals)))
    ax2.barh(y2, scores, color=["tab:green" if s >= 1 else "tab:red" for s in scores], alpha=0.8)
    ax2.axvline(1.0, color="black", linewidth=1)
    ax2.set_yticks(y2, [_short(r.case) for r in goals], fontsize=8)
    lo, hi = min(0.5, *scores) / 1.5, max(2.0, *scores) * 1.5
    ax2.set_xlim(lo, hi)
    ax2.set_xticks([t for t in (0.1, 0.25, 0.5, 1, 2, 4, 10) if lo <= t <= hi])
    ax2.set_xlabel("measured / target (\u2265 1: target met)")
    for ax in (ax1, ax2):
        ax.invert_yaxis()
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
