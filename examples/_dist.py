"""Launch helper shared by the distributed examples (loopback only, bounded in time).

``launch(fn, world_size)`` starts ``world_size`` processes with the ``spawn`` start
method, runs ``fn(rank, world_size, init_method)`` in each and returns 0 only if every
process exited 0 before the deadline (stragglers are terminated).

The processes meet through a file (``init_method="file://..."``, a fresh one per
launch), not through a TCP port chosen in advance: a port found free by the parent
can be taken by another process (a concurrent test, an outgoing connection) before
rank 0 binds it, which made the examples fail now and then under load. gloo and
TensorPipe then listen on ports the kernel assigns, on loopback.

``need_torch()`` exits with a message naming the extra when torch (with
``torch.distributed``) is not installed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable

#: Seconds the whole example may take (spawning and importing torch under load
#: included); the test that runs the examples allows more.
DEADLINE_S = 180.0
#: Seconds a rendezvous, a collective or a remote call may take.
TIMEOUT_S = 90.0


def need_torch() -> None:
    """Exit (status 0, like ``examples/cuda_streams.py``) when torch.distributed is missing."""
    try:
        import torch.distributed as dist
    except ImportError as exc:
        print(
            f"This example needs torch ({exc}). Install futurekit with the torch extra: "
            "pip install 'futurekit[torch]' (from a checkout: pip install '.[torch]')."
        )
        sys.exit(0)
    if not dist.is_available():
        print("This torch build has no torch.distributed, so there is nothing to run.")
        sys.exit(0)


def _loopback_env() -> None:
    if sys.platform.startswith("linux"):
        # gloo and TensorPipe pick the interface from the hostname by default;
        # pin them to loopback so the examples never touch a real network.
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        os.environ.setdefault("TP_SOCKET_IFNAME", "lo")


def _child(fn: Callable[[int, int, str], None], rank: int, world_size: int, init: str) -> None:
    _loopback_env()
    fn(rank, world_size, init)
    # The work is done and checked. Leave without interpreter finalization: torch's gloo
    # threads may still release objects that need the GIL while the interpreter is torn
    # down, which aborts with "terminate called without an active exception" now and
    # then (seen once in about ten runs; pytorch/pytorch#179291 describes the race).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def launch(fn: Callable[[int, int, str], None], world_size: int = 2) -> int:
    """Run ``fn(rank, world_size, init_method)`` in ``world_size`` spawned processes.

    Returns:
        0 if every process exited 0 before the deadline, else 1.
    """
    folder = tempfile.mkdtemp(prefix="futurekit-example-")
    init_method = "file://" + os.path.join(folder, "rendezvous")
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_child, args=(fn, rank, world_size, init_method), name=f"rank{rank}")
        for rank in range(world_size)
    ]
    try:
        for proc in procs:
            proc.start()
        deadline = time.monotonic() + DEADLINE_S
        status = 0
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                print(f"{proc.name} did not finish within {DEADLINE_S:g} s; terminating")
                status = 1
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(10)
            if proc.exitcode != 0:
                print(f"{proc.name} exited with {proc.exitcode}")
                status = 1
        return status
    finally:
        shutil.rmtree(folder, ignore_errors=True)
