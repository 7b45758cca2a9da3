"""Ctrl-C at any moment: nothing hangs, the lock is never left held, nothing is lost.

Two angles:

* **Random SIGINT storms** (the issue's test): subprocesses run callback-heavy work
  while a helper thread sends SIGINT to their main thread every ~1 ms; after each run
  everything outstanding is completed or cancelled and waited on, then the invariants
  are checked (``_sigint_worker.py``). At least 200 runs per session.
* **Every interrupt point, deterministically**: a KeyboardInterrupt is injected at the
  entry of the n-th Python function called during a completion (``sys.settrace``),
  for every n. CPython checks for a pending signal at every function entry
  (``RESUME``), so each of these points is one where a real Ctrl-C can land.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import futurekit
from futurekit import Future, collect_all, collect_any
from futurekit.core import _accelerator, _completion, _trampoline

from .conftest import pure_python_only

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

HERE = Path(__file__).resolve().parent
SRC = str(HERE.parents[1] / "src")
WORKER = str(HERE / "_sigint_worker.py")

#: Subprocesses, runs per subprocess, subprocesses at a time.
PROCS, RUNS, PARALLEL = 10, 25, 2
COUNTS = (
    "runs",
    "interrupts",
    "hangs",
    "lock_held",
    "lost",
    "dup",
    "not_done",
    "children_not_done",
    "queued_left",
    "step_timeouts",
)


def _spawn(seed: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [sys.executable, WORKER, str(RUNS), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # interrupts ignored in threading's weakref callbacks
        text=True,
        env=env,
    )


def _collect(proc: subprocess.Popen[str], seed: int) -> dict[str, Any]:
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"seed": seed, "hung_process": 1}
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"seed": seed, "crashed": proc.returncode, "out": out[-2000:]}
    report: dict[str, Any] = json.loads(lines[-1])
    report["seed"] = seed
    return report


@pytest.mark.timeout(300)
def test_sigint_storm_during_callback_heavy_work() -> None:
    reports: list[dict[str, Any]] = []
    seeds = list(range(1000, 1000 + PROCS))
    for i in range(0, PROCS, PARALLEL):
        batch = [(seed, _spawn(seed)) for seed in seeds[i : i + PARALLEL]]
        reports += [_collect(proc, seed) for seed, proc in batch]

    broken = [r for r in reports if "hung_process" in r or "crashed" in r or r.get("errors")]
    assert not broken, f"subprocesses that hung, crashed or hit an error: {broken}"
    totals = {key: sum(r[key] for r in reports) for key in COUNTS}
    notes = {f"seed {r['seed']}": r["notes"] for r in reports if r["notes"]}
    notes = dict(list(notes.items())[:2])  # examples
    assert totals["runs"] >= 200
    # the subprocesses ran the core this process runs (CI runs this with both)
    assert {r["core"] for r in reports} == {_accelerator.status}
    assert totals["interrupts"] >= totals["runs"], totals  # the signals did land
    bad = {key: totals[key] for key in COUNTS[2:] if totals[key]}
    assert not bad, f"invariants broken under SIGINT: {bad}; totals {totals}; examples {notes}"


# -- deterministic: an interrupt at the entry of every function, in turn -------------------
_OURS = (str(Path(futurekit.__file__).parent), __file__)


class _Inject:
    """A trace function raising KeyboardInterrupt when the ``nth`` call of futurekit starts.

    Only calls of futurekit's functions and of this module's callbacks are counted
    (not threading's or pytest's).
    """

    def __init__(self, nth: int) -> None:
        self.nth = nth
        self.seen = 0
        self.where = ""

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        if event != "call" or not frame.f_code.co_filename.startswith(_OURS):
            return None
        self.seen += 1
        if self.seen == self.nth:
            sys.settrace(None)
            self.where = f"{frame.f_code.co_qualname} ({Path(frame.f_code.co_filename).name})"
            raise KeyboardInterrupt
        return None


class _Scenario:
    """A future with every kind of registration, completed with an interrupt injected."""

    def __init__(self, others_first: bool) -> None:
        self.others_first = others_first
        self.root: Future[int] = Future()
        self.other: Future[int] = Future()
        self.inner: Future[int] = Future()
        self.calls: list[list[Future[Any]]] = [[], [], []]
        self.root.add_done_callback(self.calls[0].append)
        self.child = self.root.then(_plus_one)
        self.root.add_done_callback(self.calls[1].append)
        self.unwrapped = self.root.then(self._to_inner, unwrap=True)
        self.gathered = collect_all([self.root, self.other])
        self.first = collect_any([self.root, self.other])
        self.grandchild = self.child.then(_plus_one)
        self.child.add_done_callback(self.calls[2].append)
        self.waiter_woke = threading.Event()
        self.waiter = threading.Thread(target=self._wait, daemon=True)
        self.waiter.start()
        if others_first:  # then nothing is outstanding after the root's completion
            self.other.set_result(2)
            self.inner.set_result(3)

    def _to_inner(self, fut: Future[int]) -> Future[int]:
        return self.inner

    def _wait(self) -> None:
        try:
            self.root.wait()
        except Exception:  # cancelled or failed: woken all the same
            pass
        self.waiter_woke.set()

    def complete(self, op: str) -> None:
        if op == "set_result":
            self.root.set_result(1)
        elif op == "cancel":
            self.root.cancel()
        else:
            self.root.set_exception(ValueError("boom"))

    def clean_up(self) -> None:
        """What a program does after Ctrl-C: complete what is outstanding (then wait on all)."""
        if not self.root.done():
            self.root.cancel()
        for fut in (self.other, self.inner):
            if not fut.done():
                fut.set_result(0)

    def problems(self) -> list[str]:
        found = []
        if not _completion.lock.acquire(blocking=False):
            return ["the global lock is held"]
        _completion.lock.release()
        futs = {
            "root": self.root,
            "child": self.child,
            "grandchild": self.grandchild,
            "unwrapped": self.unwrapped,
            "collect_all": self.gathered,
            "collect_any": self.first,
        }
        for name, fut in futs.items():
            try:
                fut.wait(timeout=0.3)
            except futurekit.TimeoutError:
                found.append(f"{name} never completed")
            except BaseException:  # failed or cancelled: fine
                pass
        for i, calls in enumerate(self.calls):
            if len(calls) != 1:
                found.append(f"add_done_callback #{i} ran {len(calls)} times")
        if not self.waiter_woke.wait(3):
            found.append("the waiter thread did not wake")
        return found


def _plus_one(fut: Future[int]) -> int:
    return fut.value() + 1


def _calls_during(op: str, others_first: bool) -> int:
    scenario = _Scenario(others_first)
    counter = _Inject(10**9)
    sys.settrace(counter)
    try:
        scenario.complete(op)
    finally:
        sys.settrace(None)
    scenario.clean_up()
    assert not scenario.problems()
    return counter.seen


@pytest.mark.timeout(120)
@pytest.mark.parametrize("others_first", [True, False], ids=["others-first", "others-after"])
@pytest.mark.parametrize("op", ["set_result", "cancel", "set_exception"])
def test_interrupt_at_every_function_entry_during_completion(op: str, others_first: bool) -> None:
    total = _calls_during(op, others_first)
    assert total > 10
    failures = []
    for nth in range(1, total + 1):
        scenario = _Scenario(others_first)
        inject = _Inject(nth)
        sys.settrace(inject)
        try:
            scenario.complete(op)
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(None)
        scenario.clean_up()
        found = scenario.problems()
        if found:
            failures.append(f"interrupt at call #{nth}, entry of {inject.where}: {found}")
        # leave no deferred work of this scenario to the next one
        _trampoline.state().pending.clear()
    assert not failures, "\n".join(failures)


@pure_python_only
@pytest.mark.timeout(30)
def test_interrupt_at_drain_entry_still_runs_callbacks_before_it_raises() -> None:
    """Minimal case: Ctrl-C lands as ``complete()`` calls ``drain()`` (its ``RESUME``)."""
    fut: Future[int] = Future()
    calls: list[Future[int]] = []
    fut.add_done_callback(calls.append)
    original = _completion._drain

    def drain(*args: Any) -> None:  # the interrupt a signal raises at drain's entry
        _completion._drain = original
        raise KeyboardInterrupt

    _completion._drain = drain
    try:
        with pytest.raises(KeyboardInterrupt):
            fut.set_result(1)
    finally:
        _completion._drain = original
    assert fut.done()
    queued = _trampoline.has_queued_work()
    try:
        assert calls == [fut], f"the callback has not run (queued work left: {queued})"
        assert not queued
    finally:
        _trampoline.state().pending.clear()


@pytest.mark.timeout(30)
def test_interrupt_at_gather_entry_never_loses_collect_all() -> None:
    """Minimal case: Ctrl-C lands at the entry of collect_all's internal callback."""
    a: Future[int] = Future()
    b: Future[int] = Future()
    res = collect_all([a, b])
    a.set_result(1)

    def tracer(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_qualname == "_Gather.__call__":
            sys.settrace(None)
            raise KeyboardInterrupt
        return None

    sys.settrace(tracer)
    try:
        with pytest.raises(KeyboardInterrupt):
            b.set_result(2)
    finally:
        sys.settrace(None)
    assert a.done() and b.done()
    try:
        assert res.wait(timeout=1) == [a, b]
    except futurekit.TimeoutError:
        pytest.fail("collect_all's result never completes although every input is done")


@pytest.mark.timeout(30)
def test_interrupt_at_error_guard_init_leaves_no_broken_guard() -> None:
    """Ctrl-C at the entry of the never-retrieved guard's ``__init__`` (set_exception)."""
    unraisable: list[Any] = []
    fut: Future[int] = Future()

    def tracer(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_qualname == "ErrorGuard.__init__":
            sys.settrace(None)
            raise KeyboardInterrupt
        return None

    old_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        sys.settrace(tracer)
        try:
            with pytest.raises(KeyboardInterrupt):
                fut.set_exception(ValueError("boom"))
        finally:
            sys.settrace(None)
        assert fut.done()
        del fut
        gc.collect()
    finally:
        sys.unraisablehook = old_hook
    assert not [(u.exc_type, u.exc_value, u.object) for u in unraisable]
