"""Cross-thread round trip: every waiting design, one process, variants alternated.

Protocol (same for every variant): thread A ``set(f1[i])`` then ``wait(f2[i])``; thread B
``wait(f1[i])`` then ``set(f2[i])``; i = 0..n-1 with fresh objects each round trip
(pre-allocated before the clock starts; variants built on a file descriptor reuse one
descriptor per direction). One *round* of a variant = ``--warmup`` untimed plus ``n``
timed round trips on a fresh thread pair. Rounds of all variants are interleaved (a new
random order each pass), so machine noise hits all of them alike; the table reports the
median over rounds and the ratio against torch.futures measured in the same run
(ratio > 1 = slower than torch).

Besides wall time per round trip it records, per round trip, the process CPU time (both
threads; > wall time means someone was spinning) and voluntary/involuntary context
switches (a voluntary switch = a thread went to sleep in the kernel: futex, read, ...).

Usage::

    python benchmarks/crossthread/pingpong.py                 # everything
    python benchmarks/crossthread/pingpong.py --only lock,torch --rounds 5
    python benchmarks/crossthread/pingpong.py --list
    python benchmarks/crossthread/pingpong.py --no-torch       # runs without torch
    python benchmarks/crossthread/pingpong.py --pin same       # or --pin split

It needs nothing built: the investigation's C prototypes (a futex and a condition-variable
waiter, ``floor.c``) and its drop-in ``waiter.py`` are in the git history (see REPORT.md,
"Files"); the design they led to is the compiled accelerator's waiter, measured here as
the ``futurekit`` variant when the accelerator is built (the header says which core runs).
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import queue
import random
import resource
import select
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))

Thunk = Callable[[], Any]
# A variant's factory: n -> (set_1, wait_1, set_2, wait_2, cleanup); list i is round trip i.
Lists = tuple[list[Thunk], list[Thunk], list[Thunk], list[Thunk], Thunk]

_perf = time.perf_counter


# --------------------------------------------------------------------------- variants
def _pairs(n: int, new: Callable[[], Any], set_name: str, wait_name: str) -> Lists:
    f1 = [new() for _ in range(n)]
    f2 = [new() for _ in range(n)]
    return (
        [getattr(f, set_name) for f in f1],
        [getattr(f, wait_name) for f in f1],
        [getattr(f, set_name) for f in f2],
        [getattr(f, wait_name) for f in f2],
        lambda: None,
    )


def v_torch(n: int) -> Lists:
    import torch.futures

    f1 = [torch.futures.Future() for _ in range(n)]
    f2 = [torch.futures.Future() for _ in range(n)]
    return (
        [functools.partial(f.set_result, 1) for f in f1],
        [f.wait for f in f1],
        [functools.partial(f.set_result, 1) for f in f2],
        [f.wait for f in f2],
        lambda: None,
    )


def v_futurekit(n: int) -> Lists:
    import futurekit

    f1 = [futurekit.Future() for _ in range(n)]
    f2 = [futurekit.Future() for _ in range(n)]
    return (
        [functools.partial(f.set_result, 1) for f in f1],
        [f.wait for f in f1],
        [functools.partial(f.set_result, 1) for f in f2],
        [f.wait for f in f2],
        lambda: None,
    )


def _locked() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


def v_lock(n: int) -> Lists:
    return _pairs(n, _locked, "release", "acquire")


class _LockWaiterFuture:
    """The pure-Python core's shape, minus everything else: a waiter lock per wait."""

    __slots__ = ("done", "waiters")
    _glock = threading.Lock()

    def __init__(self) -> None:
        self.done = False
        self.waiters: list[Any] | None = None

    def set(self) -> None:
        with self._glock:
            self.done = True
            waiters, self.waiters = self.waiters, None
        if waiters:
            for w in waiters:
                w.release()

    def wait(self) -> None:
        waiter = threading.Lock()
        waiter.acquire()
        with self._glock:
            if self.done:
                return
            if self.waiters is None:
                self.waiters = [waiter]
            else:
                self.waiters.append(waiter)
        waiter.acquire()


def v_lock_per_wait(n: int) -> Lists:
    return _pairs(n, _LockWaiterFuture, "set", "wait")


class _CondFuture:
    __slots__ = ("cond", "done")

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.done = False

    def set(self) -> None:
        with self.cond:
            self.done = True
            self.cond.notify_all()

    def wait(self) -> None:
        with self.cond:
            while not self.done:
                self.cond.wait()


def v_condition(n: int) -> Lists:
    return _pairs(n, _CondFuture, "set", "wait")


