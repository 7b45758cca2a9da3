"""await, to_asyncio and from_asyncio."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import futurekit
from futurekit import Future

from .extras_helpers import TraceBackend, TraceBuffer, later, run_in_thread


def run(coro: Any, timeout: float = 20.0) -> Any:
    """Run a coroutine on a fresh loop, bounded in time."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_await_does_not_block_the_loop() -> None:
    fut: Future[str] = Future()
    ticks: list[int] = []

    async def ticker() -> None:
        for i in range(5):
            ticks.append(i)
            await asyncio.sleep(0.005)
        # only now complete the future, from another thread
        threading.Thread(target=fut.set_result, args=("done",), daemon=True).start()

    async def main() -> tuple[str, bool]:
        tick_task = asyncio.create_task(ticker())
        value = await fut  # the ticker must keep running meanwhile
        return value, tick_task.done()

    value, ticked = run(main())
    assert value == "done"
    assert ticked
    assert ticks == [0, 1, 2, 3, 4]


def test_await_completed_in_loop_thread() -> None:
    async def main() -> int:
        fut: Future[int] = Future()
        asyncio.get_running_loop().call_later(0.01, fut.set_result, 5)
        return await fut

    assert run(main()) == 5


def test_await_already_complete() -> None:
    fut: Future[list[int]] = Future()
    value = [1]
    fut.set_result(value)

    async def main() -> list[int]:
        return await fut

    assert run(main()) is value


def test_await_raises_original_error() -> None:
    fut: Future[int] = Future()
    err = ValueError("original")

    async def main() -> None:
        later(0.01, lambda: fut.set_exception(err))
        await fut

    with pytest.raises(ValueError) as info:
        run(main())
    assert info.value is err


def test_await_cancelled_future_raises_cancelled_error() -> None:
    fut: Future[int] = Future()

    async def main() -> str:
        later(0.01, fut.cancel)
        try:
            await fut
        except futurekit.CancelledError:
            return "caught"  # a concurrent.futures-style error: the task itself is fine
        return "no error"

    assert run(main()) == "caught"


def test_await_then_child_and_many_awaiters() -> None:
    fut: Future[int] = Future()
    child = fut.then(lambda f: f.wait() * 10)

    async def main() -> list[int]:
        later(0.01, lambda: fut.set_result(4))
        return list(await asyncio.gather(fut, child, fut, child))

    assert run(main()) == [4, 40, 4, 40]


def test_wait_for_timeout_leaves_future_usable() -> None:
    fut: Future[int] = Future()

    async def main() -> int:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(fut, 0.02)  # cancels only the await
        assert not fut.done() and not fut.cancelled()
        later(0.01, lambda: fut.set_result(8))
        return await fut

    assert run(main()) == 8


def test_loop_closed_before_completion_is_harmless() -> None:
    fut: Future[int] = Future()

    async def main() -> None:
        task = asyncio.ensure_future(fut)  # wraps the awaitable
        await asyncio.sleep(0)
        task.cancel()

    run(main())
    fut.set_result(1)  # the loop is closed: the waker must not raise
    assert fut.wait() == 1


# -- to_asyncio ------------------------------------------------------------------
def test_to_asyncio_value_and_error() -> None:
    async def main() -> tuple[int, BaseException | None]:
        ok: Future[int] = Future()
        bad: Future[int] = Future()
        aio_ok = ok.to_asyncio()
        aio_bad = bad.to_asyncio()
        assert asyncio.isfuture(aio_ok)
        err = KeyError("k")
        later(0.01, lambda: ok.set_result(3))
        later(0.01, lambda: bad.set_exception(err))
        value = await aio_ok
        try:
            await aio_bad
        except KeyError as exc:
            assert exc is err
            return value, exc
        return value, None

    value, exc = run(main())
    assert value == 3
    assert isinstance(exc, KeyError)


def test_to_asyncio_explicit_loop_from_other_thread() -> None:
    loop = asyncio.new_event_loop()
    try:
        fut: Future[str] = Future()
        aio = run_in_thread(lambda: fut.to_asyncio(loop))  # no running loop there
        assert aio.get_loop() is loop
        later(0.01, lambda: fut.set_result("x"))
        assert loop.run_until_complete(asyncio.wait_for(aio, 10)) == "x"
    finally:
        loop.close()


