"""Benchmark probes that are not plain timings: import cost, memory, long chains, devices.

Used by :mod:`.suite`; everything heavy is imported inside the functions.
"""

from __future__ import annotations

import gc
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .cases import Impl, alternate, noop, passthru

__all__ = [
    "ChainResult",
    "DeviceResult",
    "ImportResult",
    "device_path",
    "import_cost",
    "long_chain",
    "memory_per_pending",
    "torch_chain_crash",
]

_FORBIDDEN = ("torch", "cuda", "pluggy")
_SUBPROCESS_TIMEOUT_S = 120.0

_IMPORT_CODE = (
    "import sys, time\n"
    "t = time.perf_counter()\n"
    "import {module}\n"
    "d = time.perf_counter() - t\n"
    "print(repr(d))\n"
    "print(','.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({forbidden!r}))))\n"
)


def _child_env() -> dict[str, str]:
    """The environment for child interpreters: they import this very futurekit."""
    import futurekit

    root = os.path.dirname(os.path.dirname(os.path.abspath(futurekit.__file__)))
    env = dict(os.environ)
    # measure what an installed package costs: with its bytecode cached
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = root if not old else root + os.pathsep + old
    return env


def _python(code: str, env: dict[str, str]) -> tuple[float, str]:
    """Run ``python -c code``; wall seconds and stdout.

    Raises:
        RuntimeError: the child failed.
    """
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=_SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"child python failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return wall, proc.stdout


@dataclass
class ImportResult:
    """``import futurekit`` in fresh interpreters (seconds, the best of ``reps`` each).

    The best, not the median: what the import itself costs, without the other programs
    that happened to run on the machine at the same time.
    """

    reps: int
    in_process_s: float
    bare_wall_s: float
    import_wall_s: float
    forbidden: list[str]
    torch_s: float | None


def import_cost(reps: int, with_torch: bool) -> ImportResult:
    """Time ``import futurekit`` in subprocesses, alternating with a bare interpreter.

    Each child is a fresh interpreter (bytecode cached, as for an installed package);
    every figure is the best (smallest) of ``reps`` children.

    Args:
        reps: child interpreters of each kind.
        with_torch: also time ``import torch`` (one child, for comparison).
    """
    env = _child_env()
    code = _IMPORT_CODE.format(module="futurekit", forbidden=_FORBIDDEN)
    inside: list[float] = []
    bare: list[float] = []
    walls: list[float] = []
    forbidden: set[str] = set()
    _python(code, env)  # warm-up: writes stale bytecode caches, fills the OS file cache
    for _ in range(reps):
        bare.append(_python("pass", env)[0])
        wall, out = _python(code, env)
        walls.append(wall)
        seconds, modules = [*out.splitlines(), "", ""][:2]
        inside.append(float(seconds))
        forbidden.update(m for m in modules.split(",") if m)
    torch_s: float | None = None
    if with_torch:
        try:
            out = _python(_IMPORT_CODE.format(module="torch", forbidden=()), env)[1]
            torch_s = float(out.splitlines()[0])
        except Exception:  # torch missing or broken: no comparison
            torch_s = None
    return ImportResult(
        reps=reps,
        in_process_s=min(inside),
        bare_wall_s=min(bare),
        import_wall_s=min(walls),
        forbidden=sorted(forbidden),
        torch_s=torch_s,
    )


def memory_per_pending(impl: Impl, n: int) -> float:
    """Bytes traced by ``tracemalloc`` per pending future holding one callback.

    Only Python allocations are visible: C++ memory (torch's futures) is not.
    """
    import tracemalloc

    futs: list[Any] = [None] * n
    new = impl.future
    gc.collect()
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            fut = new()
            fut.add_done_callback(noop)
            futs[i] = fut
        after = tracemalloc.get_traced_memory()[0]
    finally:
        if started:
            tracemalloc.stop()
    del futs
    return (after - before) / n


@dataclass
class ChainResult:
    """A long futurekit ``then`` chain: times (seconds) and traced memory (bytes)."""

    links: int
    build_s: float
    total_s: float
    built_bytes: int
    peak_bytes: int
    left_bytes: int
    value_ok: bool


def _build_and_run(links: int) -> tuple[float, float, int, bool]:
    import tracemalloc

    from futurekit import Future

    t0 = time.perf_counter()
    root: Future[Any] = Future()
    fut: Future[Any] = root
    then = Future.then
    for _ in range(links):
        fut = then(fut, passthru)
    t_built = time.perf_counter()
    built = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
    root.set_result(1)
    ok = fut.wait() == 1
    return t_built - t0, time.perf_counter() - t0, built, ok


def long_chain(links: int) -> ChainResult:
    """Build and complete a ``links``-long chain twice: timed, then under tracemalloc."""
    import tracemalloc

    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        build_s, total_s, _, ok = _build_and_run(links)
    finally:
        if enabled:
            gc.enable()
    gc.collect()
    if tracemalloc.is_tracing():  # someone else traces: do not disturb them
        return ChainResult(links, build_s, total_s, -1, -1, -1, ok)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        _, _, built, ok2 = _build_and_run(links)
        peak = tracemalloc.get_traced_memory()[1]
        gc.collect()
        left = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return ChainResult(links, build_s, total_s, built - base, peak - base, left - base, ok and ok2)


