"""from_torch/to_torch and from_concurrent/to_concurrent."""

from __future__ import annotations

import concurrent.futures as cf
import threading
from typing import Any

import pytest
import torch

import futurekit
from futurekit import Future

from .extras_helpers import TraceBackend, TraceBuffer, later, run_in_thread


# -- from_torch ---------------------------------------------------------------------
def test_from_torch_value_same_object_not_blocking() -> None:
    tf: torch.futures.Future[Any] = torch.futures.Future()
    fut = futurekit.from_torch(tf)
    assert isinstance(fut, Future)
    assert not fut.done()  # returned at once, pending
    value = torch.ones(2)
    later(0.01, lambda: tf.set_result(value))
    assert run_in_thread(lambda: fut.wait(timeout=10)) is value


def test_from_torch_completed_already() -> None:
    tf: torch.futures.Future[int] = torch.futures.Future()
    tf.set_result(3)
    assert futurekit.from_torch(tf).wait(0) == 3


def test_from_torch_error() -> None:
    tf: torch.futures.Future[int] = torch.futures.Future()
    fut = futurekit.from_torch(tf)
    tf.set_exception(ValueError("torch side"))
    with pytest.raises(ValueError, match="torch side"):
        fut.wait(0)
    assert not fut.cancelled()


def test_from_torch_then_callback_error() -> None:
    tf: torch.futures.Future[int] = torch.futures.Future()
    fut = futurekit.from_torch(tf.then(lambda f: 1 / 0))
    tf.set_result(1)
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        fut.wait(timeout=10)


def test_from_torch_cancelled_error_means_cancelled() -> None:
    tf: torch.futures.Future[int] = torch.futures.Future()
    fut = futurekit.from_torch(tf)
    tf.set_exception(cf.CancelledError())
    assert fut.cancelled()


def test_from_torch_composes_with_combinators() -> None:
    tfs: list[torch.futures.Future[int]] = [torch.futures.Future() for _ in range(3)]
    futs = [futurekit.from_torch(tf) for tf in tfs]
    total = futurekit.collect_all(futs).then(lambda f: sum(x.wait() for x in f.wait()))
    first = futurekit.collect_any(futs)

    def complete() -> None:
        for i, tf in enumerate(tfs):
            tf.set_result(i + 1)

    threading.Thread(target=complete, daemon=True).start()
    assert total.wait(timeout=10) == 6
    assert first.wait(timeout=10) is futs[0]


def test_from_torch_validation() -> None:
    for bad in (None, Future(), cf.Future(), 3):
        with pytest.raises(TypeError, match=r"torch\.futures\.Future"):
            futurekit.from_torch(bad)


def test_from_torch_with_devices_keeps_them(trace_backend: TraceBackend) -> None:
    tf: torch.futures.Future[Any] = torch.futures.Future()
    fut = futurekit.from_torch(tf, devices=["trace:1"])
    assert [str(d) for d in fut.devices] == ["trace:1"]
    buf = TraceBuffer("trace:1", 5)
    tf.set_result(buf)
    assert fut.wait(0) is buf
    assert [e[0] for e in trace_backend.log] == ["record", "wait"]  # recorded, then synced
    child = fut.then(lambda f: f.wait())
    assert child.devices == fut.devices


def test_from_torch_value_on_other_device_fails(trace_backend: TraceBackend) -> None:
    tf: torch.futures.Future[Any] = torch.futures.Future()
    fut = futurekit.from_torch(tf, devices=["trace:0"])
    tf.set_result(TraceBuffer("trace:1"))
    with pytest.raises(ValueError, match="trace:1"):
        fut.wait(0)


# -- to_torch -----------------------------------------------------------------------
def test_to_torch_value_not_blocking() -> None:
    fut: Future[Any] = Future()
    tf = fut.to_torch()
    assert isinstance(tf, torch.futures.Future)
    assert not tf.done()
    value = torch.arange(3)
    later(0.01, lambda: fut.set_result(value))
    assert run_in_thread(lambda: tf.wait()) is value


def test_to_torch_error_and_torch_then() -> None:
    fut: Future[int] = Future()
    tf = fut.to_torch()
    chained = tf.then(lambda f: f.value() + 1)
    err = KeyError("ours")
    fut.set_exception(err)
    with pytest.raises(KeyError, match="ours"):
        tf.wait()
    with pytest.raises(RuntimeError, match="KeyError"):
        chained.wait()


def test_to_torch_cancelled() -> None:
    fut: Future[int] = Future()
    tf = fut.to_torch()
    fut.cancel()
    with pytest.raises(cf.CancelledError):
        tf.wait()


def test_to_torch_completed_already_and_round_trip() -> None:
    fut: Future[str] = Future()
    fut.set_result("x")
    assert fut.to_torch().wait() == "x"
    pending: Future[str] = Future()
    back = futurekit.from_torch(pending.to_torch())
    pending.set_result("y")
    assert back.wait(0) == "y"


def test_to_torch_with_torch_collect_all() -> None:
    futs: list[Future[int]] = [Future() for _ in range(3)]
    tfs = [f.to_torch() for f in futs]
    gathered = torch.futures.collect_all(tfs)
    for i, f in enumerate(futs):
        f.set_result(i)
    assert [t.value() for t in gathered.wait()] == [0, 1, 2]


