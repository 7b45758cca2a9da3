"""Short GPU benchmark: set_result + wait on a CUDA future.

Compares torch's own ``torch.futures.Future(devices=["cuda:0"])`` with futurekit's
``torch`` and ``cuda-python`` backends, for a value of 1 tensor and of a list of
1,000 tensors, and prints a table of medians (µs per set_result + wait) and ratios
to torch. Without a GPU it says so and exits 0.

    PYTHONPATH=src python scripts/gpu_bench.py [--json results.json]
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

REPEATS = {1: 3000, 1000: 150}
WARMUP = 20


def _no_gpu() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA GPU"
    return None


def _time(make: Callable[[], Any], value: Any, repeats: int) -> float:
    import torch

    samples = []
    for i in range(WARMUP + repeats):
        fut = make()
        t0 = time.perf_counter_ns()
        fut.set_result(value)
        fut.wait()
        t1 = time.perf_counter_ns()
        if i >= WARMUP:
            samples.append((t1 - t0) / 1000)
        if i % 500 == 499:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    why = _no_gpu()
    if why is not None:
        print(f"no GPU: {why}; benchmark skipped")
        return 0

    import torch

    import futurekit
    from futurekit.backends import get_backend
    from futurekit.core._errors import BackendUnavailableError

    impls: dict[str, Callable[[], Any]] = {
        "torch.futures": lambda: torch.futures.Future(devices=["cuda:0"]),
    }
    for name in ("torch", "cuda-python"):
        try:
            get_backend("cuda", name)
        except BackendUnavailableError as exc:
            print(f"futurekit backend {name!r} unavailable, not measured: {exc}")
            continue
        impls[f"futurekit[{name}]"] = lambda name=name: futurekit.Future(
            devices=["cuda:0"], backend=name
        )

    results: dict[str, dict[str, float]] = {}
    for count, repeats in REPEATS.items():
        tensors = [torch.ones(4, device="cuda:0") for _ in range(count)]
        value: Any = tensors[0] if count == 1 else tensors
        case = f"{count} tensor" + ("s" if count > 1 else "")
        results[case] = {label: _time(make, value, repeats) for label, make in impls.items()}

    card = torch.cuda.get_device_name(0)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n{card}, torch {torch.__version__}, {stamp}")
    print("median µs per set_result + wait (ratio to torch.futures; lower is better)\n")
    labels = list(impls)
    print("| case | " + " | ".join(labels) + " |")
    print("|---|" + "---:|" * len(labels))
    for case, row in results.items():
        base = row["torch.futures"]
        cells = [
            f"{row[label]:.1f}"
            + ("" if label == "torch.futures" else f" ({row[label] / base:.2f}x)")
            for label in labels
        ]
        print(f"| {case} | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"card": card, "torch": torch.__version__, "date": stamp, **results}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
