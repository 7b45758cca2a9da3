"""The benchmark cases: their sizes, their targets, and :func:`run`.

Every speed-up target is a field of a :class:`SpeedCase` in :data:`SPEED_CASES`; the
other targets (import time, long-chain memory, memory per future, value walk) are the
constants below. Benchmarks are not tests: nothing here asserts a time.
"""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass

from . import cases, device_proxy, probes
from .report import Row

__all__ = [
    "CHAIN_PEAK_MB_PER_MILLION_LINKS",
    "IMPORT_MS",
    "MEMORY_B",
    "PLANS",
    "SPEED_CASES",
    "WALK_SPEEDUP",
    "Plan",
    "SpeedCase",
    "run",
]

logger = logging.getLogger("futurekit")

Progress = Callable[[str], None]

#: ``import futurekit`` in a fresh interpreter takes less than this (ms), and loads
#: none of torch, cuda, pluggy.
IMPORT_MS = 15.0
#: A 1,000,000-link ``then`` chain peaks below this many MB (10**6 bytes, tracemalloc);
#: shorter chains (quick mode) get the same budget per link.
CHAIN_PEAK_MB_PER_MILLION_LINKS = 200.0
#: A pending future holding one callback takes at most this many bytes.
MEMORY_B = 300.0
#: The value walk is at least this many times faster than torch's tensor extraction.
WALK_SPEEDUP = 10.0

_US = 1e6
_TIMES = "\u00d7"
_GE = "\u2265"
_LOAD_NOTE = (
    "the target depends on machine load (thread hand-offs wait for the GIL and the "
    "scheduler): measure on an idle machine"
)


@dataclass(frozen=True)
class Plan:
    """The sizes of one run (full, quick or tiny)."""

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