def v_event(n: int) -> Lists:
    return _pairs(n, threading.Event, "set", "wait")


def v_simplequeue(n: int) -> Lists:
    f1 = [queue.SimpleQueue() for _ in range(n)]
    f2 = [queue.SimpleQueue() for _ in range(n)]
    return (
        [functools.partial(q.put, 1) for q in f1],
        [q.get for q in f1],
        [functools.partial(q.put, 1) for q in f2],
        [q.get for q in f2],
        lambda: None,
    )


def _fd_variant(n: int, kind: str) -> Lists:
    if kind == "pipe":
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        set1 = functools.partial(os.write, w1, b"x")
        set2 = functools.partial(os.write, w2, b"x")
        wait1 = functools.partial(os.read, r1, 1)
        wait2 = functools.partial(os.read, r2, 1)
        fds = (r1, w1, r2, w2)
    else:
        nonblock = os.EFD_NONBLOCK if kind == "select" else 0
        e1, e2 = os.eventfd(0, nonblock), os.eventfd(0, nonblock)
        set1 = functools.partial(os.eventfd_write, e1, 1)
        set2 = functools.partial(os.eventfd_write, e2, 1)
        if kind == "select":
            sel = select.select

            def wait1(fd: int = e1) -> None:
                sel([fd], (), ())
                os.eventfd_read(fd)

            def wait2(fd: int = e2) -> None:
                sel([fd], (), ())
                os.eventfd_read(fd)

        else:
            wait1 = functools.partial(os.eventfd_read, e1)
            wait2 = functools.partial(os.eventfd_read, e2)
        fds = (e1, e2)

    def cleanup() -> None:
        for fd in fds:
            os.close(fd)

    return [set1] * n, [wait1] * n, [set2] * n, [wait2] * n, cleanup


class _SpinFuture:
    """Pure-Python spin-then-block: poll ``done`` for SPIN_S, then block on a Lock."""

    __slots__ = ("done", "lock")
    SPIN_S = 20e-6
    YIELD: Callable[..., Any] | None = None

    def __init__(self) -> None:
        self.done = False
        self.lock = _locked()

    def set(self) -> None:
        self.done = True
        self.lock.release()

    def wait(self) -> None:
        if self.done:
            return
        deadline = _perf() + self.SPIN_S
        yield_ = self.YIELD
        while _perf() < deadline:
            if yield_ is not None:
                yield_()
            if self.done:
                return
        self.lock.acquire()


def _spin_variant(spin_s: float, yield_: Callable[..., Any] | None) -> Callable[[int], Lists]:
    cls = type("Spin", (_SpinFuture,), {"__slots__": (), "SPIN_S": spin_s, "YIELD": yield_})
    return lambda n: _pairs(n, cls, "set", "wait")


def _with_switchinterval(interval: float, inner: Callable[[int], Lists]) -> Callable[[int], Lists]:
    def build(n: int) -> Lists:
        old = sys.getswitchinterval()
        sys.setswitchinterval(interval)
        s1, w1, s2, w2, cleanup = inner(n)

        def restore() -> None:
            cleanup()
            sys.setswitchinterval(old)

        return s1, w1, s2, w2, restore

    return build


def _variants(no_torch: bool) -> dict[str, Callable[[int], Lists]]:
    v: dict[str, Callable[[int], Lists]] = {}
    if not no_torch:
        try:
            import torch.futures  # noqa: F401

            v["torch"] = v_torch
        except ImportError:
            pass
    try:  # futurekit from this checkout
        sys.path.insert(0, os.path.join(HERE, "..", "..", "src"))
        import futurekit  # noqa: F401

        v["futurekit"] = v_futurekit
    except ImportError:  # the rest still runs
        pass
    v["lock"] = v_lock
    v["lock-per-wait"] = v_lock_per_wait
    v["condition"] = v_condition
    v["event"] = v_event
    v["simplequeue"] = v_simplequeue
    if hasattr(os, "eventfd"):
        v["eventfd-read"] = lambda n: _fd_variant(n, "eventfd")
        v["eventfd-select"] = lambda n: _fd_variant(n, "select")
    v["pipe-read"] = lambda n: _fd_variant(n, "pipe")
    v["pyspin20-noyield"] = _spin_variant(20e-6, None)
    v["pyspin20-sleep0"] = _spin_variant(20e-6, functools.partial(time.sleep, 0))
    v["pyspin20-sched_yield"] = _spin_variant(20e-6, os.sched_yield)
    v["lock@si=50us"] = _with_switchinterval(50e-6, v_lock)
    v["lock@si=1us"] = _with_switchinterval(1e-6, v_lock)
    v["pyspin20-noyield@si=1us"] = _with_switchinterval(1e-6, _spin_variant(20e-6, None))
    return v


