"""Subprocess script for ``test_robust_signals.py``: callback-heavy work under SIGINT storms.

Usage: ``python _sigint_worker.py RUNS SEED``. Each run does random callback-heavy
work in the main thread while a helper thread sends SIGINT to it every ~1 ms and a
completer thread completes futures the main thread waits on. KeyboardInterrupts are
caught (several per run); then the signals stop, every outstanding future is
completed or cancelled and waited on, and the invariants are checked. One JSON line
with the counts is printed at the end.

Counting callbacks: every counted ``add_done_callback`` is a *builtin* (``list.append``),
so an interrupt can only be raised after its effect (CPython checks for signals after
a call returns), never between "called" and "counted". A registration counts as
*confirmed* only if ``add_done_callback`` returned normally; an unconfirmed one may
have been registered or not, so only "at most once" is checked for it.
"""

from __future__ import annotations

import json
import operator
import queue
import random
import signal
import sys
import threading
import time
import traceback
from typing import Any

from futurekit import Future, InvalidStateError, collect_all
from futurekit.core import _completion, _trampoline

ARMED = [False]
#: Step kinds, weighted: few blocking waits, so that most signals land in completions.
KINDS = (0, 0, 0, 1, 1, 2, 3, 4, 4, 5, 5, 6, 6, 7, 7, 7, 8, 8, 8)


def _handler(signum: int, frame: Any) -> None:
    # Not in one_run's own loop and handlers: an interrupt there (CPython 3.13 checks
    # for signals at more places) would test this harness, not futurekit. A handler run
    # at the entry of this one (a second signal) looks where this one was.
    while frame is not None and frame.f_code is _handler.__code__:
        frame = frame.f_back
    if ARMED[0] and (frame is None or frame.f_code is not one_run.__code__):
        raise KeyboardInterrupt


class Run:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.roots: list[Future] = []  # futures created here: cleanup completes them
        self.cbs: list[list] = []  # [future, calls, confirmed]
        self.links: list[tuple[Future, Future]] = []  # (parent, then-child)
        self.gathers: list[tuple[list[Future], Future]] = []  # (inputs, collect_all result)
        self.unwraps: list[tuple[Future, Future, Future]] = []  # (parent, inner, child)
        self.to_complete: queue.SimpleQueue = queue.SimpleQueue()

    # -- building blocks (each may be interrupted anywhere) ------------------------
    def new(self) -> Future:
        f = Future()
        self.roots.append(f)
        return f

    def counted(self, f: Future) -> None:
        calls: list = []
        entry = [f, calls, False]
        self.cbs.append(entry)
        f.add_done_callback(calls.append)
        entry[2] = True

    def link(self, f: Future, fn) -> Future:
        child = f.then(fn)
        self.links.append((f, child))
        return child

    def step(self) -> None:
        rng = self.rng
        kind = rng.choice(KINDS)
        if kind == 0:  # a chain of then() with counted callbacks, completed here
            root = self.new()
            node = root
            for _ in range(rng.randint(1, 30)):
                self.counted(node)
                node = self.link(node, operator.methodcaller("value"))
            self.counted(node)
            root.set_result(rng.random())
        elif kind == 1:  # nested set_result inside callbacks (a fan of futures)
            a, b, c = self.new(), self.new(), self.new()
            a.add_done_callback(lambda f: b.set_result(1))
            b.add_done_callback(lambda f: c.set_result(2))
            for f in (a, b, c):
                for _ in range(rng.randint(1, 4)):
                    self.counted(f)
            self.link(c, operator.methodcaller("value"))
            a.set_result(1)
        elif kind == 2:  # collect_all over futures completed here and by the completer
            ins = [self.new() for _ in range(rng.randint(1, 12))]
            res = collect_all(ins)
            self.gathers.append((ins, res))
            self.counted(res)
            for f in ins:
                self.counted(f)
                if rng.random() < 0.5:
                    f.set_result(0)
                else:
                    self.to_complete.put(f)
            res.wait(timeout=2)
        elif kind == 3:  # wait on a future the completer thread completes
            f = self.new()
            for _ in range(rng.randint(0, 3)):
                self.counted(f)
            self.link(f, operator.methodcaller("value"))
            self.to_complete.put(f)
            f.wait(timeout=2)
        elif kind == 4:  # cancellation with registrations
            f = self.new()
            for _ in range(rng.randint(1, 5)):
                self.counted(f)
                self.link(f, operator.methodcaller("done"))
            f.cancel()
        elif kind == 5:  # then / add_done_callback on a completed future
            f = self.new()
            f.set_result(2)
            for _ in range(rng.randint(1, 5)):
                self.counted(f)
                self.link(f, operator.methodcaller("value"))
        elif kind == 7:  # many small collect_all: internal callbacks only
            for _ in range(rng.randint(5, 40)):
                ins = [self.new(), self.new()]
                res = collect_all(ins)
                self.gathers.append((ins, res))
                ins[0].set_result(0)
                ins[1].set_result(1)
        elif kind == 8:  # many small unwraps: internal forwarders only
            for _ in range(rng.randint(5, 40)):
                p, inner = self.new(), self.new()
                child = p.then(lambda _f, inner=inner: inner, unwrap=True)
                self.unwraps.append((p, inner, child))
                inner.set_result(3)
                p.set_result(None)
        else:  # then(unwrap=True) following another future
            p, inner = self.new(), self.new()
            child = p.then(lambda _f: inner, unwrap=True)
            self.unwraps.append((p, inner, child))
            self.counted(child)
            p.set_result(None)
            inner.set_result(3)


