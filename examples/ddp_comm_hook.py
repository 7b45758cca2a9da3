"""A DistributedDataParallel communication hook built with futurekit (two CPU processes).

DDP calls the hook for each gradient bucket and expects a ``torch.futures.Future``
that completes with the averaged gradient. The hook below starts an asynchronous
gloo all-reduce, wraps its torch future with ``futurekit.from_torch``, divides by
the world size in a ``then`` callback, and hands the pipeline back to DDP with
``to_torch()``.

Run: ``python examples/ddp_comm_hook.py`` (loopback only, exits 0 on success).
"""

# No ``from __future__ import annotations`` here: DDP checks the hook's annotations
# at runtime (``bucket: dist.GradBucket``, returning ``torch.futures.Future[torch.Tensor]``).
import datetime
import sys

from _dist import TIMEOUT_S, launch, need_torch

need_torch()  # a clear message naming the extra when torch is missing

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: E402

import futurekit  # noqa: E402


class HookState:
    """What the hook needs: the process group size, and a call counter."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self.calls = 0


def futurekit_allreduce_hook(
    state: HookState, bucket: dist.GradBucket
) -> torch.futures.Future[torch.Tensor]:
    """Average a gradient bucket across ranks; returns a torch future of the tensor."""
    state.calls += 1
    work = dist.all_reduce(bucket.buffer(), async_op=True)
    averaged = futurekit.from_torch(work.get_future()).then(
        lambda f: f.wait()[0].div_(state.world_size)
    )
    torch_future: torch.futures.Future[torch.Tensor] = averaged.to_torch()
    return torch_future  # DDP waits on this torch.futures.Future


def worker(rank: int, world_size: int, init_method: str) -> None:
    dist.init_process_group(
        "gloo",
        init_method=init_method,
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=TIMEOUT_S),
    )
    try:
        torch.manual_seed(0)  # same initial weights everywhere
        model = DDP(nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1)))
        state = HookState(world_size)
        model.register_comm_hook(state, futurekit_allreduce_hook)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

        # each rank trains on its own shard of y = sum(x)
        gen = torch.Generator().manual_seed(1 + rank)
        x = torch.randn(64, 8, generator=gen)
        y = x.sum(dim=1, keepdim=True)
        losses = []
        for _ in range(30):
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()  # the hook averages the gradients
            optimizer.step()
            losses.append(loss.item())

        # the replicas must still be identical: compare a checksum across ranks
        checksum = torch.stack([p.detach().sum() for p in model.parameters()]).sum()
        gathered = [torch.zeros(()) for _ in range(world_size)]
        dist.all_gather(gathered, checksum)
        assert all(torch.equal(g, gathered[0]) for g in gathered), gathered
        assert state.calls >= 30, state.calls
        assert losses[-1] < losses[0], (losses[0], losses[-1])
        dist.barrier()
        if rank == 0:
            print(
                f"ddp comm hook OK: {state.calls} hook calls, loss {losses[0]:.3f} -> "
                f"{losses[-1]:.3f}, replicas in sync",
                flush=True,
            )
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(launch(worker, world_size=2))