# --------------------------------------------------------------------------- harness
_PIN: tuple[set[int], set[int]] | None = None  # (CPUs of thread A, CPUs of thread B)


def _pin(cpus: set[int] | None) -> None:
    if cpus is not None:
        os.sched_setaffinity(0, cpus)  # 0 = the calling thread on Linux


def run_round(
    build: Callable[[int], Lists], n: int, warmup: int
) -> tuple[float, float, float, float]:
    """One round: (wall s, cpu s, voluntary cs, involuntary cs) per round trip."""
    total = n + warmup
    pin_a, pin_b = _PIN if _PIN is not None else (None, None)
    _pin(pin_a)
    set1, wait1, set2, wait2, cleanup = build(total)
    failure: list[BaseException] = []

    def other() -> None:
        try:
            _pin(pin_b)
            for w, s in zip(wait1, set2, strict=True):
                w()
                s()
        except BaseException as exc:  # pragma: no cover - reported below
            failure.append(exc)

    thread = threading.Thread(target=other, daemon=True)
    thread.start()
    for s, w in zip(set1[:warmup], wait2[:warmup], strict=True):
        s()
        w()
    timed_set, timed_wait = set1[warmup:], wait2[warmup:]
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    c0 = time.process_time()
    t0 = _perf()
    for s, w in zip(timed_set, timed_wait, strict=True):
        s()
        w()
    t1 = _perf()
    c1 = time.process_time()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    thread.join(60)
    cleanup()
    if failure or thread.is_alive():
        raise RuntimeError(f"variant failed: {failure or 'B thread stuck'}")
    return (
        (t1 - t0) / n,
        (c1 - c0) / n,
        (ru1.ru_nvcsw - ru0.ru_nvcsw) / n,
        (ru1.ru_nivcsw - ru0.ru_nivcsw) / n,
    )


def _load() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=3000, help="timed round trips per round")
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--only", default="", help="comma-separated variant names")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument(
        "--pin",
        choices=("none", "same", "split"),
        default="none",
        help="same: both threads on CPU 0 (no cross-CPU wake-up); split: A on CPU 0, B on CPU 1",
    )
    args = ap.parse_args(argv)
    global _PIN
    if args.pin == "same":
        _PIN = ({0}, {0})
    elif args.pin == "split":
        _PIN = ({0}, {1})

    variants = _variants(args.no_torch)
    if args.list:
        print("\n".join(variants))
        return 0
    if args.only:
        wanted = [s.strip() for s in args.only.split(",") if s.strip()]
        missing = [w for w in wanted if w not in variants]
        if missing:
            print(f"unknown/unavailable variants: {missing}", file=sys.stderr)
            return 2
        variants = {k: variants[k] for k in wanted}

    rng = random.Random(args.seed)
    names = list(variants)
    results: dict[str, list[tuple[float, float, float, float]]] = {k: [] for k in names}
    load_before = _load()
    t_start = time.time()
    for _ in range(args.rounds):
        rng.shuffle(names)
        for name in names:
            results[name].append(run_round(variants[name], args.n, args.warmup))
    elapsed = time.time() - t_start
    load_after = _load()

    def med(name: str, k: int) -> float:
        return statistics.median(r[k] for r in results[name])

    ref = med("torch", 0) if "torch" in results else None
    core = "-"
    if "futurekit" in results:
        from futurekit.core import _accelerator

        core = _accelerator.status
    print(
        f"# python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"futurekit core: {core}; "
        f"switchinterval {sys.getswitchinterval()}s; pin={args.pin}; "
        f"n={args.n} x {args.rounds} rounds (interleaved), {elapsed:.1f}s; "
        f"loadavg before {load_before}, after {load_after}"
    )
    print(
        f"{'variant':30s} {'median us':>9s} {'min us':>7s} {'max us':>7s} {'vs torch':>8s} "
        f"{'cpu us':>7s} {'vol cs':>6s} {'invol':>6s}"
    )
    order = sorted(results, key=lambda k: med(k, 0))
    for name in order:
        walls = [r[0] for r in results[name]]
        ratio = f"{med(name, 0) / ref:8.2f}" if ref else f"{'-':>8s}"
        print(
            f"{name:30s} {med(name, 0) * 1e6:9.2f} {min(walls) * 1e6:7.2f} {max(walls) * 1e6:7.2f} "
            f"{ratio} {med(name, 1) * 1e6:7.2f} {med(name, 2):6.2f} {med(name, 3):6.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