def one_run(rng: random.Random, stats: dict, main_id: int) -> None:
    run = Run(rng)
    stop = threading.Event()

    def sender() -> None:
        r = random.Random(rng.random())
        while not stop.is_set():
            time.sleep(r.uniform(0.0002, 0.002))
            if stop.is_set():
                break
            signal.pthread_kill(main_id, signal.SIGINT)

    def completer() -> None:
        while True:
            f = run.to_complete.get()
            if f is None:
                break
            try:
                f.set_result(1)
            except InvalidStateError:
                pass

    threads = [threading.Thread(target=sender), threading.Thread(target=completer)]
    for t in threads:
        t.start()
    interrupts = 0
    target = rng.randint(1, 8)
    steps = 0
    try:
        ARMED[0] = True
        while interrupts < target and steps < 300:
            try:
                steps += 1
                run.step()
            except KeyboardInterrupt:
                interrupts += 1
            except TimeoutError as exc:  # a wait in a step: the completion was lost
                stats["step_timeouts"] += 1
                note(stats, f"wait in a step timed out: {exc}")
    except KeyboardInterrupt:  # landed in the loop's own bookkeeping
        interrupts += 1
    finally:
        while True:
            try:
                ARMED[0] = False
                stop.set()
                run.to_complete.put(None)
                for t in threads:
                    t.join()
                break
            except KeyboardInterrupt:
                interrupts += 1
        stats["interrupts"] += interrupts
        stats["steps"] += steps
        cleanup_and_check(run, stats)


def cleanup_and_check(run: Run, stats: dict) -> None:
    # The thread uses the core again (a completion with a callback): it runs what an
    # interrupt left on its pending stack (the pure core's documented window; never with
    # the accelerator). Counted, allowed; what is still left after it is a failure.
    stats["deferred"] += len(_trampoline.state().pending)
    probe = Future()
    probe.add_done_callback(lambda f: None)
    probe.set_result(None)
    # clean-up: complete or cancel every outstanding future, then wait on all of them
    for i, f in enumerate(run.roots):
        if not f.done():
            try:
                if i % 2:
                    f.set_result(None)
                else:
                    f.cancel()
            except InvalidStateError:
                pass
    everything = list(run.roots)
    everything += [c for _, c in run.links]
    everything += [r for _, r in run.gathers]
    everything += [c for _, _, c in run.unwraps]
    everything += [e[0] for e in run.cbs]
    for f in everything:
        try:
            # a generous timeout for the first hang, then short ones (one hang is enough)
            f.wait(timeout=0.05 if stats["hangs"] else 2)
        except TimeoutError:
            stats["hangs"] += 1
            note(stats, f"wait timed out (hang): {f!r}")
        except BaseException:  # failed / cancelled futures: fine
            pass

    if _completion.lock.acquire(blocking=False):
        _completion.lock.release()
    else:
        stats["lock_held"] += 1
        note(stats, "the global lock is held after clean-up")
        return
    if _trampoline.has_queued_work():
        stats["queued_left"] += 1
        note(stats, f"queued work left: {len(_trampoline.state().pending)} batch(es)")
    for f in everything:
        if not f.done():
            stats["not_done"] += 1
            note(stats, f"not done after clean-up: {f!r}")
    for f, calls, confirmed in run.cbs:
        if len(calls) > 1:
            stats["dup"] += 1
            note(stats, f"callback ran more than once: {len(calls)} times on {f!r}")
        elif confirmed and f.done() and not calls:
            stats["lost"] += 1
            note(stats, f"confirmed callback never ran: on done {f!r}")
        stats["callbacks"] += 1
    for parent, child in run.links:
        if parent.done() and not child.done():
            stats["children_not_done"] += 1
            note(stats, f"then-child pending: parent {parent!r}")
    for ins, res in run.gathers:
        if all(f.done() for f in ins) and not res.done():
            stats["children_not_done"] += 1
            note(stats, "collect_all result pending: all inputs are done")
    for parent, inner, child in run.unwraps:
        if parent.done() and inner.done() and not child.done():
            stats["children_not_done"] += 1
            note(stats, "unwrap child pending: parent and inner are done")


def note(stats: dict, what: str) -> None:
    kind = what.split(":")[0][:40]
    seen = stats["notes"].setdefault(kind, [])
    if len(seen) < 2:
        seen.append(what)


def main() -> None:
    runs, seed = int(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(seed)
    signal.signal(signal.SIGINT, _handler)
    # Hand the GIL over often, so the sender's signals arrive at random points of the
    # main thread's work (with the default 5 ms, they arrive mostly while it blocks).
    sys.setswitchinterval(2e-5)
    main_id = threading.get_ident()
    stats: dict = dict.fromkeys(
        (
            "runs",
            "interrupts",
            "steps",
            "callbacks",
            "hangs",
            "lock_held",
            "lost",
            "dup",
            "not_done",
            "children_not_done",
            "queued_left",
            "step_timeouts",
            "deferred",
        ),
        0,
    )
    stats["notes"] = {}
    stats["errors"] = []
    for _ in range(runs):
        try:
            one_run(rng, stats, main_id)
        except Exception:  # a bug in the worker or an unexpected error from futurekit
            stats["errors"].append(traceback.format_exc()[-2000:])
        stats["runs"] += 1
    from futurekit.core._accelerator import status

    stats["core"] = status
    print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
