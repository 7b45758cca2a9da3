"""The device path's CPU proxy: a device future on a backend whose primitives do nothing.

On a machine without a GPU this is what stands in for the GPU benchmark
(``scripts/gpu_bench.py``): with every backend primitive a no-op, what remains is
futurekit's own cost of a device future (the plan lookup, the walk, the event
bookkeeping, the callback streams), measured against ``torch.futures``' CPU future
in the same run. The targets (issue 17): one buffer at most 1.0x torch's CPU
``set_result + wait``; each further buffer at most 0.06x of it; ``then()`` +
``set_result`` + ``wait`` at most 1.0x torch's CPU ``then()`` round. A fourth row,
``collect_all`` of 100 device futures, stands in for the GPU benchmark's (same target
as the others: at most torch's CPU ``collect_all``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .cases import alternate
from .report import Row

__all__ = ["NoopBackend", "NoopBuffer", "device_proxy_rows", "noop_backend"]

_US = 1e6
_TIMES = "\u00d7"
_GE = "\u2265"
#: Targets, as fractions of torch's CPU figure.
ONE_BUFFER = 1.0
PER_BUFFER = 0.06
THEN_ROUND = 1.0
COLLECT = 1.0
#: Futures per collect_all round.
COLLECT_N = 100


class NoopBuffer:
    """A buffer of the ``noop`` device: it knows its device, as a tensor does."""

    __slots__ = ("__weakref__", "device")

    def __init__(self, device: Any) -> None:
        self.device = device


def _noop_backend_class() -> type:
    from futurekit.backends.cpu import CpuBackend

    class NoopBackend(CpuBackend):
        """The cpu backend's no-op primitives; ``device_of`` answers like a tensor's ``.device``."""

        device_type = "noop"

        def device_count(self) -> int:
            return 1

        def device_of(self, obj: Any) -> Any:
            return obj.device if type(obj) is NoopBuffer else None

        def devices_of(self, objs: Sequence[Any]) -> list[Any]:
            return [b.device if type(b) is NoopBuffer else None for b in objs]

        def record_values_on_stream(self, buffers: Sequence[Any], stream: Any) -> None:
            return None  # the allocator hint: kept by the core, does nothing here

    return NoopBackend


NoopBackend: Any = None


@contextlib.contextmanager
def noop_backend() -> Iterator[Any]:
    """Register the ``noop`` backend for the block; yields its device ``noop:0``."""
    global NoopBackend
    from futurekit import Device
    from futurekit.backends import BackendSpec, hookimpl, register, unregister

    if NoopBackend is None:
        NoopBackend = _noop_backend_class()
    backend_class = NoopBackend

    class Plugin:
        @hookimpl
        def futurekit_device_backends(self) -> Iterator[Any]:
            yield BackendSpec(name="noop", device_type="noop", load=backend_class, testing=True)

    plugin = Plugin()
    register(plugin, name="futurekit-bench-noop")
    try:
        yield Device("noop", 0)
    finally:
        unregister(plugin)


def _timers(torch: Any, device: Any, n: int, buffers: int) -> dict[str, Callable[[], float]]:
    from futurekit import Future, collect_all

    one = NoopBuffer(device)
    many = [NoopBuffer(device) for _ in range(buffers)]
    devices = ["noop:0"]
    per_many = max(1, n // buffers)

    def twice(fut: Any) -> Any:
        return fut.value()  # the callback hands the buffer on, as a pipeline stage does

    def fk_one() -> float:
        start = time.perf_counter()
        for _ in range(n):
            f: Any = Future(devices=devices)
            f.set_result(one)
            f.wait()
        return (time.perf_counter() - start) / n

    def fk_many() -> float:
        start = time.perf_counter()
        for _ in range(per_many):
            f: Any = Future(devices=devices)
            f.set_result(many)
            f.wait()
        return (time.perf_counter() - start) / per_many

    def fk_then() -> float:
        start = time.perf_counter()
        for _ in range(n):
            f: Any = Future(devices=devices)
            c = f.then(twice)
            f.set_result(one)
            c.wait()
        return (time.perf_counter() - start) / n

    per_collect = max(1, n // COLLECT_N)

    def fk_collect() -> float:
        start = time.perf_counter()
        for _ in range(per_collect):
            futs: list[Any] = [Future(devices=devices) for _ in range(COLLECT_N)]
            gathered = collect_all(futs)
            for f in futs:
                f.set_result(one)
            gathered.wait()
        return (time.perf_counter() - start) / per_collect

    timers = {"fk_one": fk_one, "fk_many": fk_many, "fk_then": fk_then, "fk_collect": fk_collect}
    if torch is not None:
        TF = torch.futures.Future

        def th_one() -> float:
            start = time.perf_counter()
            for _ in range(n):
                f = TF()
                f.set_result(one)
                f.wait()
            return (time.perf_counter() - start) / n

        def th_then() -> float:
            start = time.perf_counter()
            for _ in range(n):
                f = TF()
                c = f.then(twice)
                f.set_result(one)
                c.wait()
            return (time.perf_counter() - start) / n

        def th_collect() -> float:
            start = time.perf_counter()
            for _ in range(per_collect):
                futs = [TF() for _ in range(COLLECT_N)]
                gathered = torch.futures.collect_all(futs)
                for f in futs:
                    f.set_result(one)
                gathered.wait()
            return (time.perf_counter() - start) / per_collect

        timers.update(th_one=th_one, th_then=th_then, th_collect=th_collect)
    return timers


def device_proxy_rows(n: int, buffers: int, rounds: int) -> list[Row]:
    """The four CPU-proxy rows (medians of ``rounds`` alternated rounds)."""
    from .cases import torch_missing

    torch = None
    if torch_missing() is None:
        import torch as torch_module

        torch = torch_module
    with noop_backend() as device:
        med = alternate(_timers(torch, device, n, buffers), rounds)
    one, many, then = med["fk_one"] * _US, med["fk_many"] * _US, med["fk_then"] * _US
    per_buffer = max(0.0, (many - one) / (buffers - 1)) if buffers > 1 else 0.0
    th_one = med.get("th_one")
    th_then = med.get("th_then")
    th_one_us = None if th_one is None else th_one * _US
    th_then_us = None if th_then is None else th_then * _US
    collect = med["fk_collect"] * _US
    th_collect = med.get("th_collect")
    th_collect_us = None if th_collect is None else th_collect * _US

    def speed(theirs: float | None, ours: float) -> float | None:
        return None if theirs is None or ours <= 0 else theirs / ours

    note = "no-op backend (every primitive does nothing); torch column: torch.futures CPU future"
    s_one, s_then = speed(th_one_us, one), speed(th_then_us, then)
    s_collect = speed(th_collect_us, collect)
    measured = per_buffer if per_buffer > 0 else None  # noise can hide a tiny cost
    s_buf = None if measured is None else speed(th_one_us, measured)
    share = (
        ""
        if th_one_us is None or measured is None
        else f"; {measured / th_one_us:.3f}{_TIMES} torch's round"
    )
    return [
        Row("device future, 1 buffer: create + set_result + wait (CPU proxy)", one, th_one_us,
            None, s_one, None, f"{_GE} {1 / ONE_BUFFER:g}{_TIMES}",
            None if s_one is None else s_one >= 1 / ONE_BUFFER, note, "µs", "speedup",
            1 / ONE_BUFFER),
        Row(f"device future, each further buffer (list of {buffers:,}) (CPU proxy)", measured,
            None if measured is None else th_one_us, None, s_buf, None,
            f"≤ {PER_BUFFER:g}{_TIMES} torch's set_result + wait",
            None if s_buf is None else s_buf >= 1 / PER_BUFFER,
            note + "; torch column: one whole set_result + wait" + share, "µs", "speedup",
            1 / PER_BUFFER),
        Row("device future: then() + set_result + wait (CPU proxy)", then, th_then_us, None,
            s_then, None, f"{_GE} {1 / THEN_ROUND:g}{_TIMES}",
            None if s_then is None else s_then >= 1 / THEN_ROUND, note, "µs", "speedup",
            1 / THEN_ROUND),
        Row(f"device future: collect_all of {COLLECT_N} + set_result each + wait (CPU proxy)",
            collect, th_collect_us, None, s_collect, None, f"{_GE} {1 / COLLECT:g}{_TIMES}",
            None if s_collect is None else s_collect >= 1 / COLLECT, note, "µs", "speedup",
            1 / COLLECT),
    ]  # fmt: skip
