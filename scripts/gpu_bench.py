"""Short GPU benchmark: CUDA futures, futurekit against torch.futures.

Compares torch's own ``torch.futures.Future(devices=["cuda:0"])`` with futurekit's
``torch`` and ``cuda-python`` backends: set_result + wait of 1 tensor and of a list
of 1,000 tensors, ``then()`` + set_result + wait, and ``collect_all`` of 100 device
futures. Prints a table of medians (µs per operation) and speed-ups against torch
(torch's time / futurekit's, higher is better) with the targets. Without a GPU it
says so and exits 0.

    PYTHONPATH=src python scripts/gpu_bench.py [--json results.json]
    PYTHONPATH=src python scripts/gpu_bench.py --smoke   # every path, on the sim device

``--smoke`` runs the same code on the simulated device with tiny sizes (the
figures mean nothing): CI uses it so that the GPU run cannot crash on a path that
never ran.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

WARMUP = 20
COLLECT_FUTURES = 100
#: Speed-ups against torch.futures that issue 17 asks for.
TARGETS = {"1 tensor": 2.0, "1000 tensors": 0.6, "then()": 1.5, "collect_all(100)": 1.5}


class Setup:
    """What one run measures with: devices, values, how to synchronize, sizes."""

    def __init__(self, smoke: bool) -> None:
        import torch

        self.smoke = smoke
        self.device = "sim:0" if smoke else "cuda:0"
        self.repeats = {1: 5, 1000: 2} if smoke else {1: 3000, 1000: 150}
        self.then_repeats = 5 if smoke else 2000
        self.collect_repeats = 2 if smoke else 100
        self.warmup = 1 if smoke else WARMUP
        if smoke:
            from futurekit.testing import sim

            self.value = lambda: sim.Buffer("sim:0", 1)
            self.sync: Callable[[], None] = lambda: None
            self.torch_devices: list[str] | None = None  # torch's CPU future
        else:
            self.value = lambda: torch.ones(4, device="cuda:0")
            self.sync = torch.cuda.synchronize
            self.torch_devices = ["cuda:0"]


def _no_gpu() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA GPU"
    return None


def _median(setup: Setup, repeats: int, once: Callable[[], float]) -> float:
    samples = []
    for i in range(setup.warmup + repeats):
        sample = once()
        if i >= setup.warmup:
            samples.append(sample)
        if i % 500 == 499:
            setup.sync()
    setup.sync()
    return statistics.median(samples)


def _time(setup: Setup, make: Callable[[], Any], value: Any, repeats: int) -> float:
    def once() -> float:
        fut = make()
        t0 = time.perf_counter_ns()
        fut.set_result(value)
        fut.wait()
        return (time.perf_counter_ns() - t0) / 1000

    return _median(setup, repeats, once)


def _passthru(fut: Any) -> Any:
    return fut.wait()


def _time_then(setup: Setup, make: Callable[[], Any], value: Any, repeats: int) -> float:
    def once() -> float:
        fut = make()
        t0 = time.perf_counter_ns()
        child = fut.then(_passthru)
        fut.set_result(value)
        child.wait()
        return (time.perf_counter_ns() - t0) / 1000

    return _median(setup, repeats, once)


def _time_collect(
    setup: Setup, make: Callable[[], Any], collect: Any, value: Any, repeats: int
) -> float:
    def once() -> float:
        futs = [make() for _ in range(COLLECT_FUTURES)]
        t0 = time.perf_counter_ns()
        everything = collect(futs)
        for fut in futs:
            fut.set_result(value)
        everything.wait()
        return (time.perf_counter_ns() - t0) / 1000

    return _median(setup, repeats, once)


def _impls(setup: Setup) -> dict[str, Callable[[], Any]]:
    import torch

    import futurekit
    from futurekit.backends import get_backend
    from futurekit.core._errors import BackendUnavailableError

    devices = setup.torch_devices
    impls: dict[str, Callable[[], Any]] = {
        "torch.futures": lambda: torch.futures.Future(devices=devices),
    }
    names = ("sim",) if setup.smoke else ("torch", "cuda-python")
    for name in names:
        try:
            get_backend(setup.device.split(":")[0], name)
        except BackendUnavailableError as exc:
            print(f"futurekit backend {name!r} unavailable, not measured: {exc}")
            continue
        impls[f"futurekit[{name}]"] = lambda name=name: futurekit.Future(
            devices=[setup.device], backend=name
        )
    return impls


def measure(setup: Setup) -> dict[str, dict[str, float]]:
    """Every case for every implementation: ``{case: {label: median µs}}``."""
    import torch

    import futurekit

    impls = _impls(setup)
    collectors = {label: futurekit.collect_all for label in impls}
    collectors["torch.futures"] = torch.futures.collect_all
    results: dict[str, dict[str, float]] = {}
    for count, repeats in setup.repeats.items():
        values = [setup.value() for _ in range(count)]
        value: Any = values[0] if count == 1 else values
        case = f"{count} tensor" + ("s" if count > 1 else "")
        results[case] = {label: _time(setup, make, value, repeats) for label, make in impls.items()}
    one = setup.value()
    results["then()"] = {
        label: _time_then(setup, make, one, setup.then_repeats) for label, make in impls.items()
    }
    results[f"collect_all({COLLECT_FUTURES})"] = {
        label: _time_collect(setup, make, collectors[label], one, setup.collect_repeats)
        for label, make in impls.items()
    }
    return results


def table(results: dict[str, dict[str, float]]) -> str:
    """The Markdown table: µs, speed-ups against torch.futures, targets."""
    labels = list(next(iter(results.values())))
    lines = [
        "| case | " + " | ".join(labels) + " | target |",
        "|---|" + "---:|" * len(labels) + "---|",
    ]
    for case, row in results.items():
        base = row["torch.futures"]
        cells = [
            f"{row[label]:.1f}"
            + ("" if label == "torch.futures" else f" ({base / row[label]:.2f}x)")
            for label in labels
        ]
        target = TARGETS.get(case)
        goal = f">= {target:g}x" if target else ""
        lines.append(f"| {case} | " + " | ".join(cells) + f" | {goal} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--smoke", action="store_true", help="run every path on the sim device, tiny sizes"
    )
    args = parser.parse_args(argv)

    if not args.smoke:
        why = _no_gpu()
        if why is not None:
            print(f"no GPU: {why}; benchmark skipped")
            return 0

    import torch

    setup = Setup(args.smoke)
    results = measure(setup)
    card = "sim (smoke run)" if args.smoke else torch.cuda.get_device_name(0)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n{card}, torch {torch.__version__}, {stamp}")
    print(
        "median µs per operation (set_result + wait; then() + set_result + wait; "
        f"collect_all of {COLLECT_FUTURES} futures, each set, then wait); speed-up = "
        "torch.futures' time / futurekit's (higher is better)\n"
    )
    print(table(results))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"card": card, "torch": torch.__version__, "date": stamp, **results}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
