"""Subprocess script for ``test_fuzz_cores.py``: seeded random programs, one JSON trace each.

Usage: ``python _fuzz_program.py COUNT FIRST_SEED``. The core is whichever the
environment selects (``FUTUREKIT_PURE_PYTHON``); the test runs this script on both and
requires identical output. A program is a random sequence of operations on a handful
of futures; its callbacks (registered at the top level and inside other callbacks)
note that they ran, raise errors, raise ``KeyboardInterrupt``/``SystemExit``, complete,
fail or cancel other futures (their siblings included), wait on other futures (polls,
timeouts, and waits on futures a later sibling completes), register further callbacks,
read values, and drop the last reference to an object whose finalizer uses a future.
A quarter of the futures are device futures on a backend that writes each of its
calls into the trace (events recorded and waited on, streams entered and left,
allocator hints), and results are often its buffers: the compiled core completes
device futures and runs their links itself, so both cores must make the very same
backend calls, in the same order.
Interrupts are also injected into the core's own machinery: at the entry of the n-th
run of one of its internal functions (collect_all's counter, the unwrap forwarder,
``adopt``, ``hand_over``, ``link_error``, the device link runner and the entry into a
device callback's streams), which both cores run the same number of
times. Everything observable goes into the trace: each callback run, what each
top-level operation returned or raised, the log records, and each future's outcome.
"""

from __future__ import annotations

import gc
import json
import logging
import random
import re
import sys
import types
from typing import Any

from futurekit import (
    CallbackError,
    Future,
    InvalidStateError,
    TimeoutError,
    collect_all,
    collect_any,
)
from futurekit.backends import BackendBase, BackendSpec, hookimpl, register
from futurekit.core import _combinators, _completion, _reporting, _unwrap
from futurekit.core._device_state import DeviceState
from futurekit.core._devices import Device

#: Internal functions interrupts are injected into (run equally often by both cores).
TARGETS = {
    "gather": _combinators._Gather.__call__,
    "forward": _unwrap._Forward.__call__,
    "adopt": _unwrap.adopt,
    "hand_over": _unwrap.hand_over,
    "link_error": _completion.link_error,
    "device_link": _completion._run_device_link,
    "enter_callback": DeviceState.enter_callback,
}


#: The trace the device backend writes into (the running program's).
TRACE: list[list[Any]] = [[]]
FZ0, FZ1 = Device("fz", 0), Device("fz", 1)


class Buf:
    """A buffer of the ``fz`` device."""

    __slots__ = ("__weakref__", "device", "name")

    def __init__(self, device: Device, name: str) -> None:
        self.device = device
        self.name = name

    def __repr__(self) -> str:
        return f"Buf({self.name}@{self.device.index})"


class FuzzBackend(BackendBase):
    """A device backend that does nothing but write each call into the trace."""

    device_type = "fz"

    def _log(self, *what: Any) -> None:
        TRACE[0].append(["dev", *what])

    def device_count(self) -> int:
        return 2

    def current_stream(self, device: Device) -> str:
        self._log("current_stream", device.index)
        return f"cur{device.index}"

    def stream_from_pool(self, device: Device) -> str:
        self._log("pool", device.index)
        return f"pool{device.index}"

    def record_event(self, stream: Any) -> str:
        self._log("record", stream)
        return f"ev@{stream}"

    def wait_event(self, stream: Any, event: Any) -> None:
        self._log("wait_event", stream, event)

    def query_event(self, event: Any) -> bool:
        return True

    def synchronize_event(self, event: Any) -> None:
        self._log("synchronize", event)

    def device_of(self, obj: Any) -> Device | None:
        return obj.device if type(obj) is Buf else None

    def enter_streams(self, streams: Any) -> Any:
        self._log("enter", list(streams))
        return len(streams)

    def exit_streams(self, token: Any) -> None:
        self._log("exit", token)

    def record_values_on_stream(self, buffers: Any, stream: Any) -> None:
        self._log("hint", [b.name for b in buffers], stream)


