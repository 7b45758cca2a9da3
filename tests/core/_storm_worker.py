"""Subprocess script for ``test_robust_storm.py``: a dense SIGINT storm over internal callbacks.

Usage: ``python _storm_worker.py GROUPS SEED``. The main thread builds ``GROUPS`` small
groups of work whose completion depends on the core's internal callbacks only
(``collect_all`` counters, ``then(unwrap=True)`` forwarders, nested unwraps), while a
helper thread sends SIGINT to it every 50-500 µs (a KeyboardInterrupt each, caught
by the loop). When the work is done the signals stop and the checks run:

* ``lost``: a result whose inputs are all done stays pending, even after the thread
  uses the core again (one completion with a callback, which runs anything the
  interrupts left on its pending stack) -- the bug this storm is here to catch;
* ``deferred``: such a result was pending before that use and done after (allowed:
  the pure core's documented window, a second interrupt in the few bytecodes of an
  exception handler);
* ``dup``: a callback on a result ran twice; ``wrong``: a result with a wrong value.

One JSON line with the counts is printed at the end.
"""

from __future__ import annotations

import json
import random
import signal
import sys
import threading
import time
from typing import Any

from futurekit import Future, collect_all
from futurekit.core import _trampoline

ARMED = [False]
#: Chooses when a second signal follows the one being handled.
FOLLOW = random.Random(0)


def _handler(signum: int, frame: Any) -> None:
    # Not in the harness's own loop (CPython 3.13 checks signals at more places); a
    # handler run at the entry of this one (a second signal) looks where this one was.
    while frame is not None and frame.f_code is _handler.__code__:
        frame = frame.f_back
    if ARMED[0] and (frame is None or frame.f_code is not main.__code__):
        if FOLLOW.random() < 0.5:  # Ctrl-C pressed twice: the second lands 1-30 µs later
            signal.setitimer(signal.ITIMER_REAL, FOLLOW.uniform(1e-6, 30e-6))
        raise KeyboardInterrupt


def _plus_ten(fut: Future[int]) -> int:
    return fut.value() + 10


class Group:
    """One piece of work: its inputs, and the results that depend on them (watched)."""

    __slots__ = ("cleaned", "inputs", "watched")

    def __init__(self) -> None:
        self.cleaned = False  # clean-up completed one of its inputs
        self.inputs: list[Future[Any]] = []
        #: ``[result, expected value, its callback's calls, registration confirmed]``
        self.watched: list[list[Any]] = []

    def watch(self, result: Future[Any], expected: Any) -> None:
        calls: list[Any] = []
        entry = [result, expected, calls, False]
        self.watched.append(entry)  # one call: recorded whole, or not at all
        result.add_done_callback(calls.append)  # a builtin: runs to completion
        entry[3] = True


def build(rng: random.Random, group: Group) -> None:
    """Start one group (any line may be interrupted)."""
    kind = rng.randrange(4)
    if kind == 0:  # collect_all over inputs completed here
        ins: list[Future[int]] = [Future() for _ in range(rng.randint(2, 4))]
        group.inputs += ins
        group.watch(collect_all(ins), "all")
        for i, f in enumerate(ins):
            f.set_result(i)
    elif kind == 1:  # unwrap following a completed inner future
        p: Future[None] = Future()
        inner: Future[int] = Future()
        group.inputs += [p, inner]
        group.watch(p.then(lambda f: inner, unwrap=True), 3)
        inner.set_result(3)
        p.set_result(None)
    elif kind == 2:  # unwrap following a future completed later
        p2: Future[None] = Future()
        inner2: Future[int] = Future()
        group.inputs += [p2, inner2]
        group.watch(p2.then(lambda f: inner2, unwrap=True), 4)
        p2.set_result(None)
        inner2.set_result(4)
    else:  # nested: an unwrap of a then-chain, gathered with its source
        p3: Future[int] = Future()
        group.inputs.append(p3)
        nested = p3.then(lambda f: f.then(_plus_ten), unwrap=True)
        group.watch(nested, 15)
        group.watch(collect_all([p3, nested]), "all")
        p3.set_result(5)


def main() -> None:
    groups_wanted, seed = int(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(seed)
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGALRM, _handler)
    FOLLOW.seed(seed)
    sys.setswitchinterval(2e-5)  # the sender's signals land at random points of the work
    target = threading.get_ident()
    stop = threading.Event()

    def sender() -> None:
        r = random.Random(seed + 1)
        while not stop.is_set():
            time.sleep(r.uniform(50e-6, 500e-6))
            signal.pthread_kill(target, signal.SIGINT)

    groups: list[Group] = []
    interrupts = 0
    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    ARMED[0] = True
    while len(groups) < groups_wanted:
        try:
            group = Group()
            groups.append(group)
            build(rng, group)
        except KeyboardInterrupt:
            interrupts += 1
    while True:  # stop the storm (a signal may still land here)
        try:
            ARMED[0] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            stop.set()
            thread.join()
            break
        except KeyboardInterrupt:
            interrupts += 1
    # finish what the interrupts cut short: complete every input still pending
    for group in groups:
        for f in group.inputs:
            if not f.done():
                group.cleaned = True
                try:
                    f.set_result(0)
                except Exception:
                    pass
    stats = {"groups": len(groups), "interrupts": interrupts, "lost": 0, "deferred": 0}
    stats.update(dup=0, wrong=0, results=0)
    pending_before = {id(w[0]) for g in groups for w in g.watched if not w[0].done()}
    probe: Future[None] = Future()  # the thread uses the core again: leftovers run
    probe.add_done_callback(lambda f: None)
    probe.set_result(None)
    notes: list[str] = []
    for group in groups:
        for result, expected, calls, confirmed in group.watched:
            stats["results"] += 1
            if not result.done():
                stats["lost"] += 1
                if len(notes) < 3:
                    notes.append(f"pending although its inputs are done: {result!r}")
                continue
            if id(result) in pending_before:
                stats["deferred"] += 1
            if len(calls) > 1 or (confirmed and not calls):
                stats["dup"] += 1
            try:
                value = result.value()
            except Exception:  # failed with an interrupt's CallbackError: not its value
                continue
            if expected == "all":
                ok = isinstance(value, list) and all(f.done() for f in value)
            else:
                ok = value == expected or group.cleaned
            if not ok:
                stats["wrong"] += 1
    stats["queued_left"] = len(_trampoline.state().pending)
    stats["depth_left"] = _trampoline.state().depth
    if stats["queued_left"]:
        notes.append(repr(_trampoline.state().pending[:3])[:600])
    from futurekit.core._accelerator import status

    print(json.dumps({**stats, "core": status, "notes": notes}), flush=True)


if __name__ == "__main__":
    main()
