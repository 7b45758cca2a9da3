"""No recursion limit: very long chains, deep nesting, unchanged shallow order, no deadlock."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest

from futurekit import Future, collect_all
from futurekit.core import _trampoline

from .conftest import run_in_thread

MAX = _trampoline.MAX_INLINE_DEPTH


def _add_one(fut: Future[int]) -> int:
    return fut.value() + 1


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_million_link_then_chain() -> None:
    n = 1_000_000
    head: Future[int] = Future()
    tail = head
    for _ in range(n):
        tail = tail.then(_add_one)
    assert not tail.done()
    head.set_result(0)
    assert tail.done()
    assert tail.wait() == n


@pytest.mark.timeout(120)
def test_long_add_done_callback_chain_completed_by_set_result() -> None:
    n = 200_000
    futs: list[Future[int]] = [Future() for _ in range(n)]
    for prev, nxt in itertools.pairwise(futs):
        prev.add_done_callback(lambda x, nxt=nxt: nxt.set_result(x.value() + 1))
    futs[0].set_result(0)
    assert all(f.done() for f in futs)
    assert futs[-1].value() == n - 1


@pytest.mark.timeout(120)
def test_long_chain_in_a_worker_thread() -> None:
    def build_and_run() -> int:
        head: Future[int] = Future()
        tail = head
        for _ in range(100_000):
            tail = tail.then(_add_one)
        head.set_result(0)
        return tail.wait()

    assert run_in_thread(build_and_run, timeout=100) == 100_000


@pytest.mark.timeout(120)
def test_long_chain_failure_reaches_the_end() -> None:
    head: Future[int] = Future()
    tail = head
    for _ in range(100_000):
        tail = tail.then(lambda x: 0)
    last = tail.then(lambda x: x.value())
    head.set_exception(ValueError("boom"))
    assert tail.wait() == 0
    assert last.wait() == 0


@pytest.mark.timeout(120)
def test_deeply_nested_collect_all() -> None:
    depth = 100_000
    leaf: Future[int] = Future()
    top: Future[Any] = leaf
    for _ in range(depth):
        top = collect_all([top])
    assert not top.done()
    leaf.set_result(7)
    assert top.done()
    value = top.wait()
    levels = 0
    while isinstance(value, list):
        (inner,) = value
        value = inner.value()
        levels += 1
    assert levels == depth and value == 7


@pytest.mark.timeout(120)
def test_deeply_nested_collect_all_failure() -> None:
    leaf: Future[int] = Future()
    top: Future[Any] = leaf
    for _ in range(50_000):
        top = collect_all([top, Future()])
    e = KeyError("deep")
    leaf.set_exception(e)
    with pytest.raises(KeyError) as info:
        top.wait()
    assert info.value is e


def _tree_order(make: Any, depth: int) -> list[str]:
    """Register a tree of callbacks (each node: then, add_done_callback, then) and run it."""
    order: list[str] = []
    head = make()

    def grow(fut: Any, name: str, level: int) -> None:
        if level == depth:
            return
        child = fut.then(lambda x, n=f"{name}.t": order.append(n))
        fut.add_done_callback(lambda x, n=f"{name}.a": order.append(n))
        second = fut.then(lambda x, n=f"{name}.u": order.append(n))
        grow(child, f"{name}.t", level + 1)
        grow(second, f"{name}.u", level + 1)

    grow(head, "h", 0)
    head.set_result(0)
    return order


def _expected_dfs(depth: int) -> list[str]:
    """torch's recursive order: each callback, then everything its child triggers."""
    out: list[str] = []

    def visit(name: str, level: int) -> None:
        if level == depth:
            return
        out.append(f"{name}.t")
        visit(f"{name}.t", level + 1)
        out.append(f"{name}.a")
        out.append(f"{name}.u")
        visit(f"{name}.u", level + 1)

    visit("h", 0)
    return out


@pytest.mark.timeout(60)
def test_shallow_trees_keep_torchs_depth_first_order() -> None:
    depth = min(8, MAX - 1)
    order = _tree_order(Future, depth)
    assert order == _expected_dfs(depth)


@pytest.mark.timeout(60)
def test_shallow_order_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    depth = 6
    assert _tree_order(Future, depth) == _tree_order(torch.futures.Future, depth)