class _Plugin:
    @hookimpl
    def futurekit_device_backends(self) -> Any:
        yield BackendSpec(name="fz", device_type="fz", load=FuzzBackend, testing=True)


class Loud(Exception):
    """An error whose ``str()`` raises SystemExit (reporting it, or naming it, raises)."""

    def __str__(self) -> str:
        raise SystemExit(f"str of {self.args[0]}")


class Injector:
    """Raises KeyboardInterrupt at chosen entries (counted from 1) of one function."""

    def __init__(self, func: Any, at: set[int]) -> None:
        self.func = func
        self.at = at
        self.calls = 0
        glob = func.__globals__
        self.key = key = f"_futurekit_fuzz_{id(func)}"
        self.original = types.FunctionType(
            func.__code__, glob, func.__name__, func.__defaults__, func.__closure__
        )
        self.original.__kwdefaults__ = func.__kwdefaults__
        glob[key + "_original"], glob[key + "_hook"] = self.original, self.hook
        ns: dict[str, Any] = {}
        exec(
            f"def wrapper(*args, **kwargs):\n"
            f"    {key}_hook()\n"
            f"    return {key}_original(*args, **kwargs)\n",
            glob,
            ns,
        )
        self.saved = func.__code__
        func.__code__ = ns["wrapper"].__code__

    def hook(self) -> None:
        self.calls += 1
        if self.calls in self.at:
            raise KeyboardInterrupt(f"injected #{self.calls}")

    def remove(self) -> None:
        self.func.__code__ = self.saved
        glob = self.func.__globals__
        del glob[self.key + "_original"], glob[self.key + "_hook"]


