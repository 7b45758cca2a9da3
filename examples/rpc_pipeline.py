"""torch.distributed.rpc futures composed with futurekit (two CPU workers on loopback).

The "client" (rank 0) sends work to the "server" (rank 1) with ``rpc_async``, which
returns ``torch.futures.Future`` objects. futurekit composes them:

* ``collect_all`` gathers several remote results;
* ``then(unwrap=True)`` starts a second remote call from the first one's result and
  completes with the second call's value (torch's Python ``then`` cannot flatten);
* ``wait(timeout=...)`` gives up on a slow call without cancelling it;
* ``wait_any`` takes whichever remote call answers first.

The slow calls are held on the server by a gate that the client opens (a second
call), not by a sleep: the timeout and the winner are the same on any machine.

Run: ``python examples/rpc_pipeline.py`` (loopback only, exits 0 on success).
"""

from __future__ import annotations

import sys
import threading
import warnings

from _dist import TIMEOUT_S, launch, need_torch

need_torch()  # a clear message naming the extra when torch is missing

import torch  # noqa: E402
import torch.distributed.rpc as rpc  # noqa: E402

import futurekit  # noqa: E402


def square(x: torch.Tensor) -> torch.Tensor:
    return x * x


#: Gates on the server: a held call answers once the client opens its gate.
GATES = {"timeout": threading.Event(), "any-of": threading.Event()}


def held_identity(x: int, gate: str) -> int:
    if not GATES[gate].wait(TIMEOUT_S):
        raise TimeoutError(f"the client never opened the gate {gate!r}")
    return x


def open_gate(gate: str) -> None:
    GATES[gate].set()


def client(world_size: int) -> None:
    server = "server"

    # 1. collect_all over several rpc_async futures
    calls = [
        futurekit.from_torch(rpc.rpc_async(server, square, args=(torch.tensor([float(i)]),)))
        for i in range(4)
    ]
    squares = [f.wait().item() for f in futurekit.collect_all(calls).wait(timeout=TIMEOUT_S)]
    assert squares == [0.0, 1.0, 4.0, 9.0], squares

    # 2. then(unwrap=True): the callback returns a torch future (another rpc_async);
    #    the child completes with that call's value: square(square(3)) == 81
    first = futurekit.from_torch(rpc.rpc_async(server, square, args=(torch.tensor([3.0]),)))
    chained = first.then(lambda f: rpc.rpc_async(server, square, args=(f.wait(),)), unwrap=True)
    assert chained.wait(timeout=TIMEOUT_S).item() == 81.0

    # 3. timeouts: wait() gives up, the call goes on and still completes
    slow = futurekit.from_torch(rpc.rpc_async(server, held_identity, args=(7, "timeout")))
    try:
        slow.wait(timeout=0.05)  # the server holds the call until the gate opens
        raise AssertionError("expected a timeout")
    except futurekit.TimeoutError:
        timed_out = True
    rpc.rpc_sync(server, open_gate, args=("timeout",))
    assert slow.wait(timeout=TIMEOUT_S) == 7

    # 4. any-of: whichever remote call answers first (the held one cannot)
    slower = futurekit.from_torch(rpc.rpc_async(server, held_identity, args=(2, "any-of")))
    fast = futurekit.from_torch(rpc.rpc_async(server, square, args=(torch.tensor([1.0]),)))
    winner = futurekit.wait_any([fast, slower], timeout=TIMEOUT_S).item()
    assert winner == 1.0 and not slower.done(), (winner, slower.done())
    rpc.rpc_sync(server, open_gate, args=("any-of",))
    assert slower.wait(timeout=TIMEOUT_S) == 2

    print(
        f"rpc pipeline OK: squares={squares} chained=81 timed_out={timed_out} "
        f"first_of_two={winner}",
        flush=True,
    )


def worker(rank: int, world_size: int, init_method: str) -> None:
    # torch's own rpc.shutdown() warns about an internal deprecated call
    warnings.filterwarnings("ignore", message="You are using a Backend")
    options = rpc.TensorPipeRpcBackendOptions(init_method=init_method, rpc_timeout=TIMEOUT_S)
    name = "client" if rank == 0 else "server"
    rpc.init_rpc(name, rank=rank, world_size=world_size, rpc_backend_options=options)
    try:
        if rank == 0:
            client(world_size)
    finally:
        rpc.shutdown()  # waits for every worker: the server serves until then


if __name__ == "__main__":
    sys.exit(launch(worker, world_size=2))
