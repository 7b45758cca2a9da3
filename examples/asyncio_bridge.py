"""futurekit futures in asyncio code: await, to_asyncio, from_asyncio, timeouts, cancel.

A worker thread completes futurekit futures while an event loop keeps serving other
coroutines; nothing blocks the loop.

Run: ``python examples/asyncio_bridge.py``.
"""

from __future__ import annotations

import asyncio
import threading
import time

import futurekit
from futurekit import Future


def slow_square(fut: Future[int], x: int, delay: float) -> None:
    """Complete ``fut`` from a plain thread after ``delay`` seconds."""
    time.sleep(delay)
    fut.set_result(x * x)


async def heartbeat(beats: list[float]) -> None:
    """Keeps ticking while other coroutines await futurekit futures."""
    while True:
        beats.append(time.monotonic())
        await asyncio.sleep(0.01)


async def main() -> None:
    beats: list[float] = []
    ticker = asyncio.create_task(heartbeat(beats))

    # 1. await a futurekit future completed by another thread
    fut: Future[int] = Future()
    threading.Thread(target=slow_square, args=(fut, 7, 0.1), daemon=True).start()
    value = await fut
    print(f"awaited a futurekit future: {value} (the loop ticked {len(beats)} times meanwhile)")

    # 2. then() chains work the same; errors come back as the original exception
    bad: Future[int] = Future()
    threading.Timer(0.02, bad.set_exception, args=(KeyError("missing"),)).start()
    try:
        await bad.then(lambda f: f.wait() + 1)
    except futurekit.CallbackError as exc:
        print(f"awaited a failing chain: {type(exc.__cause__).__name__} {exc.__cause__}")

    # 3. asyncio timeouts cancel only the await, not the future
    never: Future[int] = Future()
    try:
        await asyncio.wait_for(never, timeout=0.05)
    except asyncio.TimeoutError:
        print(f"asyncio.wait_for timed out; the future is still pending: {not never.done()}")

    # 4. to_asyncio: a real asyncio.Future, usable with gather/shield/wait
    futs: list[Future[int]] = [Future() for _ in range(3)]
    for i, f in enumerate(futs):
        threading.Thread(target=slow_square, args=(f, i + 1, 0.01 * (3 - i)), daemon=True).start()
    values = await asyncio.gather(*(f.to_asyncio() for f in futs))
    print(f"asyncio.gather over to_asyncio(): {values}")

    # 5. from_asyncio: hand a task's result to thread-based code
    async def fetch() -> str:
        await asyncio.sleep(0.02)
        return "fetched"

    task_future = futurekit.from_asyncio(asyncio.ensure_future(fetch()))
    from_thread = await asyncio.to_thread(task_future.wait, 10)  # a thread blocks, not the loop
    print(f"a thread waited on from_asyncio(task): {from_thread}")

    # 6. cancellation crosses the bridge both ways
    pending: Future[int] = Future()
    aio = pending.to_asyncio()
    aio.cancel()
    await asyncio.sleep(0)
    print(f"cancelling the asyncio future cancelled ours: {pending.cancelled()}")

    ticker.cancel()
    assert value == 49 and values == [1, 4, 9] and from_thread == "fetched"
    assert pending.cancelled() and beats  # the heartbeat ran while we awaited


if __name__ == "__main__":
    asyncio.run(main())
    print("asyncio bridge OK")
