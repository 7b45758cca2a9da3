"""The compiled accelerator (``futurekit.core._speedups``) against the pure-Python core.

Every other core test runs with whichever core is loaded; CI runs them once with the
accelerator and once with ``FUTUREKIT_PURE_PYTHON=1``. This module checks what is
specific to the accelerator: its fast paths keep the reference semantics (the same
trace as the pure-Python core, in a subprocess each), and its fallbacks engage.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import pytest

from futurekit import Future, InvalidStateError, TimeoutError
from futurekit.core import _accelerator, _completion
from thread_helpers import race_short_timeouts

pytestmark = pytest.mark.timeout(120)

SRC = str(Path(__file__).resolve().parents[2] / "src")
compiled = pytest.mark.skipif(_accelerator.speedups is None, reason=_accelerator.status)

# One script, many behaviours: its JSON trace must be the same with both cores.
SCENARIOS = textwrap.dedent(
    """
    import gc, json, logging, sys, threading
    from futurekit import Future, InvalidStateError, collect_all, wait_all
    from futurekit.core import _accelerator
    out = {"status": _accelerator.status}
    records = []
    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage().splitlines()[0])
    logging.getLogger("futurekit").addHandler(Keep())
    logging.getLogger("futurekit").propagate = False

    order = []
    f = Future()
    f.add_done_callback(lambda x: order.append(("a", x.value())))
    f.add_done_callback(lambda x: 1 / 0)
    child = f.then(lambda x: x.wait() * 2)
    f.add_done_callback(lambda x: order.append(("b", x.done())))
    f.set_result(21)
    out["order"] = order
    out["child"] = child.wait()
    out["logged"] = records[:]
    try:
        f.set_result(1)
    except InvalidStateError as exc:
        out["again"] = [type(exc).__name__, str(exc), f.value()]
    seen = []
    g = Future()
    g.add_done_callback(seen.append)
    g.add_done_callback(lambda x: (_ for _ in ()).throw(KeyboardInterrupt("stop")))
    g.add_done_callback(seen.append)
    try:
        g.set_result(0)
    except KeyboardInterrupt as exc:
        out["interrupt"] = [str(exc), len(seen), g.done()]
    try:
        Future(1)
    except TypeError as exc:
        out["positional"] = str(exc)
    try:
        Future().add_done_callback(3)
    except TypeError as exc:
        out["not_callable"] = str(exc)
    try:
        Future().value()
    except InvalidStateError as exc:
        out["early_value"] = str(exc)
    h = Future()
    h.__init__()
    out["reinit"] = [h.done(), h._state, h._cb1]
    d = Future(devices=None)
    d.set_result("x")
    out["devices_none"] = d.wait(None)
    futs = [Future() for _ in range(50)]
    all_of = collect_all(futs)
    for i, x in enumerate(futs):
        x.set_result(i)
    out["collect_all"] = [x.value() for x in all_of.wait()]
    out["wait_all"] = wait_all(futs)
    n = 3000
    chain = [Future() for _ in range(n)]
    for a, b in zip(chain, chain[1:]):
        a.add_done_callback(lambda x, b=b: b.set_result(x.value() + 1))
    chain[0].set_result(0)
    out["deep"] = chain[-1].wait()
    waited = []
    w = Future()
    t = threading.Thread(target=lambda: waited.append(w.wait(timeout=10)))
    t.start()
    while not w._waiters:
        pass
    w.set_result("woken")
    t.join(10)
    out["waiter"] = waited
    kw = Future()
    kw.add_done_callback(callback=lambda f: order.append(("kw", f.value())))
    kw_child = kw.then(callback=lambda f: f.value() * 3)
    kw.set_result(result=7)
    out["keywords"] = [order[-1], kw.wait(timeout=1), kw_child.wait(timeout=None)]
    import inspect
    out["signatures"] = {
        name: list(inspect.signature(getattr(Future, name)).parameters)
        for name in ("set_result", "wait", "value", "done", "add_done_callback", "then")
    }
    try:
        Future().set_result()
    except TypeError as exc:
        out["no_result"] = type(exc).__name__
    print(json.dumps(out))
    """
)


def _run_script(script: str, pure: bool, *args: str) -> Any:
    """Run ``script`` in a fresh interpreter on one core; its last line, as JSON."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop(_accelerator.ENV_VAR, None)
    if pure:
        env[_accelerator.ENV_VAR] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=90
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _trace(pure: bool) -> dict[str, Any]:
    result: dict[str, Any] = _run_script(SCENARIOS, pure)
    return result


