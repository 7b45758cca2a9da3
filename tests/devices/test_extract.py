"""The value walk against torch's own tensor extraction, and on the simulated device.

torch finds the tensors of a CUDA future's value by pickling it
(``torch._jit_internal._extract_tensors``). futurekit walks the value instead; it must
find at least every tensor that pickling finds (differential test over a zoo of
containers holding CPU tensors), and on the sim device every buffer it finds is
ordered: a consumer on another stream never reads stale data.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import queue
import threading
import time
import types
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

from futurekit import Device, Future
from futurekit.backends._registry import reset
from futurekit.core._extract import find_buffers
from futurekit.testing import sim

# -- a zoo of values: each builder takes two buffers and returns a value holding them --


class Pair(NamedTuple):
    a: Any
    b: Any


@dataclasses.dataclass
class Box:
    a: Any
    b: Any


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a: Any, b: Any) -> None:
        self.a, self.b = a, b


class Holder:
    def __init__(self, a: Any, b: Any) -> None:
        self.a, self.b = a, b

    def method(self) -> Any:
        return self.a


class TaggedList(list):  # type: ignore[type-arg]
    """A list subclass whose attributes are pickled as its state."""


_HIDDEN: dict[int, Any] = {}


class StateOnly:
    """Its buffers are reachable only through ``__getstate__``."""

    __slots__ = ("__weakref__", "key")

    def __init__(self, a: Any, b: Any) -> None:
        self.key = id(self)
        _HIDDEN[self.key] = (a, b)

    def __getstate__(self) -> Any:
        return {"pair": _HIDDEN[self.key]}


class ReduceOnly:
    """Its buffers are reachable only through ``__reduce_ex__``."""

    __slots__ = ("__weakref__", "key")

    def __init__(self, a: Any, b: Any) -> None:
        self.key = id(self)
        _HIDDEN[self.key] = [a, b]

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (ReduceOnly, tuple(_HIDDEN[self.key]))


class CustomError(Exception):
    def __init__(self, a: Any, b: Any) -> None:
        super().__init__("custom", a)
        self.extra = b


def _first(a: Any, b: Any) -> Any:
    return a


def _tagged(a: Any, b: Any) -> Any:
    out = TaggedList([a])
    out.tag = b  # type: ignore[attr-defined]
    return out


def _cycle(a: Any, b: Any) -> Any:
    out: list[Any] = [a]
    out.append(out)
    out.append({"self": out, "b": b})
    return out


def _chained_error(a: Any, b: Any) -> Any:
    try:
        try:
            raise KeyError(a)
        except KeyError as inner:
            raise RuntimeError("outer") from inner
    except RuntimeError as exc:
        exc.add_note("noted")
        return [exc, b]


def _queue(a: Any, b: Any) -> Any:
    q: queue.Queue[Any] = queue.Queue()
    q.put(a)
    q.put(b)
    return q


def _numpy_object(a: Any, b: Any) -> Any:
    np = pytest.importorskip("numpy")
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = a, b
    return arr


def _numpy_structured(a: Any, b: Any) -> Any:
    np = pytest.importorskip("numpy")
    arr = np.zeros(2, dtype=[("x", "i4"), ("obj", "O")])
    arr["obj"][0], arr["obj"][1] = a, b
    return arr


ZOO: dict[str, Callable[[Any, Any], Any]] = {
    "list": lambda a, b: [a, b],
    "tuple": lambda a, b: (a, b),
    "dict_values": lambda a, b: {"a": a, "b": b},
    "dict_keys": lambda a, b: {a: 1, b: 2},
    "set": lambda a, b: {a, b},
    "frozenset": lambda a, b: frozenset([a, b]),
    "nested": lambda a, b: [{"x": (a, [b])}],
    "duplicate": lambda a, b: [a, a, (b, b)],
    "cycle": _cycle,
    "deque": lambda a, b: collections.deque([a, b]),
    "deque_maxlen": lambda a, b: collections.deque([a, b], maxlen=5),
    "ordered_dict": lambda a, b: collections.OrderedDict(a=a, b=b),
    "defaultdict_factory": lambda a, b: collections.defaultdict(functools.partial(_first, a, b)),
    "counter_keys": lambda a, b: collections.Counter([a, b]),
    "chain_map": lambda a, b: collections.ChainMap({"a": a}, {"b": b}),
    "mappingproxy": lambda a, b: types.MappingProxyType({"a": a, "b": b}),
    "dict_view_values": lambda a, b: {"a": a, "b": b}.values(),
    "dict_view_keys": lambda a, b: {a: 1, b: 2}.keys(),
    "dict_view_items": lambda a, b: {"a": a, "b": b}.items(),
    "partial": lambda a, b: functools.partial(_first, a, k=b),
    "exception_args": lambda a, b: ValueError(a, b),
    "exception_attrs": lambda a, b: CustomError(a, b),
    "exception_chain": _chained_error,
    "named_tuple": lambda a, b: Pair(a, b),
    "dataclass": lambda a, b: Box(a, b),
    "slots": lambda a, b: Slotted(a, b),
    "object_dict": lambda a, b: Holder(a, b),
    "simple_namespace": lambda a, b: types.SimpleNamespace(a=a, b=b),
    "bound_method": lambda a, b: Holder(a, b).method,
    "builtin_method": lambda a, b: [a, b].append,
    "list_subclass_attrs": _tagged,
    "getstate_only": lambda a, b: StateOnly(a, b),
    "reduce_ex_only": lambda a, b: ReduceOnly(a, b),
    "weakref": lambda a, b: [weakref.ref(w := Holder(a, b)), w],
    "queue": _queue,
    "numpy_object_array": _numpy_object,
    "numpy_structured_object": _numpy_structured,
    "with_lock_and_thread": lambda a, b: [threading.Lock(), threading.Event(), Holder(a, b)],
}


def _torch_extract(value: Any) -> list[Any] | None:
    """torch's extraction, or ``None`` where torch cannot pickle the value."""
    torch = pytest.importorskip("torch")
    try:
        return list(torch._jit_internal._extract_tensors(value))
    except Exception:
        return None


