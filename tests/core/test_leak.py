"""No leaks: traced memory stays flat over many futures with callbacks."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import pytest

from futurekit import Future, collect_all

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

#: Allowed growth between two measurements: under one byte per future.
SLACK = 64 * 1024


def _noop(fut: Future[Any]) -> None:
    return None


def _plus_one(fut: Future[int]) -> int:
    return fut.value() + 1


def _churn(n: int) -> None:
    for i in range(n):
        f: Future[int] = Future()
        f.add_done_callback(_noop)
        child = f.then(_plus_one)
        if i % 3 == 0:
            f.set_exception(ValueError(i))
            try:
                f.wait()
            except ValueError:
                pass
            try:
                child.wait()
            except RuntimeError:
                pass
        else:
            f.set_result(i)
            assert child.wait() == i + 1
        late = f.then(_noop)  # registered after completion: runs inline
        late.wait()
        if i % 50 == 0:
            all_fut = collect_all([f, child, late])
            try:
                all_fut.wait()
            except Exception:
                pass


def _traced_after(n: int) -> int:
    _churn(n)
    gc.collect()
    current, _ = tracemalloc.get_traced_memory()
    return current


def test_memory_flat_over_200000_futures_with_callbacks() -> None:
    tracemalloc.start()
    try:
        _churn(5_000)  # warm caches, free lists, interned objects
        base = _traced_after(0)
        after_100k = _traced_after(100_000)
        after_200k = _traced_after(100_000)
    finally:
        tracemalloc.stop()
    assert after_100k - base < SLACK, f"grew by {after_100k - base} bytes over 100,000 futures"
    assert after_200k - base < SLACK, f"grew by {after_200k - base} bytes over 200,000 futures"


def test_completed_futures_are_collected() -> None:
    import weakref

    refs = []
    for i in range(1_000):
        f: Future[int] = Future()
        child = f.then(_plus_one)
        f.add_done_callback(_noop)
        f.set_result(i)
        refs.append(weakref.ref(f))
        refs.append(weakref.ref(child))
    del f, child
    gc.collect()
    assert sum(r() is not None for r in refs) == 0
