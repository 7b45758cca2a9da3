"""The value walk (``find_buffers``) against torch's extraction by pickling.

Times both on the benchmark suite's value (a model-like dict of 500 layers holding
1,000 ``sim.Buffer``s) and on values holding 1,000 CPU tensors (a list, a dict, a list
of small objects, a deque of partials), and prints medians and the speed-up. For
tensors the walk's leaf test is the torch backend's (``isinstance(obj, torch.Tensor)``),
so both find exactly the same tensors; torch's pickler stops at each tensor at C
speed, which is why a flat list of tensors is its best case.

    PYTHONPATH=src python scripts/bench_extract.py
"""

from __future__ import annotations

import collections
import functools
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

N = 1000
REPEATS = 200


class Holder:
    def __init__(self, t: Any) -> None:
        self.t = t
        self.name = "holder"


def _first(x: Any) -> Any:
    return x


def _median_us(fn: Callable[[], Any]) -> float:
    for _ in range(10):
        fn()
    samples = []
    for _ in range(REPEATS):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1000)
    return statistics.median(samples)


def main() -> int:
    import torch

    from futurekit.core._devices import Device
    from futurekit.core._extract import find_buffers

    cpu = Device("cpu", 0)
    tensor_type = torch.Tensor

    def device_of(obj: Any) -> Device | None:
        return cpu if isinstance(obj, tensor_type) else None

    tensors = [torch.ones(1) for _ in range(N)]
    values = {
        "list of 1,000 tensors": tensors,
        "dict of 1,000 tensors": {f"k{i}": t for i, t in enumerate(tensors)},
        "1,000 objects holding a tensor": [Holder(t) for t in tensors],
        "deque of 1,000 partials": collections.deque(functools.partial(_first, t) for t in tensors),
    }
    extract = torch._jit_internal._extract_tensors
    from futurekit.backends.sim import Buffer, get_backend

    layers = [
        {"weight": Buffer("sim:0", 2 * i), "bias": Buffer("sim:0", 2 * i + 1), "meta": ("l", i)}
        for i in range(N // 2)
    ]
    suite_value = {"name": "model", "layers": layers, "step": 3}
    sim_of = get_backend().device_of
    assert len(find_buffers(suite_value, sim_of)) == N
    theirs = _median_us(lambda: extract(suite_value))
    ours = _median_us(lambda: find_buffers(suite_value, sim_of))
    rows = [("suite value: 500 layers, 1,000 sim buffers", theirs, ours)]
    print(f"torch {torch.__version__}, Python {sys.version.split()[0]}; median µs per call\n")
    print("| value | torch extraction | futurekit walk | speed-up |")
    print("|---|---:|---:|---:|")
    for label, theirs, ours in rows:
        print(f"| {label} | {theirs:.0f} | {ours:.0f} | {theirs / ours:.1f}x |")
    for label, value in values.items():
        assert {id(t) for t, _ in find_buffers(value, device_of)} == {id(t) for t in extract(value)}
        theirs = _median_us(lambda value=value: extract(value))
        ours = _median_us(lambda value=value: find_buffers(value, device_of))
        print(f"| {label} | {theirs:.0f} | {ours:.0f} | {theirs / ours:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
