"""then(executor=...) and then(unwrap=True)."""

from __future__ import annotations

import concurrent.futures as cf
import threading
from typing import Any

import pytest
import torch

import futurekit
from futurekit import Future

from .extras_helpers import TraceBackend, TraceBuffer, run_in_thread


@pytest.fixture
def pool() -> Any:
    with cf.ThreadPoolExecutor(max_workers=2, thread_name_prefix="fk-exec") as executor:
        yield executor


# -- executor -------------------------------------------------------------------------
def test_executor_runs_callback_in_executor_thread_not_inline(pool: Any) -> None:
    fut: Future[int] = Future()
    release = threading.Event()
    seen: list[str] = []

    def callback(f: Future[int]) -> int:
        seen.append(threading.current_thread().name)
        assert release.wait(10)  # blocks the executor thread, not set_result's
        return f.wait() + 1

    child = fut.then(callback, executor=pool)
    fut.set_result(1)  # returns although the callback is still blocked
    assert not child.done()  # the blocked callback did not run inline
    release.set()
    assert child.wait(timeout=10) == 2
    assert seen and seen[0].startswith("fk-exec")
    assert threading.current_thread().name not in seen


def test_executor_on_completed_future(pool: Any) -> None:
    fut: Future[str] = Future()
    fut.set_result("x")
    child = fut.then(lambda f: (f.wait(), threading.current_thread().name), executor=pool)
    value, thread = child.wait(timeout=10)
    assert value == "x"
    assert thread.startswith("fk-exec")


def test_executor_callback_error_is_callback_error(pool: Any) -> None:
    fut: Future[int] = Future()
    child = fut.then(lambda f: 1 / 0, executor=pool)
    fut.set_result(0)
    with pytest.raises(futurekit.CallbackError) as info:
        child.wait(timeout=10)
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_executor_preserves_order_with_single_worker() -> None:
    fut: Future[int] = Future()
    order: list[int] = []
    with cf.ThreadPoolExecutor(max_workers=1) as one:
        children = [fut.then(lambda f, i=i: order.append(i), executor=one) for i in range(5)]
        fut.set_result(0)
        futurekit.wait_all(children)
    assert order == [0, 1, 2, 3, 4]


def test_executor_shut_down_child_fails_clearly() -> None:
    executor = cf.ThreadPoolExecutor(max_workers=1)
    executor.shutdown()
    fut: Future[int] = Future()
    child = fut.then(lambda f: f.wait(), executor=executor)
    fut.set_result(1)  # must not raise in the completing thread
    with pytest.raises(RuntimeError, match="executor") as info:
        child.wait(timeout=10)
    assert "shutdown" in str(info.value.__cause__)


def test_executor_cancels_queued_callback_child_fails() -> None:
    executor = cf.ThreadPoolExecutor(max_workers=1)
    gate = threading.Event()
    try:
        executor.submit(gate.wait, 10)  # occupies the only worker
        fut: Future[int] = Future()
        child = fut.then(lambda f: f.wait(), executor=executor)
        fut.set_result(1)
        executor.shutdown(wait=False, cancel_futures=True)
        with pytest.raises(RuntimeError, match="cancelled the callback"):
            child.wait(timeout=10)
    finally:
        gate.set()
        executor.shutdown()


@pytest.mark.parametrize("bad", [object(), "pool", 3])
def test_executor_validation(bad: Any) -> None:
    with pytest.raises(TypeError, match="executor"):
        Future().then(lambda f: None, executor=bad)


def test_executor_device_future_gets_pool_streams(trace_backend: TraceBackend, pool: Any) -> None:
    fut: Future[TraceBuffer] = Future(devices=["trace:0", "trace:1"])
    seen: dict[str, Any] = {}

    def callback(f: Future[TraceBuffer]) -> TraceBuffer:
        seen["thread"] = threading.current_thread().name
        seen["streams"] = [trace_backend.current_stream(d) for d in f.devices]
        return TraceBuffer("trace:1", f.wait().value + 1)

    child = fut.then(callback, executor=pool)
    fut.set_result(TraceBuffer("trace:0", 1))
    out = child.wait(timeout=10)
    assert out.value == 2
    assert child.devices == fut.devices
    assert seen["thread"].startswith("fk-exec")
    streams = seen["streams"]
    assert all("/pool" in s for s in streams), streams  # pool streams made current there
    recorded = [e for e in trace_backend.log if e[0] == "record"]
    parent_event = recorded[0][2]
    # in the executor thread, the pool stream waited on the parent's event ...
    assert any(
        op == "wait" and ev == parent_event and "/pool" in st and th == seen["thread"]
        for op, st, ev, th in trace_backend.log
    )
    # ... and the child's event was recorded on a pool stream of trace:1
    assert recorded[1][1].startswith("trace:1/pool")


def test_executor_sim_future(sim: Any, pool: Any) -> None:
    import time

    producer = sim.Stream("sim:0")
    buf = sim.Buffer("sim:0", 0)
    fut: Future[Any] = Future(devices=["sim:0"])
    with sim.use_stream(producer):
        sim.launch(producer, time.sleep, 0.05)
        sim.launch(producer, setattr, buf, "value", 5)
        fut.set_result(buf)

    def callback(f: Future[Any]) -> Any:
        out = sim.Buffer("sim:0", 0)
        stream = sim.current_stream("sim:0")
        # launched on the pool stream: ordered after the producer's write
        sim.launch(stream, lambda: setattr(out, "value", f.value().value * 2))
        return out

    child = fut.then(callback, executor=pool)
    result = child.wait(timeout=10)
    child.synchronize()
    assert result.value == 10