def test_both_cores_give_the_same_trace() -> None:
    pure, default = _trace(pure=True), _trace(pure=False)
    assert pure.pop("status").startswith("pure Python")
    status = default.pop("status")
    assert pure == default, f"the core loaded by default ({status}) differs from pure Python"
    assert pure["order"] == [["a", 21], ["b", True], ["kw", 7]]
    assert pure["keywords"] == [["kw", 7], 7, 21]
    assert pure["signatures"]["then"] == ["self", "callback", "executor", "unwrap"]
    assert pure["child"] == 42
    assert pure["interrupt"] == ["stop", 2, True]
    assert pure["deep"] == 2999
    assert pure["waiter"] == ["woken"]


def test_the_environment_variable_selects_the_pure_core() -> None:
    assert _trace(pure=True)["status"] == f"pure Python ({_accelerator.ENV_VAR} is set)"


@compiled
def test_the_compiled_core_is_loaded() -> None:
    assert _accelerator.status == "compiled accelerator"
    assert type(Future()).__mro__[-2] is _accelerator.speedups.FutureBase
    assert _completion.lock.__enter__.__self__ is _accelerator.speedups.lock


@compiled
def test_the_lock_behaves_like_a_lock() -> None:
    lock = _completion.lock
    assert not lock.locked()
    assert lock.acquire(blocking=False)
    assert lock.locked()
    assert not lock.acquire(blocking=False)
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()
    with lock:
        assert lock.locked()
    assert not lock.locked()


@compiled
def test_a_fast_path_that_cannot_take_the_lock_waits_for_it() -> None:
    """Contention: set_result falls back to the Python path, which blocks on the lock."""
    fut: Future[int] = Future()
    calls: list[int] = []
    fut.add_done_callback(lambda f: calls.append(f.value()))
    lock = _completion.lock
    assert lock.acquire(blocking=False)
    worker = threading.Thread(target=fut.set_result, args=(7,))
    try:
        worker.start()
        time.sleep(0.05)
        assert not fut.done()  # published only under the lock
    finally:
        lock.release()
    worker.join(10)
    assert fut.done() and calls == [7]


@compiled
def test_fields_are_shared_with_the_python_core() -> None:
    fut: Future[int] = Future()
    fields = (fut._state, fut._value, fut._cb1, fut._cbs, fut._observed)
    assert fields == (0, None, None, None, False)
    fut.add_done_callback(print)
    assert fut._cb1 is print and fut._observed is True
    fut.add_done_callback(repr)
    assert fut._cbs == [repr]
    fut._state = 3  # CANCELLED, stored by the Python core: the compiled methods see it
    assert fut.done() and fut.cancelled()


def test_a_callback_error_on_the_fast_path_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    fut: Future[int] = Future()
    fut.add_done_callback(lambda f: 1 / 0)
    with caplog.at_level(logging.ERROR, logger="futurekit"):
        fut.set_result(1)
    assert any("ZeroDivisionError" in r.getMessage() for r in caplog.records)


def test_a_completed_future_in_a_cycle_is_collected() -> None:
    fut: Future[Any] = Future()
    fut.add_done_callback(lambda f: None)
    fut.set_result(fut)  # value -> the future itself
    ref = weakref.ref(fut)
    del fut
    gc.collect()
    assert ref() is None


def test_a_subclass_initialises_through_the_python_init() -> None:
    class Tagged(Future[int]):
        def __init__(self, tag: str) -> None:
            super().__init__(devices=None)
            self.tag = tag

    t = Tagged("x")
    t.set_result(3)
    assert (t.tag, t.wait()) == ("x", 3)


def test_set_result_twice_keeps_the_first_value() -> None:
    fut: Future[int] = Future()
    fut.set_result(1)
    with pytest.raises(InvalidStateError):
        fut.set_result(2)
    assert fut.wait() == 1


