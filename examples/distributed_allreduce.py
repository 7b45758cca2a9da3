"""torch.distributed all_reduce futures composed with futurekit (two CPU processes, gloo).

Each rank starts two asynchronous all-reduces. ``Work.get_future()`` gives a
``torch.futures.Future``; ``futurekit.from_torch`` wraps it so that ``then``,
``collect_all`` and ``wait(timeout=...)`` can be used on it.

Run: ``python examples/distributed_allreduce.py`` (loopback only, exits 0 on success).
"""

from __future__ import annotations

import datetime
import sys

from _dist import TIMEOUT_S, launch, need_torch

need_torch()  # a clear message naming the extra when torch is missing

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

import futurekit  # noqa: E402


def worker(rank: int, world_size: int, init_method: str) -> None:
    dist.init_process_group(
        "gloo",
        init_method=init_method,
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=TIMEOUT_S),
    )
    try:
        ones = torch.full((4,), float(rank + 1))
        squares = torch.full((4,), float((rank + 1) ** 2))

        # Work.get_future() -> torch.futures.Future[list[Tensor]] -> futurekit.Future
        f_ones = futurekit.from_torch(dist.all_reduce(ones, async_op=True).get_future())
        f_squares = futurekit.from_torch(dist.all_reduce(squares, async_op=True).get_future())

        # then: post-process each result as it arrives (runs in the completing thread)
        f_sum = f_ones.then(lambda f: f.wait()[0].sum().item())
        f_mean = f_squares.then(lambda f: f.wait()[0].mean().item())

        # collect_all: one future for both; wait with a timeout instead of forever
        both = futurekit.collect_all([f_sum, f_mean]).wait(timeout=TIMEOUT_S)
        total, mean_sq = (f.wait() for f in both)

        expected_total = 4 * sum(r + 1 for r in range(world_size))  # 4 elements each
        expected_mean = float(sum((r + 1) ** 2 for r in range(world_size)))
        assert total == expected_total, (total, expected_total)
        assert mean_sq == expected_mean, (mean_sq, expected_mean)
        dist.barrier()
        if rank == 0:
            print(
                f"allreduce OK: world_size={world_size} sum={total:g} "
                f"(expected {expected_total:g}) mean_of_squares={mean_sq:g}",
                flush=True,
            )
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(launch(worker, world_size=2))