@pytest.mark.parametrize("name", sorted(ZOO))
def test_walk_finds_at_least_what_torch_extraction_finds(name: str) -> None:
    torch = pytest.importorskip("torch")
    a, b = torch.ones(2), torch.zeros(3)
    value = ZOO[name](a, b)

    def device_of(obj: Any) -> Device | None:
        return Device("cpu", 0) if isinstance(obj, torch.Tensor) else None

    ours = {id(t) for t, _ in find_buffers(value, device_of)}
    theirs = _torch_extract(value)
    assert ours == {id(a), id(b)}, f"{name}: the walk missed a buffer"
    if theirs is not None:  # where torch can pickle the value, we find all it finds
        assert {id(t) for t in theirs} <= ours
    _HIDDEN.clear()


def test_torch_finds_what_we_find_in_the_common_cases() -> None:
    """The differential test is not vacuous: torch really finds these."""
    torch = pytest.importorskip("torch")
    a, b = torch.ones(2), torch.zeros(3)
    for name in ("deque", "partial", "exception_args", "getstate_only", "reduce_ex_only"):
        theirs = _torch_extract(ZOO[name](a, b))
        assert theirs is not None and {id(t) for t in theirs} == {id(a), id(b)}, name
    _HIDDEN.clear()


def test_each_buffer_is_reported_once_with_its_device() -> None:
    buf = object()
    found = find_buffers([buf, (buf, {"k": buf})], lambda o: Device("sim", 1) if o is buf else None)
    assert found == [(buf, Device("sim", 1))]


def test_arrays_tensors_and_streams_are_never_descended_into() -> None:
    torch = pytest.importorskip("torch")
    np = pytest.importorskip("numpy")
    visited: list[Any] = []

    def device_of(obj: Any) -> Device | None:
        visited.append(obj)
        return None

    class StreamLike:
        def __init__(self) -> None:
            self.inner = ["hidden"]

        def __cuda_stream__(self) -> tuple[int, int]:
            return (0, 0)

    find_buffers([torch.ones(3), np.ones(3), StreamLike()], device_of)
    assert not any(isinstance(v, list) and v == ["hidden"] for v in visited)
    assert len(visited) == 4  # the outer list and its three leaves


def test_unpicklable_objects_are_walked_through_their_attributes() -> None:
    class NoPickle:
        def __init__(self, buf: Any) -> None:
            self.buf = buf
            self.gen = (i for i in range(3))

        def __reduce_ex__(self, protocol: Any) -> Any:
            raise TypeError("cannot pickle")

    buf = object()
    found = find_buffers(NoPickle(buf), lambda o: Device("sim", 0) if o is buf else None)
    assert [f for f, _ in found] == [buf]


def test_extra_skip_types_are_not_descended_into() -> None:
    class Opaque:
        def __init__(self, buf: Any) -> None:
            self.buf = buf

    buf = object()
    found = find_buffers([Opaque(buf)], lambda o: Device("sim", 0) if o is buf else None, (Opaque,))
    assert found == []


def test_temporaries_do_not_hide_buffers_behind_reused_ids() -> None:
    """Fresh objects made during the walk (reduce tuples) stay alive until it ends."""
    bufs = [object() for _ in range(200)]
    value = [ReduceOnly(b, b) for b in bufs]
    found = find_buffers(value, lambda o: Device("sim", 0) if type(o) is object else None)
    assert {id(f) for f, _ in found} == {id(b) for b in bufs}
    _HIDDEN.clear()


# -- ordering on the simulated device ----------------------------------------------------
SLOW = 0.2


@pytest.fixture
def fresh_registry() -> Any:
    reset()
    yield
    reset()


@pytest.mark.usefixtures("fresh_registry")
@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_container_is_ordered_on_the_sim_device(name: str) -> None:
    a, b = sim.Buffer("sim:0", "stale-a"), sim.Buffer("sim:0", "stale-b")
    producer, consumer = sim.Stream("sim:0", "producer"), sim.Stream("sim:0", "consumer")
    with sim.use_stream(producer):
        sim.launch(producer, time.sleep, SLOW)
        sim.launch(producer, setattr, a, "value", "fresh-a")
        sim.launch(producer, setattr, b, "value", "fresh-b")
        fut: Future[Any] = Future(devices=["sim:0"])
        value = ZOO[name](a, b)
        fut.set_result(value)
    with sim.use_stream(consumer):
        assert fut.wait() is value
        seen: list[Any] = []
        sim.launch(consumer, lambda: seen.extend([a.value, b.value]))
    consumer.synchronize()
    assert seen == ["fresh-a", "fresh-b"], name
    _HIDDEN.clear()


@pytest.mark.usefixtures("fresh_registry")
def test_a_buffer_inside_a_partial_on_a_foreign_device_fails_the_future() -> None:
    fut: Future[Any] = Future(devices=["sim:0"])
    fut.set_result(functools.partial(_first, sim.Buffer("sim:1")))
    with pytest.raises(ValueError, match=r"residing on device\(s\) sim:1"):
        fut.wait()