def test_many_threads_complete_and_register_with_nothing_lost() -> None:
    rounds, threads = 400, 8
    futs: list[Future[int]] = [Future() for _ in range(rounds)]
    counts = [0] * rounds
    lock = threading.Lock()

    def bump(f: Future[int]) -> None:
        with lock:
            counts[f.value()] += 1

    def register() -> None:
        for f in futs:
            f.add_done_callback(bump)

    def complete(part: int) -> None:
        for i in range(part, rounds, 2):
            try:
                futs[i].set_result(i)
            except InvalidStateError:
                pass

    workers = [threading.Thread(target=register) for _ in range(threads)]
    workers += [threading.Thread(target=complete, args=(i % 2,)) for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert counts == [threads] * rounds


# -- blocking wait() (the compiled accelerator's futex waiter on Linux) ------------------


def test_a_timed_out_wait_leaves_no_waiter_and_the_future_usable() -> None:
    fut: Future[int] = Future()
    with pytest.raises(TimeoutError, match=r"within 0\.05 seconds"):
        fut.wait(timeout=0.05)
    assert not fut._waiters  # the waiter was taken back
    fut.set_result(5)
    assert fut.wait(timeout=1) == 5


def test_every_waiting_thread_wakes_with_the_value_or_the_error() -> None:
    for outcome in ("value", "error", "cancel"):
        fut: Future[int] = Future()
        got: list[object] = []

        def wait(fut: Future[int] = fut, got: list[object] = got) -> None:
            try:
                got.append(fut.wait(timeout=30))
            except Exception as exc:
                got.append(type(exc).__name__)

        threads = [threading.Thread(target=wait) for _ in range(8)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while len(fut._waiters or ()) < 8 and time.monotonic() < deadline:
            time.sleep(0.001)
        if outcome == "value":
            fut.set_result(1)  # the compiled completion wakes them
        elif outcome == "error":
            fut.set_exception(ValueError("x"))  # the Python completion wakes them
        else:
            fut.cancel()
        for t in threads:
            t.join(30)
        expected = {"value": 1, "error": "ValueError", "cancel": "CancelledError"}[outcome]
        assert got == [expected] * 8, (outcome, got)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("how", ["signal to the thread", "interrupt_main"])
def test_ctrl_c_interrupts_a_blocked_wait(how: str) -> None:
    import _thread
    import signal

    fut: Future[int] = Future()
    main = threading.get_ident()

    def interrupt() -> None:
        time.sleep(0.2)
        if how == "interrupt_main":  # no signal: found at the next one-second re-check
            _thread.interrupt_main()
        else:
            signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        fut.wait(timeout=20)
    assert time.monotonic() - start < 5
    assert not fut._waiters  # taken back: the future is usable
    fut.set_result(3)
    assert fut.wait() == 3


def test_the_spin_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    from futurekit.core import _waiting

    monkeypatch.setenv(_waiting.SPIN_ENV_VAR, "0")
    assert _waiting.spin_us() == 0
    monkeypatch.setenv(_waiting.SPIN_ENV_VAR, "7.5")
    assert _waiting.spin_us() == 7.5
    for bad in ("fast", "-1", "nan", "1e9"):
        monkeypatch.setenv(_waiting.SPIN_ENV_VAR, bad)
        with pytest.warns(RuntimeWarning, match=_waiting.SPIN_ENV_VAR):
            assert _waiting.spin_us() == 20.0


def test_a_ping_pong_between_threads_loses_no_wake_up() -> None:
    n = 3000
    a: list[Future[int]] = [Future() for _ in range(n)]
    b: list[Future[int]] = [Future() for _ in range(n)]

    def other() -> None:
        for i in range(n):
            b[i].set_result(a[i].wait(timeout=30) + 1)

    t = threading.Thread(target=other)
    t.start()
    total = 0
    for i in range(n):
        a[i].set_result(i)
        total += b[i].wait(timeout=30)
    t.join(30)
    assert total == sum(range(1, n + 1))


def test_short_timeouts_racing_a_completion_lose_nothing() -> None:
    """Waiters time out over and over while the future completes: each sees it complete."""
    race_short_timeouts(lambda fut, t: fut.wait(timeout=t), rounds=30, count=6)


# Random programs: each core runs the same seeded programs; the traces must be equal.
RANDOM_PROGRAMS = textwrap.dedent(
    """
    import json, logging, random, sys
    from futurekit import Future, collect_all, InvalidStateError
    logging.getLogger("futurekit").disabled = True

    def program(seed):
        rng = random.Random(seed)
        trace = []
        futs = []

        def show(v):  # no addresses: futures by their index
            if isinstance(v, list):
                return [show(x) for x in v]
            if isinstance(v, Future):
                return "F" + str(next(i for i, f in enumerate(futs) if f is v))
            return repr(v)

        def cb(tag, action, target):
            def run(f):
                trace.append(("cb", tag, f.done(), f.cancelled()))
                if action == "raise":
                    raise ValueError(tag)
                if action == "complete" and target is not None:
                    try:
                        target.set_result(tag)
                    except InvalidStateError:
                        trace.append(("again", tag))
                if action == "value":
                    try:
                        return f.value()
                    except Exception as exc:
                        return type(exc).__name__
                return tag
            return run

        for step in range(40):
            op = rng.randrange(9)
            if op == 0 or not futs:
                futs.append(Future())
                continue
            f = rng.choice(futs)
            other = rng.choice(futs)
            tag = f"{seed}.{step}"
            action = rng.choice(["append", "raise", "complete", "value"])
            try:
                if op == 1:
                    f.add_done_callback(cb(tag, action, other))
                elif op == 2:
                    futs.append(f.then(cb(tag, action, other)))
                elif op == 3:
                    f.set_result(tag)
                elif op == 4:
                    f.set_exception(KeyError(tag))
                elif op == 5:
                    trace.append(("cancel", f.cancel()))
                elif op == 6:
                    futs.append(collect_all(rng.sample(futs, min(3, len(futs)))))
                elif op == 7:
                    trace.append(("wait", show(f.wait(timeout=0))))
                else:
                    trace.append(("value", show(f.value())))
            except Exception as exc:  # the future's error, a timeout, already completed
                trace.append(("raised", type(exc).__name__, str(exc)[:60]))
        for f in futs:
            if not f.done():
                f.set_result("end")
        out = []
        for f in futs:
            try:
                out.append(show(f.wait()))
            except Exception as exc:
                out.append(type(exc).__name__)
        trace.append(("final", out))
        return trace

    print(json.dumps([program(seed) for seed in range(int(sys.argv[1]))], default=str))
    """
)


def test_random_programs_give_the_same_trace_on_both_cores() -> None:
    pure = _run_script(RANDOM_PROGRAMS, True, "300")
    default = _run_script(RANDOM_PROGRAMS, False, "300")
    assert len(pure) == 300
    for seed, (a, b) in enumerate(zip(pure, default, strict=True)):
        assert a == b, f"program {seed} differs between the pure-Python and the default core"


def test_every_fast_path_returns_its_memory() -> None:
    """20,000 rounds of every fast path (and the errors and interrupts they carry)."""
    import tracemalloc

    from futurekit import collect_all

    def boom(f: Future[Any]) -> None:
        raise ValueError("x")

    def interrupt(f: Future[Any]) -> None:
        raise KeyboardInterrupt

    def noop(f: Future[Any]) -> None:
        return None

    def work() -> None:
        f: Future[int] = Future()
        f.set_result(1)
        f.wait()
        g: Future[int] = Future()
        g.add_done_callback(noop)
        g.add_done_callback(boom)
        child = g.then(noop)
        g.set_result(2)
        child.wait()
        d: Future[int] = Future()
        d.set_result(3)
        d.then(noop)
        with pytest.raises(Exception):
            d.then(boom).wait()
        inputs: list[Future[int]] = [Future() for _ in range(3)]
        gathered = collect_all(inputs)
        for x in inputs:
            x.set_result(0)
        gathered.wait()
        with pytest.raises(TimeoutError):
            Future().wait(timeout=0.00001)
        k: Future[int] = Future()
        k.add_done_callback(interrupt)
        with pytest.raises(KeyboardInterrupt):
            k.set_result(1)

    logger = logging.getLogger("futurekit")
    disabled, logger.disabled = logger.disabled, True
    try:
        for _ in range(2000):
            work()
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(20000):
                work()
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    finally:
        logger.disabled = disabled
    assert grown < 64 * 1024, f"{grown} bytes kept after 20,000 rounds"