class Program:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.futs: list[Future[Any]] = []
        self.trace: list[Any] = []
        self.holders: list[list[Any]] = []
        self.counter = 0

    # -- rendering without addresses -------------------------------------------------
    def show(self, v: Any) -> Any:
        if isinstance(v, list):
            return [self.show(x) for x in v]
        if isinstance(v, Future):
            for i, f in enumerate(self.futs):
                if f is v:
                    return f"F{i}"
            return "F?"
        if isinstance(v, BaseException):
            return self.error(v)
        return repr(v)

    def error(self, exc: BaseException) -> list[Any]:
        out: list[Any] = [type(exc).__name__, repr(exc.args)[:80]]  # str() may raise
        if isinstance(exc, CallbackError) and exc.__cause__ is not None:
            out.append(type(exc.__cause__).__name__)
        return out

    def new(self) -> Future[Any]:
        r = self.rng.random()
        devices = ["fz:0"] if r < 0.2 else ["fz:0", "fz:1"] if r < 0.25 else None
        fut: Future[Any] = Future(devices=devices)
        self.futs.append(fut)
        return fut

    def result_for(self, step: int) -> Any:
        """A result: often buffers of the device (one, on either device, or a list)."""
        r = self.rng.random()
        if r < 0.3:
            return Buf(FZ0, f"b{step}")
        if r < 0.35:
            return Buf(FZ1, f"b{step}")
        if r < 0.45:
            return [Buf(FZ0, f"b{step}"), Buf(FZ0, f"c{step}")]
        return f"s{step}"

    def pick(self) -> Future[Any]:
        return self.rng.choice(self.futs)

    # -- callbacks ---------------------------------------------------------------------
    def make_callback(self, level: int) -> Any:
        """A callback with 1-3 random actions, decided now (not when it runs)."""
        rng = self.rng
        self.counter += 1
        tag = f"c{self.counter}"
        kinds = ["note"] * 3 + ["raise", "interrupt", "complete", "fail", "cancel", "wait"] * 2
        kinds += ["value", "drop"]
        if level < 2:
            kinds += ["register", "then"]
        actions = [(rng.choice(kinds), self.pick(), rng.random()) for _ in range(rng.randint(1, 3))]
        nested = [self.make_callback(level + 1) for a in actions if a[0] in ("register", "then")]
        program = self

        def callback(fut: Future[Any]) -> Any:
            program.trace.append(["run", tag, program.show(fut), fut.done()])
            later = iter(nested)
            result: Any = tag
            for kind, other, x in actions:
                result = program.act(tag, kind, other, x, later)
            return result

        return callback

    def act(self, tag: str, kind: str, other: Future[Any], x: float, later: Any) -> Any:
        trace = self.trace
        name = self.show(other)
        if kind == "note":
            trace.append(["note", tag, name, other.done()])
        elif kind == "raise":
            raise ValueError(tag) if x < 0.8 else Loud(tag)
        elif kind == "interrupt":
            raise KeyboardInterrupt(tag) if x < 0.7 else SystemExit(tag)
        elif kind in ("complete", "fail", "cancel"):
            try:
                if kind == "complete":
                    other.set_result(Buf(FZ0, tag) if x < 0.4 else tag)
                elif kind == "fail":
                    other.set_exception(KeyError(tag))
                else:
                    trace.append(["cancel", tag, name, other.cancel()])
            except InvalidStateError:
                trace.append(["again", tag, name])
        elif kind == "wait":
            pending = not other.done()  # then only work queued on this thread can finish it
            try:
                if not pending and x < 0.3:
                    value = other.wait()
                elif x < 0.5:
                    value = other.wait(0.0005)
                elif x < 0.8:
                    value = other.wait(timeout=0.0005)
                else:
                    value = other.result(0.0005)
                trace.append(["waited", tag, name, self.show(value), pending])
            except TimeoutError:
                trace.append(["timeout", tag, name])
            except Exception as exc:
                trace.append(["wait raised", tag, name, self.error(exc), pending])
        elif kind == "value":
            try:
                return other.value()
            except Exception as exc:
                trace.append(["value raised", tag, name, self.error(exc)])
        elif kind == "drop":
            holder = self.rng.choice(self.holders) if self.holders else []
            holder.clear()  # the last reference: its finalizer runs right here
        elif kind == "register":
            other.add_done_callback(next(later))
        elif kind == "then":
            child = other.then(next(later), unwrap=x < 0.3)
            self.futs.append(child)
        return tag

    def register(self, fut: Future[Any], callback: Any) -> None:
        """add_done_callback or then (its child kept), at random."""
        if self.rng.random() < 0.5:
            fut.add_done_callback(callback)
        else:
            self.futs.append(fut.then(callback))

    def waiter_on(self, target: Future[Any]) -> Any:
        tag, x = f"w{len(self.futs)}", self.rng.random()

        def callback(fut: Future[Any]) -> Any:
            self.trace.append(["run", tag, self.show(fut), fut.done()])
            return self.act(tag, "wait", target, 0.3 + 0.7 * x, iter(()))

        return callback

    def completer_of(self, target: Future[Any]) -> Any:
        tag, kind = f"k{len(self.futs)}", self.rng.choice(["complete", "fail", "cancel"])

        def callback(fut: Future[Any]) -> Any:
            self.trace.append(["run", tag, self.show(fut), fut.done()])
            return self.act(tag, kind, target, 0.0, iter(()))

        return callback

    def finalizer(self) -> Any:
        """An object whose ``__del__`` completes or registers on a future."""
        program, target, x = self, self.pick(), self.rng.random()
        self.counter += 1
        tag = f"d{self.counter}"

        class Dropped:
            def __del__(self) -> None:
                program.trace.append(["finalizer", tag, program.show(target)])
                try:
                    if x < 0.5:
                        target.set_result(tag)
                    else:
                        target.add_done_callback(lambda f: program.trace.append(["fin-cb", tag]))
                except BaseException as exc:  # raised in __del__ it would be unraisable
                    program.trace.append(["finalizer raised", tag, program.error(exc)])

        return Dropped()

    # -- the program -------------------------------------------------------------------
    def run(self) -> list[Any]:
        rng = self.rng
        for _ in range(4):
            self.new()
        injector = None
        if rng.random() < 0.5:
            name = rng.choice(sorted(TARGETS))
            at = {rng.randint(1, 4) for _ in range(rng.randint(1, 3))}
            injector = Injector(TARGETS[name], at)
            self.trace.append(["inject", name, sorted(at)])
        try:
            for step in range(rng.randint(15, 40)):
                self.step(step)
        finally:
            if injector is not None:
                injector.remove()
        for holder in self.holders:
            holder.clear()
        for fut in list(self.futs):
            if not fut.done():
                try:
                    fut.set_result("end")
                except BaseException as exc:  # a callback's interrupt
                    self.trace.append(["end raised", self.error(exc)])
        self.trace.append(["final", [self.outcome(f) for f in self.futs]])
        return self.trace

    def outcome(self, fut: Future[Any]) -> Any:
        if not fut.done():
            return "pending"
        try:
            return self.show(fut.value())
        except BaseException as exc:
            return self.error(exc)

    def step(self, step: int) -> None:
        rng = self.rng
        op = rng.randrange(13)
        fut = self.pick()
        record: list[Any] = ["op", step, op, self.show(fut)]
        try:
            if op == 0:
                self.new()
            elif op in (1, 2):
                fut.add_done_callback(self.make_callback(0))
            elif op == 3:
                self.futs.append(fut.then(self.make_callback(0), unwrap=rng.random() < 0.3))
            elif op == 4:
                fut.set_result(self.result_for(step))
            elif op == 5:
                fut.set_exception(KeyError(f"s{step}"))
            elif op == 6:
                record.append(fut.cancel())
            elif op == 7:
                self.futs.append(collect_all(rng.sample(self.futs, min(3, len(self.futs)))))
            elif op == 8:
                self.futs.append(collect_any(rng.sample(self.futs, min(2, len(self.futs)))))
            elif op == 9:
                record.append(self.show(fut.wait(0)))
            elif op == 10:
                self.holders.append([self.finalizer()])
            elif op == 12:  # a callback waits on a future that a later sibling completes
                target = self.new()
                self.register(fut, self.waiter_on(target))
                for _ in range(rng.randint(0, 2)):
                    self.register(fut, self.make_callback(1))
                self.register(fut, self.completer_of(target))
            else:
                record.append(self.show(fut.value()))
        except BaseException as exc:  # the future's error, a timeout, an interrupt
            record.append(self.error(exc))
        self.trace.append(record)


