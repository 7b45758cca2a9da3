"""Launch helper shared by the distributed examples (loopback only, bounded in time).

``launch(fn, world_size)`` starts ``world_size`` processes with the ``spawn`` start
method on 127.0.0.1 with a free port, runs ``fn(rank, world_size)`` in each and
returns 0 only if every process exited 0 before the deadline (stragglers are
terminated).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import sys
import time
from collections.abc import Callable

DEADLINE_S = 120.0


def free_port() -> int:
    """A TCP port that is free on the loopback interface now (bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _loopback_env(port: int) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    if sys.platform.startswith("linux"):
        # gloo and TensorPipe pick the interface from the hostname by default;
        # pin them to loopback so the examples never touch a real network.
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        os.environ.setdefault("TP_SOCKET_IFNAME", "lo")


def _child(fn: Callable[[int, int], None], rank: int, world_size: int, port: int) -> None:
    _loopback_env(port)
    fn(rank, world_size)


def launch(fn: Callable[[int, int], None], world_size: int = 2) -> int:
    """Run ``fn(rank, world_size)`` in ``world_size`` spawned processes; the exit status."""
    port = free_port()
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_child, args=(fn, rank, world_size, port), name=f"rank{rank}")
        for rank in range(world_size)
    ]
    for proc in procs:
        proc.start()
    deadline = time.monotonic() + DEADLINE_S
    status = 0
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            print(f"{proc.name} did not finish within {DEADLINE_S} s; terminating", flush=True)
            status = 1
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
            proc.join(10)
        if proc.exitcode != 0:
            status = 1
    return status