_TORCH_CHAIN = (
    "import torch.futures as tf\n"
    "root = tf.Future(); f = root\n"
    "for _ in range({links}): f = f.then(lambda x: x.value())\n"
    "root.set_result(1); print(f.wait())\n"
)


def torch_chain_crash(links: int) -> str:
    """What a ``links``-long torch ``then`` chain does, in a child interpreter."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _TORCH_CHAIN.format(links=links)],
            env=_child_env(),
            capture_output=True,
            text=True,
            timeout=_SUBPROCESS_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"torch: a {links:,}-link chain did not finish in {_SUBPROCESS_TIMEOUT_S:.0f} s"
    if proc.returncode == 0:
        return f"torch: a {links:,}-link chain completed"
    if proc.returncode < 0:
        return f"torch: a {links:,}-link chain crashed the interpreter (signal {-proc.returncode})"
    return f"torch: a {links:,}-link chain failed (exit {proc.returncode})"


class _StandInBuffer:
    """A device-buffer stand-in for the value walk when ``futurekit.testing.sim`` is absent."""

    __slots__ = ("device", "value")

    def __init__(self, device: Any, value: Any) -> None:
        self.device = device
        self.value = value


@dataclass
class DeviceResult:
    """The simulated-device path: µs per set_result+wait, walk vs pickle (seconds)."""

    set_wait_s: float | None
    walk_s: float
    pickle_s: float | None
    torch_extract_s: float | None
    buffers_found: int
    note: str


def _nested_value(make: Callable[[int], Any], buffers: int) -> dict[str, Any]:
    layers = [
        {"weight": make(2 * i), "bias": make(2 * i + 1), "meta": ("layer", i, 0.5)}
        for i in range(buffers // 2)
    ]
    return {"name": "model", "layers": layers, "step": 3}


def device_path(buffers: int, reps: int, rounds: int) -> DeviceResult:
    """``Future(devices=["sim:0"])``: set_result+wait of a nested value; walk vs pickle."""
    from futurekit.core._devices import Device
    from futurekit.core._extract import find_buffers

    notes: list[str] = []
    device_of: Callable[[Any], Device | None]
    try:
        from futurekit.backends import get_backend
        from futurekit.testing.sim import Buffer  # type: ignore[import-not-found,unused-ignore]

        device_of = get_backend("sim").device_of
        value = _nested_value(lambda i: Buffer("sim:0", i), buffers)
        sim = True
    except Exception as exc:
        sim = False
        notes.append(f"sim device unavailable ({type(exc).__name__}: {exc}); walk on a stand-in")
        dev = Device("sim", 0)

        def device_of(obj: Any) -> Device | None:
            return dev if type(obj) is _StandInBuffer else None

        value = _nested_value(lambda i: _StandInBuffer("sim:0", i), buffers)
    try:
        pickle.dumps(value)
        picklable = True
    except Exception as exc:
        picklable = False
        notes.append(f"value not picklable ({type(exc).__name__})")
    found = len(find_buffers(value, device_of))

    def walk() -> float:
        t0 = time.perf_counter()
        for _ in range(reps):
            find_buffers(value, device_of)
        return (time.perf_counter() - t0) / reps

    def dumps() -> float:
        t0 = time.perf_counter()
        for _ in range(reps):
            pickle.dumps(value)
        return (time.perf_counter() - t0) / reps

    timers = {"walk": walk, "pickle": dumps} if picklable else {"walk": walk}
    extract = _torch_extractor()
    if extract is not None and picklable:

        def torch_extract() -> float:
            t0 = time.perf_counter()
            for _ in range(reps):
                extract(value)
            return (time.perf_counter() - t0) / reps

        timers["torch"] = torch_extract
    medians = alternate(timers, rounds)
    set_wait: float | None = None
    if sim:
        from futurekit import Future

        def set_wait_run() -> float:
            futs: list[Future[Any]] = [Future(devices=["sim:0"]) for _ in range(reps)]
            t0 = time.perf_counter()
            for fut in futs:
                fut.set_result(value)
                fut.wait()
            return (time.perf_counter() - t0) / reps

        set_wait = alternate({"sim": set_wait_run}, rounds)["sim"]
    return DeviceResult(
        set_wait,
        medians["walk"],
        medians.get("pickle"),
        medians.get("torch"),
        found,
        "; ".join(notes),
    )


def _torch_extractor() -> Callable[[Any], Any] | None:
    """Torch's own tensor extraction: a ``pickle.Pickler`` with a ``persistent_id`` hook.

    It is what a torch CUDA future runs on ``set_result`` (``torch._jit_internal.
    _extract_tensors``, called from C++); ``None`` when torch is not importable.
    """
    try:
        from torch._jit_internal import _extract_tensors
    except Exception:  # torch missing, or a version without it
        return None
    fn: Callable[[Any], Any] = _extract_tensors
    return fn
