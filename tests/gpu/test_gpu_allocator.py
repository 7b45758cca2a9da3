"""Allocator safety on a real GPU: a consumer stream's reads are never overwritten.

The hazard: a tensor is produced on stream P and read on stream C; the host drops its
last reference while C still has work reading it; torch's caching allocator, which
is stream-ordered on P, hands the block to the next allocation on P, and P's next
write lands under C's read. torch's CUDA future prevents this with
``record_stream(C)`` at ``wait()``; futurekit must too, on both backends.

Each test first runs the same hand-off **without** futurekit (the control) and
requires it to show the hazard: a pass is only trusted once its control failed.
The measurements (``../shared/reference/gpu-measurements.md``) show why: the hazard
is timing-dependent (a ~300 ms consumer kernel shows it every time, ~26 ms one
time in four, because a first kernel launch can stall the host), so every kernel
is warmed up first and the control is retried a few times.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from gpu_helpers import require_backend

import futurekit

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.gpu
SIZES = [4 << 10, 1 << 20, 16 << 20]  # bytes: 4 KiB, 1 MiB, 16 MiB
CONSUMER_MS = 300.0
CONTROL_TRIES = 3


def _cycles(ms: float) -> int:
    """``torch.cuda._sleep`` cycles for ``ms`` milliseconds (warmed up, then timed)."""
    torch.cuda._sleep(1000)  # the first launch loads the module: not timed
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    torch.cuda._sleep(10_000_000)
    end.record()
    end.synchronize()
    return int(ms * 10_000_000 / start.elapsed_time(end))


@contextlib.contextmanager
def _current(backend: str | None, stream: Any) -> Iterator[None]:
    with torch.cuda.stream(stream):
        if backend == "cuda-python":
            from futurekit.backends.cuda import use_stream

            with use_stream(stream):
                yield
        else:
            yield


def _handoff(backend: str | None, nbytes: int, cycles: int) -> bool:
    """One producer-to-consumer hand-off; True when the consumer read later data."""
    producer, consumer = torch.cuda.Stream(0), torch.cuda.Stream(0)
    n = nbytes // 4
    # warm every kernel used below on both streams, so no launch stalls the host later
    for s in (producer, consumer):
        with torch.cuda.stream(s):
            w = torch.empty(n, device="cuda:0")
            w.fill_(0.0)
            w.sum()
            torch.cuda._sleep(1000)
    torch.cuda.synchronize()
    with _current(backend, producer):
        x = torch.empty(n, device="cuda:0")
        x.fill_(1.0)
        fut = None
        if backend is not None:
            fut = futurekit.Future(devices=["cuda:0"], backend=backend)
            fut.set_result(x)
    with _current(backend, consumer):
        if fut is not None:
            got = fut.wait()  # the consumer stream waits; record_stream(consumer)
        else:
            consumer.wait_stream(producer)  # ordered, but no allocator hint: the control
            got = x
        torch.cuda._sleep(cycles)  # the consumer is still busy when the host moves on
        total = got.sum()
    del x, got, fut  # the host drops every reference while the consumer still reads
    later = []
    with torch.cuda.stream(producer):
        for _ in range(4):  # new allocations on the producer stream, written at once
            y = torch.empty(n, device="cuda:0")
            y.fill_(2.0)
            later.append(y)
    torch.cuda.synchronize()
    return float(total.item()) != float(n)


@pytest.fixture(scope="module")
def cycles() -> int:
    return _cycles(CONSUMER_MS)


@pytest.mark.parametrize("nbytes", SIZES)
def test_the_control_reproduces_the_reuse_hazard(nbytes: int, cycles: int) -> None:
    stale = [_handoff(None, nbytes, cycles) for _ in range(CONTROL_TRIES)]
    assert any(stale), (
        f"the hand-off without futurekit read intact data {CONTROL_TRIES} times out of "
        f"{CONTROL_TRIES} at {nbytes} bytes: this machine does not show the hazard, so a "
        "pass of the futurekit test below would prove nothing"
    )


@pytest.mark.parametrize("nbytes", SIZES)
@pytest.mark.parametrize("backend", ["torch", "cuda-python"])
def test_futurekit_prevents_the_reuse_hazard(backend: str, nbytes: int, cycles: int) -> None:
    require_backend(backend)
    control = [_handoff(None, nbytes, cycles) for _ in range(CONTROL_TRIES)]
    if not any(control):
        pytest.fail(f"the control read intact data at {nbytes} bytes: nothing to prove here")
    assert not any(_handoff(backend, nbytes, cycles) for _ in range(CONTROL_TRIES))