PLANS = {
    "full": Plan(
        rounds=15, create_n=20_000, cb_futures=100, cb_per_future=100, chain_links=4_000,
        then_n=20_000, collect_k=1_000, collect_reps=10, waitall_k=1_000, waitall_reps=10,
        pingpong_n=2_000, import_reps=5, import_torch=True, mem_n=20_000,
        long_links=1_000_000, torch_crash_links=10_000, dev_buffers=1_000, dev_reps=50,
        dev_rounds=9,
    ),
    "quick": Plan(
        rounds=5, create_n=5_000, cb_futures=50, cb_per_future=100, chain_links=4_000,
        then_n=5_000, collect_k=1_000, collect_reps=2, waitall_k=1_000, waitall_reps=3,
        pingpong_n=500, import_reps=5, import_torch=False, mem_n=5_000, long_links=100_000,
        torch_crash_links=0, dev_buffers=1_000, dev_reps=10, dev_rounds=3,
    ),
    "tiny": Plan(
        rounds=1, create_n=200, cb_futures=5, cb_per_future=10, chain_links=200,
        then_n=200, collect_k=50, collect_reps=1, waitall_k=50, waitall_reps=1,
        pingpong_n=20, import_reps=1, import_torch=False, mem_n=200, long_links=2_000,
        torch_crash_links=0, dev_buffers=20, dev_reps=2, dev_rounds=1,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class SpeedCase:
    """A timed case: every implementation that has ``op`` runs ``timer``.

    ``name`` and ``note`` may name :class:`Plan` fields (``{chain_links:,}``);
    ``sizes`` are the plan fields passed to the timer, and to ``floor`` (a reference
    timing shown in the note) when there is one.
    """

    name: str
    target: float  # speed-up against torch.futures, at least
    op: str  # "any", "then", "collect_all" or "wait_all"
    timer: Callable[..., float]
    sizes: tuple[str, ...]
    note: str = ""
    load_dependent: bool = False
    floor: Callable[..., float] | None = None


SPEED_CASES = (
    SpeedCase("create + set_result + wait", 6, "any", cases.time_create_set_wait,
              ("create_n",)),
    SpeedCase("add_done_callback, per callback", 3.5, "any", cases.time_add_done_callback,
              ("cb_futures", "cb_per_future"),
              "{cb_per_future} callbacks registered on each pending future, then set_result "
              "(registration and run)"),
    SpeedCase("then chain, per link ({chain_links:,} links)", 4, "then", cases.time_then_chain,
              ("chain_links",), "built on a pending future, completed by one set_result, "
              "end waited"),
    SpeedCase("then on a completed future", 6, "then", cases.time_then_on_done, ("then_n",),
              "the callback runs at once"),
    SpeedCase("collect_all over pending futures, per future", 3, "collect_all",
              cases.time_collect_all, ("collect_k", "collect_reps"),
              "{collect_k:,} futures: collect_all, set_result each, wait"),
    SpeedCase("wait_all over completed futures, per future", 12, "wait_all",
              cases.time_wait_all, ("waitall_k", "waitall_reps"),
              "{waitall_k:,} futures; concurrent: concurrent.futures.wait + result()"),
    SpeedCase("cross-thread round trip", 1.0, "any", cases.time_cross_thread, ("pingpong_n",),
              "two threads ping-pong {pingpong_n:,} times (set, then wait the other's)",
              load_dependent=True, floor=cases.time_lock_pingpong),
)  # fmt: skip


def _ratio(other: float | None, mine: float | None) -> float | None:
    if other is None or mine is None or mine <= 0:
        return None
    return other / mine


def _has(impl: cases.Impl, op: str) -> bool:
    if op == "any":
        return True
    if op == "then":
        return impl.has_then
    return getattr(impl, op) is not None


def _speed_row(case: SpeedCase, impls: list[cases.Impl], plan: Plan) -> Row:
    fields = vars(plan)
    args = [fields[size] for size in case.sizes]
    timers: dict[str, Callable[[], float]] = {
        impl.name: functools.partial(case.timer, impl, *args)
        for impl in impls
        if _has(impl, case.op)
    }
    if case.floor is not None:
        timers["floor"] = functools.partial(case.floor, *args)
    medians = cases.alternate(timers, plan.rounds)
    fk = medians["futurekit"] * _US
    th = medians["torch"] * _US if "torch" in medians else None
    cc = medians["concurrent"] * _US if "concurrent" in medians else None
    notes = [case.note.format(**fields)] if case.note else []
    if "floor" in medians:
        notes.append(
            f"pure-Python floor (raw threading.Lock ping-pong): {medians['floor'] * _US:.1f} µs"
        )
    if case.load_dependent:
        notes.insert(0, _LOAD_NOTE)
    vs_torch = _ratio(th, fk)
    return Row(
        case=case.name.format(**fields),
        futurekit_us=fk,
        torch_us=th,
        concurrent_us=cc,
        speedup_vs_torch=vs_torch,
        speedup_vs_concurrent=_ratio(cc, fk),
        target=f"{_GE} {case.target:g}{_TIMES}" + (" (load-dependent)" if case.load_dependent
                                                   else ""),
        met=None if vs_torch is None else vs_torch >= case.target,
        note="; ".join(notes),
        target_kind="speedup",
        target_value=case.target,
    )  # fmt: skip


def _import_row(p: Plan) -> Row:
    res = probes.import_cost(p.import_reps, p.import_torch)
    fk_ms = res.in_process_s * 1e3
    th_ms = None if res.torch_s is None else res.torch_s * 1e3
    loaded = ", ".join(res.forbidden) if res.forbidden else "none of torch, cuda, pluggy"
    where = f"best of {res.reps} fresh interpreters" if res.reps > 1 else "a fresh interpreter"
    note = (
        f"{where}; wall: bare {res.bare_wall_s * 1e3:.0f} ms, "
        f"with import {res.import_wall_s * 1e3:.0f} ms; imports {loaded}"
        + ("; torch column: import torch" if th_ms is not None else "")
    )
    return Row("import futurekit", fk_ms, th_ms, None, _ratio(th_ms, fk_ms), None,
               f"< {IMPORT_MS:g} ms, no torch/cuda/pluggy",
               fk_ms < IMPORT_MS and not res.forbidden, note, "ms", "max", IMPORT_MS)  # fmt: skip


def _memory_row(impls: list[cases.Impl], p: Plan) -> Row:
    sizes = {impl.name: probes.memory_per_pending(impl, p.mem_n) for impl in impls}
    fk = sizes["futurekit"]
    cc = sizes.get("concurrent")
    note = "tracemalloc, shared callback function"
    if "torch" in sizes:
        note += f"; torch not comparable (C++ heap is invisible: {sizes['torch']:.0f} B traced)"
    return Row("memory per pending future with one callback", fk, None, cc, None,
               _ratio(cc, fk), f"≤ {MEMORY_B:g} B", fk <= MEMORY_B, note, "B", "max",
               MEMORY_B)  # fmt: skip


def _chain_row(p: Plan) -> Row:
    res = probes.long_chain(p.long_links)
    budget_mb = CHAIN_PEAK_MB_PER_MILLION_LINKS * p.long_links / 1_000_000
    peak_mb = res.peak_bytes / 1e6 if res.peak_bytes >= 0 else None
    returned = 0 <= res.left_bytes < max(1 << 20, res.peak_bytes // 100)
    note = (
        f"completed in {res.total_s:.2f} s (build {res.build_s:.2f} s); "
        f"{res.peak_bytes / res.links:.0f} B/link; after: {res.left_bytes / 1024:+.0f} KiB "
        f"({'returned' if returned else 'NOT returned'})"
    )
    if peak_mb is None:
        note += "; peak not measured: tracemalloc was already tracing"
    if p.torch_crash_links:
        note += "; " + probes.torch_chain_crash(p.torch_crash_links)
    target = f"completes; peak < {budget_mb:g} MB; memory returns"
    if p.long_links != 1_000_000:
        target += f" ({CHAIN_PEAK_MB_PER_MILLION_LINKS:g} MB per 10⁶ links)"
    met = res.value_ok and returned and peak_mb is not None and peak_mb < budget_mb
    return Row(f"{p.long_links:,}-link chain, peak memory", peak_mb, None, None, None, None,
               target, met, note, "MB", "max", budget_mb)  # fmt: skip


def _device_rows(p: Plan) -> list[Row]:
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
            f"; plain pickle.dumps: {res.pickle_s * _US:,.0f} µs "
            f"({res.pickle_s / res.walk_s:.1f}{_TIMES} the walk)"
        )
    if res.note:
        walk_note += "; " + res.note
    return [
        Row(f"device path (sim): set_result + wait, {n} buffers", set_wait, None, None,
            None, None, "report µs", None, dev_note),
        Row(f"value walk vs pickling, {n} buffers", walk, extract, None, speed, None,
            f"{_GE} {WALK_SPEEDUP:g}{_TIMES}", None if speed is None else speed >= WALK_SPEEDUP,
            walk_note, "µs", "speedup", WALK_SPEEDUP),
    ]  # fmt: skip


def error_row(case: str, exc: BaseException) -> Row:
    """The row of a case that raised: its note starts with ``error:``."""
    return Row(case, None, None, None, None, None, "", None,
               f"error: {type(exc).__name__}: {exc}")  # fmt: skip


def run(quick: bool = False, progress: Progress | None = None, *, tiny: bool = False) -> list[Row]:
    """Run every case and return the table's rows.

    Args:
        quick: fewer rounds and smaller sizes (under a minute on two cores); the
            long chain has 100,000 links instead of 1,000,000.
        progress: called with a line of text before each case.
        tiny: minimal sizes and one round (for tests: the figures mean nothing).

    Returns:
        One row per case, in the table's order; a case that raised gives a row whose
        note starts with ``error:``.

    Raises:
        TypeError: ``quick`` or ``tiny`` is not a bool, or ``progress`` not callable.
    """
    if not isinstance(quick, bool) or not isinstance(tiny, bool):
        raise TypeError(f"quick and tiny must be bools, got {quick!r} and {tiny!r}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable taking a str, or None, got {progress!r}")
    plan = PLANS["tiny" if tiny else "quick" if quick else "full"]
    say: Progress = progress if progress is not None else (lambda _msg: None)
    say("loading implementations (importing torch if present)")
    impls = cases.available_impls()
    steps: list[tuple[str, Callable[[], list[Row]]]] = [
        (case.name.format(**vars(plan)),
         functools.partial(lambda c: [_speed_row(c, impls, plan)], case))
        for case in SPEED_CASES
    ]  # fmt: skip
    steps += [
        ("import futurekit", lambda: [_import_row(plan)]),
        ("memory per pending future", lambda: [_memory_row(impls, plan)]),
        (f"{plan.long_links:,}-link chain", lambda: [_chain_row(plan)]),
        ("device path (sim) and value walk", lambda: _device_rows(plan)),
        ("device future on a no-op backend (CPU proxy)",
         lambda: device_proxy.device_proxy_rows(plan.create_n, plan.dev_buffers, plan.rounds)),
    ]  # fmt: skip
    rows: list[Row] = []
    frozen = _freeze_the_heap()
    try:
        for i, (name, step) in enumerate(steps, 1):
            say(f"[{i}/{len(steps)}] {name}")
            try:
                rows.extend(step())
            except Exception as exc:  # one broken case must not lose the others
                logger.warning("benchmark case %r failed", name, exc_info=True)
                rows.append(error_row(name, exc))
    finally:
        if frozen:
            gc.unfreeze()
    return rows


def _freeze_the_heap() -> bool:
    """Hide what is alive now from the garbage collector until ``gc.unfreeze()``.

    Every sample starts with a ``gc.collect()`` (as ``timeit`` runs with a clean
    heap); with torch imported that walks its ~180,000 objects, ~0.1 s each time.
    Frozen, they are skipped: a collection sees only what the benchmark made, and
    the timings are unchanged (the collector is off during each sample). Returns
    whether it froze (not when the caller had frozen objects itself).
    """
    if gc.get_freeze_count():
        return False
    gc.collect()
    gc.freeze()
    return True