# -- unwrap -----------------------------------------------------------------------------
def test_unwrap_futurekit_future() -> None:
    fut: Future[int] = Future()
    inner: Future[str] = Future()
    child = fut.then(lambda f: inner, unwrap=True)
    fut.set_result(1)
    assert not child.done()
    inner.set_result("inner")
    assert child.wait(timeout=10) == "inner"


def test_without_unwrap_the_future_is_the_value() -> None:
    fut: Future[int] = Future()
    inner: Future[str] = Future()
    child = fut.then(lambda f: inner)
    fut.set_result(1)
    assert child.wait() is inner


def test_unwrap_plain_value() -> None:
    fut: Future[int] = Future()
    child = fut.then(lambda f: f.wait() + 1, unwrap=True)
    fut.set_result(1)
    assert child.wait() == 2


def test_unwrap_torch_future() -> None:
    fut: Future[int] = Future()
    tf: torch.futures.Future[int] = torch.futures.Future()
    child = fut.then(lambda f: tf, unwrap=True)
    fut.set_result(1)
    assert not child.done()
    threading.Thread(target=tf.set_result, args=(42,), daemon=True).start()
    assert child.wait(timeout=10) == 42


def test_unwrap_concurrent_future(pool: Any) -> None:
    fut: Future[int] = Future()
    child = fut.then(lambda f: pool.submit(lambda: f.wait() * 3), unwrap=True)
    fut.set_result(2)
    assert child.wait(timeout=10) == 6


def test_unwrap_mixed_nesting() -> None:
    fut: Future[int] = Future()
    leaf: Future[str] = Future()
    tf: torch.futures.Future[Any] = torch.futures.Future()
    cfut: cf.Future[Any] = cf.Future()
    middle: Future[Any] = Future()
    # callback -> futurekit -> concurrent -> torch -> futurekit leaf
    child = fut.then(lambda f: middle, unwrap=True)
    fut.set_result(0)
    middle.set_result(cfut)
    cfut.set_result(tf)
    assert not child.done()
    tf.set_result(leaf)
    assert not child.done()
    leaf.set_result("deep")
    assert child.wait(timeout=10) == "deep"


def test_unwrap_deep_nesting_does_not_overflow() -> None:
    depth = 3000
    leaf: Future[str] = Future()
    outer: Future[Any] = leaf
    for _ in range(depth):
        wrapper: Future[Any] = Future()
        wrapper.set_result(outer)
        outer = wrapper
    fut: Future[int] = Future()
    child = fut.then(lambda f: outer, unwrap=True)
    fut.set_result(0)
    leaf.set_result("bottom")
    assert run_in_thread(lambda: child.wait(timeout=10)) == "bottom"


@pytest.mark.parametrize("kind", ["futurekit", "torch", "concurrent"])
def test_unwrap_error_propagates_same_object(kind: str) -> None:
    err = ValueError("inner failed")
    inner: Any
    if kind == "futurekit":
        inner = Future()
        inner.set_exception(err)
    elif kind == "torch":
        inner = torch.futures.Future()
        inner.set_exception(err)
    else:
        inner = cf.Future()
        inner.set_exception(err)
    fut: Future[int] = Future()
    child = fut.then(lambda f: inner, unwrap=True)
    fut.set_result(1)
    with pytest.raises(ValueError, match="inner failed") as info:
        child.wait(timeout=10)
    if kind != "torch":  # torch re-raises its own copy of a Python exception
        assert info.value is err


def test_unwrap_cancelled_inner() -> None:
    inner: Future[int] = Future()
    fut: Future[int] = Future()
    child = fut.then(lambda f: inner, unwrap=True)
    fut.set_result(1)
    inner.cancel()
    assert child.cancelled()
    cinner: cf.Future[int] = cf.Future()
    child2 = fut.then(lambda f: cinner, unwrap=True)
    cinner.cancel()
    with pytest.raises(futurekit.CancelledError):
        child2.wait(timeout=10)


def test_unwrap_with_executor_and_chain(pool: Any) -> None:
    fut: Future[int] = Future()

    def step(f: Future[int]) -> Future[int]:
        nxt: Future[int] = Future()
        threading.Timer(0.01, nxt.set_result, args=(f.wait() + 1,)).start()
        return nxt

    child = fut.then(step, executor=pool, unwrap=True).then(step, unwrap=True)
    fut.set_result(1)
    assert child.wait(timeout=10) == 3


def test_unwrap_device_child_keeps_devices(trace_backend: TraceBackend) -> None:
    fut: Future[TraceBuffer] = Future(devices=["trace:0"])
    inner: Future[TraceBuffer] = Future(devices=["trace:0"])
    child = fut.then(lambda f: inner, unwrap=True)
    assert child.devices == fut.devices
    fut.set_result(TraceBuffer("trace:0", 1))
    buf = TraceBuffer("trace:0", 2)
    inner.set_result(buf)
    assert child.wait(timeout=10) is buf
    recorded = [e for e in trace_backend.log if e[0] == "record"]
    # parent and inner: the child takes inner's events (same backend and devices),
    # so the forwarder needs no streams and records nothing of its own
    assert len(recorded) == 2
    assert child._dev is not None and inner._dev is not None
    assert child._dev.events == inner._dev.events
