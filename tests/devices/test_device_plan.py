"""The device plan: cached per ``devices=``, checked at the boundary, fast paths exact.

``Future(devices=X)`` resolves ``X`` once (a :class:`DevicePlan`); these tests pin
when the cache is used and dropped, that a backend's answers are checked where they
enter the core (errors name the plugin and the method), and that the fast paths of
``prepare`` (one buffer, a list or tuple of buffers on one device) record exactly what
the general walk records, on random values (Hypothesis).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import futurekit
from futurekit import BackendError, Device, Future
from futurekit.backends import BackendBase, BackendSpec, _registry, hookimpl
from futurekit.core import _device_plan, _resolver
from futurekit.core._device_plan import DevicePlan


class Buf:
    __slots__ = ("__weakref__", "device", "tag")

    def __init__(self, device: Device, tag: int = 0) -> None:
        self.device = device
        self.tag = tag


class Rec(BackendBase):
    """Records every primitive call; buffers are :class:`Buf`."""

    device_type = "rec"

    def __init__(self, batch: bool = False) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.loads = 0
        if batch:
            self.devices_of = self._devices_of  # type: ignore[method-assign]

    def device_count(self) -> int:
        return 3

    def current_stream(self, device: Device) -> Any:
        return ("stream", device.index)

    def record_event(self, stream: Any) -> Any:
        self.calls.append(("record", stream))
        return ("event", stream)

    def wait_event(self, stream: Any, event: Any) -> None:
        self.calls.append(("wait", stream, event))

    def query_event(self, event: Any) -> bool:
        return True

    def synchronize_event(self, event: Any) -> None:
        return None

    def device_of(self, obj: Any) -> Device | None:
        return obj.device if isinstance(obj, Buf) else None

    def _devices_of(self, objs: Sequence[Any]) -> list[Device | None]:
        return [self.device_of(o) for o in objs]

    def record_values_on_stream(self, buffers: Sequence[Any], stream: Any) -> None:
        self.calls.append(("hint", stream, sorted(id(b) for b in buffers)))


@pytest.fixture
def rec(monkeypatch: pytest.MonkeyPatch) -> Iterator[Rec]:
    monkeypatch.setenv("FUTUREKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    _registry.reset()
    backend = Rec()

    def load() -> Rec:
        backend.loads += 1
        return backend

    class Plugin:
        @hookimpl
        def futurekit_device_backends(self) -> Iterator[BackendSpec]:
            yield BackendSpec(name="rec", device_type="rec", load=load, testing=True)

    _registry.register(Plugin(), name="rec-plugin")
    yield backend
    _registry.reset()


# -- interning and the cache ---------------------------------------------------------------
def test_devices_are_interned_and_still_values() -> None:
    assert Device("rec", 1) is Device("rec", 1)
    assert Device("rec", 1) == Device("rec", 1) and hash(Device("rec", 1)) == hash(("rec", 1))
    with pytest.raises(TypeError):
        Device("rec", True)  # type: ignore[arg-type]
    import pickle

    assert pickle.loads(pickle.dumps(Device("rec", 2))) is Device("rec", 2)


def test_one_plan_per_devices_argument(rec: Rec) -> None:
    a, b = Future(devices=["rec:0"]), Future(devices=["rec:0"])
    assert a._dev is b._dev is not None  # the plan's shared pending state
    assert Future(devices=("rec:0",))._dev is Future(devices=[Device("rec", 0)])._dev
    assert Future(devices=["rec:0", "rec:1"])._dev is not a._dev
    assert rec.loads == 1


@pytest.mark.parametrize("bad", [[True], [1.0], [0.5]])
def test_the_cache_never_confuses_equal_values_of_other_types(rec: Rec, bad: list[Any]) -> None:
    Future(devices=["rec:1"])
    with pytest.raises((TypeError, futurekit.InvalidDeviceError)):
        Future(devices=bad)


def test_registering_a_plugin_drops_the_cached_plans(rec: Rec) -> None:
    first = Future(devices=["rec:0"])._dev
    generation = _resolver.generation[0]

    class Other:
        @hookimpl
        def futurekit_device_backends(self) -> Iterator[BackendSpec]:
            yield from ()

    _registry.register(Other(), name="other")
    assert _resolver.generation[0] > generation
    assert Future(devices=["rec:0"])._dev is not first  # resolved again


def test_a_mutable_device_like_object_is_not_cached(rec: Rec) -> None:
    class Where:  # no value __eq__/__hash__: identity-hashed, so never a cache key
        type = "rec"
        index = 0

    where = Where()
    assert Future(devices=[where]).devices == (Device("rec", 0),)
    where.index = 2
    assert Future(devices=[where]).devices == (Device("rec", 2),)


def test_plans_are_made_safely_from_many_threads(rec: Rec) -> None:
    barrier = threading.Barrier(8)
    seen: list[Any] = []

    def make() -> None:
        barrier.wait(10)
        for i in range(200):
            fut: Future[Any] = Future(devices=[f"rec:{i % 3}"])
            fut.set_result(Buf(Device("rec", i % 3)))
            seen.append(fut.wait().device.index == i % 3)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(seen) == 1600 and all(seen)


# -- the boundary -------------------------------------------------------------------------
def test_a_device_of_that_returns_a_string_is_named(
    rec: Rec, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        Rec, "device_of", lambda self, obj: "rec:0" if isinstance(obj, Buf) else None
    )
    fut: Future[Any] = Future(devices=["rec:0"])
    fut.set_result(Buf(Device("rec", 0)))  # completes with the error, as torch does
    with pytest.raises(BackendError) as info:
        fut.wait()
    text = str(info.value)
    assert "backend 'rec'" in text and "plugin 'rec-plugin'" in text
    assert "device_of()" in text and "futurekit.Device" in text


def test_a_batch_answer_of_the_wrong_length_is_named(rec: Rec) -> None:
    plan = DevicePlan(rec, (Device("rec", 0),))
    rec.devices_of = lambda objs: [Device("rec", 0)]  # type: ignore[method-assign]
    plan = DevicePlan(rec, (Device("rec", 0),))
    with pytest.raises(BackendError, match=r"devices_of\(\) returned list of 1 items for 2"):
        plan.pending.prepare([Buf(Device("rec", 0)), Buf(Device("rec", 0))])


@pytest.mark.parametrize("count", ["3", -1, None])
def test_a_bad_device_count_is_named(count: Any) -> None:
    class Bad(Rec):
        def device_count(self) -> Any:
            return count

    with pytest.raises(BackendError, match=r"device_count\(\) returned"):
        DevicePlan(Bad(), (Device("rec", 0),))


def test_a_missing_required_method_is_named() -> None:
    class Half:
        device_type = "rec"

        def device_count(self) -> int:
            return 1

    with pytest.raises(BackendError, match=r"current_stream\(\) is missing"):
        DevicePlan(Half(), (Device("rec", 0),))


# -- the fast paths record what the walk records ------------------------------------------
def _trace(backend: Rec, value: Any, devices: tuple[Device, ...], walk: bool) -> Any:
    plan = DevicePlan(backend, devices)
    backend.calls.clear()
    state = plan.pending._prepare_walk(value, None) if walk else plan.pending.prepare(value)
    state.sync_current()
    events = [(d, e) for d, e in state.events]
    hints = sorted(c for c in backend.calls if c[0] == "hint")
    return events, sorted(c for c in backend.calls if c[0] == "record"), hints


def _values() -> st.SearchStrategy[Any]:
    buf = st.builds(Buf, st.sampled_from([Device("rec", 0), Device("rec", 1)]), st.integers(0, 3))
    leaf = buf | st.integers() | st.none() | st.text(max_size=2)
    return st.one_of(
        buf,
        st.lists(buf, min_size=1, max_size=6),
        st.lists(buf, min_size=1, max_size=6).map(tuple),
        st.recursive(leaf, lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)),
    )


@settings(max_examples=150, deadline=None)
@given(value=_values(), batch=st.booleans())
def test_fast_paths_match_the_general_walk(value: Any, batch: bool) -> None:
    devices = (Device("rec", 0), Device("rec", 1))
    fast = _trace(Rec(batch), value, devices, walk=False)
    slow = _trace(Rec(batch), value, devices, walk=True)
    assert [d for d, _ in fast[0]] == [d for d, _ in slow[0]]
    assert fast[1] == slow[1]
    # the same buffers hinted on the same streams (the walk dedupes repeated objects)
    assert [(s, sorted(set(ids))) for _, s, ids in fast[2]] == [
        (s, sorted(set(ids))) for _, s, ids in slow[2]
    ]


def test_a_list_keeps_its_buffers_weakly_a_tuple_strongly(rec: Rec) -> None:
    d0 = Device("rec", 0)
    holder = [Buf(d0), Buf(d0)]
    fut: Future[Any] = Future(devices=["rec:0"])
    fut.set_result(holder)
    del holder[0]
    gc.collect()
    rec.calls.clear()
    fut.wait()
    ((_, _, ids),) = [c for c in rec.calls if c[0] == "hint"]
    assert ids == [id(holder[0])]  # the dropped buffer is skipped, as torch does
    pair = (Buf(d0), Buf(d0))
    fut2: Future[Any] = Future(devices=["rec:0"])
    fut2.set_result(pair)
    rec.calls.clear()
    fut2.wait()
    ((_, _, ids),) = [c for c in rec.calls if c[0] == "hint"]
    assert ids == sorted(id(b) for b in pair)


def test_the_cache_is_bounded(rec: Rec, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_device_plan, "_MAX_PLANS", 4)
    for i in range(10):
        Future(devices=[f"rec:{i % 3}", "rec:0"] * (1 + i // 3))
    assert len(_device_plan._PLANS) <= 4


# -- the compiled accelerator's device paths (the same behaviour; no leak) -----------------
def test_device_paths_behave_the_same_on_the_compiled_core(rec: Rec) -> None:
    d0 = Device("rec", 0)
    fut: Future[Any] = Future(devices=["rec:0"])
    fut.set_result(Buf(d0))
    with pytest.raises(futurekit.InvalidStateError):
        fut.set_result(Buf(d0))
    with pytest.raises(futurekit.InvalidDeviceError):
        Future(devices=["rec:7"])  # an error is never cached: it is raised every time
    with pytest.raises(futurekit.InvalidDeviceError):
        Future(devices=["rec:7"])
    assert Future(devices=["cpu"])._dev is None and Future(devices=None)._dev is None
    wrong: Future[Any] = Future(devices=["rec:0"])
    wrong.set_result(Buf(Device("rec", 1)))  # a buffer elsewhere: the future fails with it
    with pytest.raises(ValueError, match="not among the expected device"):
        wrong.wait()


def test_an_interrupt_in_prepare_propagates_and_leaves_the_future_pending(
    rec: Rec, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: Any, stream: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(Rec, "record_event", interrupted)
    _resolver.bump()  # plans bind the backend's methods once
    fut: Future[Any] = Future(devices=["rec:0"])
    with pytest.raises(KeyboardInterrupt):
        fut.set_result(Buf(Device("rec", 0)))
    assert not fut.done()  # as the Python method: nothing was published


def test_device_futures_return_their_memory(rec: Rec) -> None:
    import tracemalloc

    d0 = Device("rec", 0)
    value = [Buf(d0), Buf(d0)]

    def rounds(n: int) -> None:
        for _ in range(n):
            fut: Future[Any] = Future(devices=["rec:0"])
            child = fut.then(lambda f: f.value())
            fut.set_result(value)
            fut.wait()
            child.wait()
            rec.calls.clear()

    rounds(2000)  # warm every cache
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        rounds(20_000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"{grown} bytes kept after 20,000 device futures"


def test_the_compiled_weak_reference_loops_match_the_python_ones() -> None:
    from futurekit.core import _accelerator

    speedups = _accelerator.speedups
    if speedups is None:
        pytest.skip("the pure-Python core runs")

    def py_alive(refs: list[Any]) -> list[Any]:
        return [b for r in refs if (b := r()) is not None]

    bufs = [Buf(Device("rec", 0), i) for i in range(6)]
    refs = speedups.weak_refs(bufs)
    assert [r() for r in refs] == bufs
    del bufs[1], bufs[3]
    gc.collect()
    assert speedups.alive(refs) == py_alive(refs) == bufs
    assert speedups.weak_refs(()) == [] and speedups.alive([]) == []
    with pytest.raises(TypeError):
        speedups.weak_refs([1, 2])  # ints cannot be weakly referenced: the caller keeps them
    with pytest.raises(TypeError):
        speedups.alive([object()])
