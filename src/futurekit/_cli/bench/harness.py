"""The benchmark suite: futurekit against ``torch.futures`` and ``concurrent.futures``.

Every case of the performance issue runs each implementation in this process,
alternating between them round by round, with the garbage collector paused during
each timed run (as ``timeit`` does), and reports medians, speed-ups
(other time / futurekit time) and the target with a pass/miss mark. torch and
matplotlib are imported lazily; without torch the torch columns stay empty.

``futurekit bench`` and ``benchmarks/run.py`` call :func:`run_cli` / :func:`run`.
Benchmarks are not tests: nothing here asserts a time.
"""

from __future__ import annotations

import datetime
import functools
import json
import logging
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from . import _bench_cases as cases
from . import _bench_probes as probes

__all__ = ["Row", "format_table", "machine_info", "run", "run_cli", "to_json"]

Progress = Callable[[str], None]

logger = logging.getLogger("futurekit")


@dataclass
class Row:
    """One line of the benchmark table.

    Times are in :attr:`unit` (µs unless said otherwise: ``ms``, ``B``, ``s``).
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


@dataclass(frozen=True)
class _Plan:
    rounds: int
    create_n: int
    cb_futures: int
    cb_per_future: int
    chain_links: int
    then_n: int
    collect_k: int
    collect_reps: int
    waitall_k: int
    waitall_reps: int
    pingpong_n: int
    import_reps: int
    import_torch: bool
    mem_n: int
    long_links: int
    torch_crash_links: int
    dev_buffers: int
    dev_reps: int
    dev_rounds: int


_FULL = _Plan(
    rounds=15, create_n=20_000, cb_futures=100, cb_per_future=100, chain_links=4_000,
    then_n=20_000, collect_k=1_000, collect_reps=10, waitall_k=1_000, waitall_reps=10,
    pingpong_n=2_000, import_reps=7, import_torch=True, mem_n=20_000, long_links=1_000_000,
    torch_crash_links=10_000, dev_buffers=1_000, dev_reps=50, dev_rounds=9,
)  # fmt: skip
_QUICK = _Plan(
    rounds=5, create_n=5_000, cb_futures=50, cb_per_future=100, chain_links=4_000,
    then_n=5_000, collect_k=1_000, collect_reps=2, waitall_k=1_000, waitall_reps=3,
    pingpong_n=500, import_reps=3, import_torch=False, mem_n=5_000, long_links=100_000,
    torch_crash_links=0, dev_buffers=1_000, dev_reps=10, dev_rounds=3,
)  # fmt: skip
_TINY = _Plan(
    rounds=1, create_n=200, cb_futures=5, cb_per_future=10, chain_links=200,
    then_n=200, collect_k=50, collect_reps=1, waitall_k=50, waitall_reps=1,
    pingpong_n=20, import_reps=1, import_torch=False, mem_n=200, long_links=2_000,
    torch_crash_links=0, dev_buffers=20, dev_reps=2, dev_rounds=1,
)  # fmt: skip

_US = 1e6
_TIMES = "\u00d7"
_GE = "\u2265"
_DASH = "\u2013"


def _ratio(other: float | None, mine: float | None) -> float | None:
    if other is None or mine is None or mine <= 0:
        return None
    return other / mine


def _speed_row(case: str, medians: dict[str, float], target: float, note: str) -> Row:
    fk = medians["futurekit"] * _US
    th = medians["torch"] * _US if "torch" in medians else None
    cc = medians["concurrent"] * _US if "concurrent" in medians else None
    vs_torch = _ratio(th, fk)
    if "lock floor" in medians:
        note += (
            f"; pure-Python floor (raw threading.Lock ping-pong): "
            f"{medians['lock floor'] * _US:.1f} \u00b5s"
        )
    return Row(
        case=case,
        futurekit_us=fk,
        torch_us=th,
        concurrent_us=cc,
        speedup_vs_torch=vs_torch,
        speedup_vs_concurrent=_ratio(cc, fk),
        target=f"{_GE} {target:g}{_TIMES}",
        met=None if vs_torch is None else vs_torch >= target,
        note=note,
        target_kind="speedup",
        target_value=target,
    )


def _has(impl: cases.Impl, op: str) -> bool:
    if op == "any":
        return True
    if op == "then":
        return impl.has_then
    return getattr(impl, op) is not None


def _timed(
    impls: list[cases.Impl],
    rounds: int,
    op: str,
    fn: Callable[..., float],
    *args: int,
    extra: dict[str, Callable[[], float]] | None = None,
) -> dict[str, float]:
    """Alternate ``fn(impl, *args)`` over the implementations that have ``op``.

    ``op`` is ``"any"`` (every implementation), ``"then"``, ``"collect_all"`` or
    ``"wait_all"``.
    """
    timers: dict[str, Callable[[], float]] = {
        impl.name: functools.partial(fn, impl, *args) for impl in impls if _has(impl, op)
    }
    timers.update(extra or {})
    return cases.alternate(timers, rounds)


def _speed_cases(
    impls: list[cases.Impl], p: _Plan
) -> list[tuple[str, float, str, Callable[[], dict[str, float]]]]:
    r = p.rounds
    return [
        ("create + set_result + wait", 4, "",
         lambda: _timed(impls, r, "any", cases.time_create_set_wait, p.create_n)),
        ("add_done_callback, per callback", 2.5,
         f"{p.cb_per_future} callbacks registered on each pending future, then set_result "
         "(registration and run)",
         lambda: _timed(impls, r, "any", cases.time_add_done_callback,
                        p.cb_futures, p.cb_per_future)),
        (f"then chain, per link ({p.chain_links:,} links)", 2.5,
         "built on a pending future, completed by one set_result, end waited",
         lambda: _timed(impls, r, "then", cases.time_then_chain, p.chain_links)),
        ("then on a completed future", 4, "the callback runs at once",
         lambda: _timed(impls, r, "then", cases.time_then_on_done, p.then_n)),
        ("collect_all over pending futures, per future", 2,
         f"{p.collect_k:,} futures: collect_all, set_result each, wait",
         lambda: _timed(impls, r, "collect_all", cases.time_collect_all, p.collect_k,
                        p.collect_reps)),
        ("wait_all over completed futures, per future", 8,
         f"{p.waitall_k:,} futures; concurrent: concurrent.futures.wait + result()",
         lambda: _timed(impls, r, "wait_all", cases.time_wait_all, p.waitall_k, p.waitall_reps)),
        ("cross-thread round trip", 1.0,
         f"two threads ping-pong {p.pingpong_n:,} times (set, then wait the other's)",
         lambda: _timed(impls, r, "any", cases.time_cross_thread, p.pingpong_n, extra={
             "lock floor": functools.partial(cases.time_lock_pingpong, p.pingpong_n)})),
    ]  # fmt: skip


def _import_row(p: _Plan) -> Row:
    res = probes.import_cost(p.import_reps, p.import_torch)
    fk_ms = res.in_process_s * 1e3
    th_ms = None if res.torch_s is None else res.torch_s * 1e3
    ok = fk_ms < 30 and not res.forbidden
    loaded = ", ".join(res.forbidden) if res.forbidden else "none of torch, cuda, pluggy"
    note = (
        f"in a fresh interpreter; wall: bare {res.bare_wall_s * 1e3:.0f} ms, with import "
        f"{res.import_wall_s * 1e3:.0f} ms; imports {loaded}"
        + ("; torch column: import torch" if th_ms is not None else "")
    )
    return Row("import futurekit", fk_ms, th_ms, None, _ratio(th_ms, fk_ms), None,
               "< 30 ms, no torch/cuda/pluggy", ok, note, "ms", "max", 30.0)  # fmt: skip


def _memory_row(impls: list[cases.Impl], p: _Plan) -> Row:
    sizes = {impl.name: probes.memory_per_pending(impl, p.mem_n) for impl in impls}
    fk = sizes["futurekit"]
    cc = sizes.get("concurrent")
    note = "tracemalloc, shared callback function"
    if "torch" in sizes:
        note += f"; torch not comparable (C++ heap is invisible: {sizes['torch']:.0f} B traced)"
    return Row("memory per pending future with one callback", fk, None, cc, None,
               _ratio(cc, fk), "≤ 300 B", fk <= 300, note, "B", "max", 300.0)  # fmt: skip


def _chain_row(p: _Plan) -> Row:
    res = probes.long_chain(p.long_links)
    mib = 1024 * 1024
    returned = 0 <= res.left_bytes < max(mib, res.peak_bytes // 100)
    note = (
        f"build {res.build_s:.2f} s; peak {res.peak_bytes / mib:.0f} MiB "
        f"({res.peak_bytes / res.links:.0f} B/link, tracemalloc); after: "
        f"{res.left_bytes / 1024:+.0f} KiB ({'returned' if returned else 'NOT returned'})"
    )
    if p.torch_crash_links:
        note += "; " + probes.torch_chain_crash(p.torch_crash_links)
    if p.long_links < 1_000_000:
        note += "; reduced size (quick mode)"
    return Row(f"{p.long_links:,}-link chain", res.total_s, None, None, None, None,
               "completes; memory returns", res.value_ok and returned, note, "s")  # fmt: skip


def _device_rows(p: _Plan) -> list[Row]:
    res = probes.device_path(p.dev_buffers, p.dev_reps, p.dev_rounds)
    n = f"{p.dev_buffers:,}"
    dev_note = (
        f"Future(devices=['sim:0']); {res.buffers_found} buffers found"
        if res.set_wait_s is not None
        else "skipped: futurekit.testing.sim unavailable"
    )
    if res.note:
        dev_note += "; " + res.note
    set_wait = None if res.set_wait_s is None else res.set_wait_s * _US
    walk = res.walk_s * _US
    extract = None if res.torch_extract_s is None else res.torch_extract_s * _US
    speed = _ratio(extract, walk)
    walk_note = (
        "torch column: torch's own extraction (a pickle.Pickler with a Python "
        "persistent_id, torch._jit_internal._extract_tensors) on the same value"
    )
    if res.pickle_s is not None:
        walk_note += (
            f"; plain pickle.dumps: {res.pickle_s * _US:,.0f} \u00b5s "
            f"({res.pickle_s / res.walk_s:.1f}\u00d7 the walk)"
        )
    if res.note:
        walk_note += "; " + res.note
    return [
        Row(f"device path (sim): set_result + wait, {n} buffers", set_wait, None, None,
            None, None, "report \u00b5s", None, dev_note),
        Row(f"value walk vs pickling, {n} buffers", walk, extract, None, speed, None,
            f"{_GE} 10{_TIMES}", None if speed is None else speed >= 10, walk_note,
            "\u00b5s", "speedup", 10.0),
    ]  # fmt: skip


def _error_row(case: str, exc: BaseException) -> Row:
    return Row(case, None, None, None, None, None, "", None,
               f"error: {type(exc).__name__}: {exc}")  # fmt: skip


def run(quick: bool = False, progress: Progress | None = None, *, tiny: bool = False) -> list[Row]:
    """Run every case and return the table's rows.

    Args:
        quick: fewer rounds and smaller sizes (under a minute on two cores); the
            long chain has 100,000 links instead of 1,000,000.
        progress: called with a line of text before each case.
        tiny: minimal sizes and one round (for tests: the figures mean nothing).
    """
    if not isinstance(quick, bool) or not isinstance(tiny, bool):
        raise TypeError(f"quick and tiny must be bools, got {quick!r} and {tiny!r}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable taking a str, or None, got {progress!r}")
    plan = _TINY if tiny else _QUICK if quick else _FULL
    say: Progress = progress if progress is not None else (lambda _msg: None)
    say("loading implementations (importing torch if present)")
    impls, torch_missing = cases.available_impls()
    steps: list[tuple[str, Callable[[], list[Row]]]] = []
    for case, target, note, timer in _speed_cases(impls, plan):
        full_note = "; ".join(x for x in (note, torch_missing) if x)

        def step(
            case: str = case,
            t: float = target,
            n: str = full_note,
            timer: Callable[[], dict[str, float]] = timer,
        ) -> list[Row]:
            return [_speed_row(case, timer(), t, n)]  # fmt: skip

        steps.append((case, step))
    steps += [
        ("import futurekit", lambda: [_import_row(plan)]),
        ("memory per pending future", lambda: [_memory_row(impls, plan)]),
        (f"{plan.long_links:,}-link chain", lambda: [_chain_row(plan)]),
        ("device path (sim) and value walk", lambda: _device_rows(plan)),
    ]
    rows: list[Row] = []
    for i, (name, step_fn) in enumerate(steps, 1):
        say(f"[{i}/{len(steps)}] {name}")
        try:
            rows.extend(step_fn())
        except Exception as exc:  # one broken case must not lose the others
            logger.warning("benchmark case %r failed", name, exc_info=True)
            rows.append(_error_row(name, exc))
    return rows


def _check_rows(rows: object) -> list[Row]:
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
    """The rows as a Markdown table (also readable as plain text)."""
    head = ["case", "futurekit", "torch", "concurrent", "vs torch", "vs concurrent", "target",
            "met", "note"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in _check_rows(rows):
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
    from . import __version__

    return {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "torch": _version("torch"),
        "futurekit": __version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def to_json(rows: list[Row]) -> dict[str, Any]:
    """The rows and the machine they were measured on, as JSON-ready data."""
    return {
        "machine": machine_info(),
        "fields": [f.name for f in fields(Row)],
        "rows": [asdict(r) for r in _check_rows(rows)],
    }


def run_cli(quick: bool, json_path: str | None) -> int:
    """Run the suite, printing progress to stderr and the table to stdout.

    Args:
        quick: the quick version (under a minute).
        json_path: also write :func:`to_json` there (parent folders are created).

    Returns:
        0, or 1 if a case failed with an error (a missed target is not an error).
    """
    if json_path is not None and not isinstance(json_path, (str, os.PathLike)):
        raise TypeError(f"json_path must be a file path or None, got {json_path!r}")

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    rows = run(quick=quick, progress=progress)
    info = machine_info()
    print(format_table(rows))
    print(
        f"\n{info['cpu']} ({info['cores']} cores), Python {info['python']}, torch "
        f"{info['torch'] or 'absent'}, {info['date']}; medians of alternating runs"
        + (" (quick mode)" if quick else "")
    )
    if json_path is not None:
        json_path = os.fspath(json_path)
        directory = os.path.dirname(os.path.abspath(json_path))
        os.makedirs(directory, exist_ok=True)
        data = to_json(rows)
        data["quick"] = quick
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False)
            f.write("\n")
        print(f"wrote {json_path}", file=sys.stderr)
    return 1 if any(r.note.startswith("error:") for r in rows) else 0