def main() -> None:
    count, first = int(sys.argv[1]), int(sys.argv[2])
    register(_Plugin(), name="fuzz-device")
    if len(sys.argv) > 3:  # a program's trace, one record a line (to study a difference)
        program = Program(first)
        TRACE[0] = program.trace
        trace = program.run()
        print("\n".join(json.dumps(r) for r in trace))
        return

    logger = logging.getLogger("futurekit")
    logger.propagate = False
    traces: list[list[Any]] = []
    current = TRACE
    never: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            line = record.getMessage().splitlines()[0]
            if line.startswith("Future exception was never retrieved"):
                # given when the future dies: a frame in a traceback may keep it alive a
                # little longer on one core; compared as a set once the program is gone
                never.append(re.sub(r" at 0x[0-9a-f]+", "", line)[:160])
            else:
                current[0].append(["log", line[:100]])

    logger.addHandler(Keep())
    # the traceback text of a logged error is not traced: formatting it costs more than
    # a whole program (the record still goes through the real _log and the handler)
    _reporting._plain_traceback = lambda exc: ""
    gc.disable()  # finalizers run where the last reference goes, the same in both cores
    for seed in range(first, first + count):
        program = Program(seed)
        current[0] = program.trace
        trace = program.run()
        current[0] = []
        del program
        gc.collect(0)  # every future of the program is gone now (all of them are new)
        trace.append(["never retrieved", sorted(never)])
        never.clear()
        traces.append(trace)
    from futurekit.core._accelerator import status

    print(json.dumps({"core": status, "traces": traces}))


if __name__ == "__main__":
    main()