def test_to_torch_device_type_torch_does_not_know(trace_backend: TraceBackend) -> None:
    fut: Future[Any] = Future(devices=["trace:0"])
    with pytest.raises(ValueError, match="torch futures cannot hold"):
        fut.to_torch()


def test_to_torch_validation() -> None:
    from futurekit.core._interop import to_torch

    with pytest.raises(TypeError, match=r"futurekit\.Future"):
        to_torch(torch.futures.Future())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_devices_kept_both_ways() -> None:
    fut: Future[Any] = Future(devices=["cuda:0"])
    tf = fut.to_torch()
    t = torch.ones(4, device="cuda:0")
    fut.set_result(t)
    assert torch.equal(tf.wait(), t)
    back = futurekit.from_torch(tf, devices=["cuda:0"])
    assert [str(d) for d in back.devices] == ["cuda:0"]
    assert torch.equal(back.wait(timeout=10), t)


# -- concurrent.futures ------------------------------------------------------------
def test_from_concurrent_value_error_not_blocking() -> None:
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        gate = threading.Event()
        job = pool.submit(lambda: gate.wait(10) and "ran")
        fut = futurekit.from_concurrent(job)
        assert not fut.done()
        gate.set()
        assert fut.wait(timeout=10) == "ran"

        err = OSError("cf side")

        def fail() -> None:
            raise err

        bad = futurekit.from_concurrent(pool.submit(fail))
        assert bad.exception(timeout=10) is err


def test_from_concurrent_cancellation_both_ways() -> None:
    src: cf.Future[int] = cf.Future()
    ours = futurekit.from_concurrent(src)
    src.cancel()
    assert ours.cancelled()

    src2: cf.Future[int] = cf.Future()
    ours2 = futurekit.from_concurrent(src2)
    assert ours2.cancel()
    assert src2.cancelled()


def test_from_concurrent_cancel_running_source() -> None:
    src: cf.Future[int] = cf.Future()
    assert src.set_running_or_notify_cancel()
    ours = futurekit.from_concurrent(src)
    assert ours.cancel()  # ours is cancelled even though the running source goes on
    assert not src.cancelled()
    src.set_result(1)  # its late outcome is ignored
    assert ours.cancelled()


def test_from_concurrent_validation() -> None:
    for bad in (None, Future(), torch.futures.Future()):
        with pytest.raises(TypeError, match=r"concurrent\.futures\.Future"):
            futurekit.from_concurrent(bad)  # type: ignore[arg-type]


def test_to_concurrent_value_error() -> None:
    fut: Future[int] = Future()
    out = fut.to_concurrent()
    assert isinstance(out, cf.Future)
    assert not out.done()
    later(0.01, lambda: fut.set_result(4))
    assert out.result(timeout=10) == 4

    bad: Future[int] = Future()
    out2 = bad.to_concurrent()
    err = LookupError("x")
    bad.set_exception(err)
    assert out2.exception(timeout=0) is err


def test_to_concurrent_works_with_stdlib_helpers() -> None:
    futs: list[Future[int]] = [Future() for _ in range(3)]
    outs = [f.to_concurrent() for f in futs]

    def complete() -> None:
        for i in (2, 0, 1):
            futs[i].set_result(i)

    threading.Thread(target=complete, daemon=True).start()
    _, not_done = cf.wait(outs, timeout=10)
    assert not not_done
    assert sorted(o.result() for o in cf.as_completed(outs, timeout=10)) == [0, 1, 2]


def test_to_concurrent_cancellation_both_ways() -> None:
    fut: Future[int] = Future()
    out = fut.to_concurrent()
    assert out.cancel()
    assert fut.cancelled()

    fut2: Future[int] = Future()
    out2 = fut2.to_concurrent()
    fut2.cancel()
    assert out2.cancelled()
    with pytest.raises(cf.CancelledError):
        out2.result(timeout=0)


def test_to_concurrent_validation() -> None:
    from futurekit.core._interop import to_concurrent

    with pytest.raises(TypeError, match=r"futurekit\.Future"):
        to_concurrent(cf.Future())  # type: ignore[arg-type]


def test_to_concurrent_device_future_value(trace_backend: TraceBackend) -> None:
    fut: Future[Any] = Future(devices=["trace:0"])
    out = fut.to_concurrent()
    buf = TraceBuffer("trace:0")
    fut.set_result(buf)
    assert out.result(timeout=0) is buf


@pytest.mark.timeout(60)
def test_conversions_under_threads() -> None:
    n = 64
    srcs: list[Future[int]] = [Future() for _ in range(n)]
    chains = [
        futurekit.from_concurrent(futurekit.from_torch(s.to_torch()).to_concurrent()) for s in srcs
    ]
    barrier = threading.Barrier(4)

    def worker(k: int) -> None:
        barrier.wait(5)
        for i in range(k, n, 4):
            srcs[i].set_result(i)

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    assert futurekit.collect_all(chains).then(lambda f: [c.wait() for c in f.wait()]).wait(
        timeout=10
    ) == list(range(n))