@pytest.mark.timeout(60)
def test_chain_just_below_inline_depth_runs_fully_inline() -> None:
    order: list[int] = []
    head: Future[int] = Future()
    f = head
    for i in range(MAX - 1):
        f = f.then(lambda x, i=i: order.append(i))
        head.add_done_callback(lambda x, i=i: order.append(1000 + i))
    head.set_result(0)
    # the whole chain runs inside the first callback, before the head's later callbacks
    assert order == list(range(MAX - 1)) + [1000 + i for i in range(MAX - 1)]


@pytest.mark.timeout(60)
def test_deep_chain_runs_every_callback_once() -> None:
    counts = [0] * (MAX * 4)
    head: Future[int] = Future()
    f = head
    for i in range(MAX * 4):

        def cb(x: Future[Any], i: int = i) -> int:
            counts[i] += 1
            return i

        f = f.then(cb)
    head.set_result(0)
    assert counts == [1] * (MAX * 4)
    assert f.value() == MAX * 4 - 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "position", [MAX - 3, MAX - 2, MAX - 1, MAX, MAX + 1, 2 * MAX - 1, 3 * MAX - 1]
)
def test_wait_inside_deep_callback_does_not_deadlock(position: int) -> None:
    """A callback completes ``g`` then waits on ``g``'s then-chain: it must return.

    Link ``k`` of a nested completion chain runs its callbacks at nesting depth
    ``k + 1`` until ``MAX_INLINE_DEPTH``; the next completion is deferred to the
    trampoline and nesting restarts from there. So at ``position`` ``MAX - 1`` and
    ``2 * MAX - 1`` the callback runs at the inline limit and ``g``'s callbacks are
    deferred: ``wait()`` must run them itself instead of blocking forever.
    """
    seen: dict[str, Any] = {}

    def scenario() -> int:
        g: Future[int] = Future()
        g_tail = g.then(_add_one).then(_add_one)

        def deep_callback(x: Future[Any]) -> int:
            g.set_result(10)
            seen["deferred"] = not g_tail.done()
            seen["queued"] = _trampoline.has_queued_work()
            seen["waited"] = g_tail.wait()
            seen["with_timeout"] = g_tail.wait(timeout=5)
            return 0

        head: Future[int] = Future()
        f = head
        for _ in range(position):
            # nested completions: each link completes the next inside its callback
            nxt: Future[int] = Future()
            f.add_done_callback(lambda x, nxt=nxt: nxt.set_result(0))
            f = nxt
        end = f.then(deep_callback)
        head.set_result(0)
        return end.wait()

    assert run_in_thread(scenario, timeout=30) == 0
    assert seen["waited"] == 12 and seen["with_timeout"] == 12
    if position in (MAX - 1, 2 * MAX - 1, 3 * MAX - 1):
        assert seen["deferred"] and seen["queued"]


@pytest.mark.timeout(60)
def test_deferral_really_happens_beyond_inline_depth() -> None:
    """The no-deadlock test above is meaningful: deep completions are deferred."""
    seen: list[bool] = []
    g: Future[int] = Future()
    g_child = g.then(_add_one)

    def deep(x: Future[Any]) -> None:
        g.set_result(1)
        seen.append(g_child.done())
        seen.append(g_child.wait() == 2)

    head: Future[int] = Future()
    f = head
    for _ in range(MAX - 1):  # ``deep`` runs MAX_INLINE_DEPTH completions deep
        nxt: Future[int] = Future()
        f.add_done_callback(lambda x, nxt=nxt: nxt.set_result(0))
        f = nxt
    f.add_done_callback(deep)
    head.set_result(0)
    assert seen == [False, True]


@pytest.mark.timeout(60)
def test_wait_in_deep_callback_for_other_thread() -> None:
    """A deep callback may also block on a future another thread completes."""
    other: Future[str] = Future()
    results: list[str] = []

    def deep(x: Future[Any]) -> None:
        threading.Timer(0.05, other.set_result, args=("from thread",)).start()
        results.append(other.wait(timeout=10))

    head: Future[int] = Future()
    f = head
    for _ in range(MAX + 3):
        nxt: Future[int] = Future()
        f.add_done_callback(lambda x, nxt=nxt: nxt.set_result(0))
        f = nxt
    f.add_done_callback(deep)
    run_in_thread(lambda: head.set_result(0), timeout=20)
    assert results == ["from thread"]