def test_to_asyncio_validation() -> None:
    fut: Future[int] = Future()
    with pytest.raises(RuntimeError, match="event loop"):
        fut.to_asyncio()  # no running loop in this thread
    with pytest.raises(TypeError, match="loop"):
        fut.to_asyncio(loop="not a loop")


def test_to_asyncio_cancellation_both_ways() -> None:
    async def main() -> None:
        ours: Future[int] = Future()
        aio = ours.to_asyncio()
        aio.cancel()
        await asyncio.sleep(0)
        assert ours.cancelled()

        theirs: Future[int] = Future()
        aio2 = theirs.to_asyncio()
        later(0.01, theirs.cancel)
        with pytest.raises(asyncio.CancelledError):
            await aio2
        assert aio2.cancelled()

    run(main())


# -- from_asyncio ----------------------------------------------------------------
def test_from_asyncio_value_waited_from_another_thread() -> None:
    async def main() -> int:
        aio = asyncio.get_running_loop().create_future()
        fut = futurekit.from_asyncio(aio)
        asyncio.get_running_loop().call_later(0.01, aio.set_result, 11)
        # a thread blocks on it while the loop keeps running
        return await asyncio.to_thread(fut.wait, 10)

    assert run(main()) == 11


def test_from_asyncio_task_error_and_then() -> None:
    err = ZeroDivisionError("zero")

    async def boom() -> int:
        await asyncio.sleep(0.01)
        raise err

    async def main() -> BaseException | None:
        fut = futurekit.from_asyncio(asyncio.ensure_future(boom()))
        return await fut.then(lambda f: f.exception())

    assert run(main()) is err


def test_from_asyncio_cancellation_both_ways() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        aio = loop.create_future()
        fut = futurekit.from_asyncio(aio)
        aio.cancel()
        await asyncio.sleep(0)
        assert fut.cancelled()
        with pytest.raises(futurekit.CancelledError):
            fut.wait(0)

        async def forever() -> None:
            await asyncio.sleep(3600)

        task = asyncio.ensure_future(forever())
        fut2 = futurekit.from_asyncio(task)
        # cancelling ours from another thread cancels the task on its loop
        await asyncio.to_thread(fut2.cancel)
        with pytest.raises(asyncio.CancelledError):
            await task
        assert fut2.cancelled()

    run(main())


def test_from_asyncio_validation() -> None:
    with pytest.raises(TypeError, match="asyncio"):
        futurekit.from_asyncio(Future())
    with pytest.raises(TypeError):
        futurekit.from_asyncio(None)


def test_round_trip() -> None:
    async def main() -> int:
        fut: Future[int] = Future()
        back = futurekit.from_asyncio(fut.to_asyncio())
        later(0.01, lambda: fut.set_result(2))
        return await back

    assert run(main()) == 2


# -- device futures ---------------------------------------------------------------
def test_await_device_future_syncs_loop_thread_streams(trace_backend: TraceBackend) -> None:
    fut: Future[TraceBuffer] = Future(devices=["trace:0"])
    buf = TraceBuffer("trace:0", 1)

    async def main() -> tuple[TraceBuffer, str]:
        later(0.01, lambda: fut.set_result(buf))
        value = await fut
        return value, threading.current_thread().name

    value, loop_thread = run(main())
    assert value is buf
    records = [e for e in trace_backend.log if e[0] == "record"]
    waits = [e for e in trace_backend.log if e[0] == "wait"]
    assert len(records) == 1
    # like wait(): the loop thread's current stream waits on the recorded event
    assert ("wait", "trace:0/main", records[0][2], loop_thread) in waits


def test_await_sim_future_synchronizes(sim: Any) -> None:
    import time

    producer = sim.Stream("sim:0")
    buf = sim.Buffer("sim:0", 0)
    fut: Future[Any] = Future(devices=["sim:0"])

    def slow_write() -> None:
        time.sleep(0.05)
        buf.value = 1

    with sim.use_stream(producer):
        sim.launch(producer, slow_write)
        fut.set_result(buf)

    async def main() -> int:
        consumer = sim.Stream("sim:0")
        seen: list[int] = []
        with sim.use_stream(consumer):
            value = await fut  # orders the consumer after the producer's write
            sim.launch(consumer, lambda: seen.append(value.value))
        consumer.synchronize()
        return seen[0]

    assert run(main()) == 1
