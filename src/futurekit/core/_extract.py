"""Finding the device buffers inside a value, without pickling it.

torch pickles a value to find its tensors (``torch._jit_internal._extract_tensors``),
which is slow and fails on members that cannot be pickled. futurekit walks the
value instead and finds at least everything pickling would visit:

* lists, tuples, dicts (keys and values), sets, frozensets, ``collections.deque``,
  ``types.MappingProxyType``, dict views (through their mapping) and subclasses of
  all of these (their items *and* their attributes);
* objects' ``__dict__`` and ``__slots__`` (dataclasses, named tuples, plain classes);
* exceptions (``args``, attributes, ``__cause__`` and ``__context__``);
* ``functools.partial`` and any object with its own pickling (``__reduce__``,
  ``__reduce_ex__``, ``__getstate__``, ``__getnewargs__``, ``copyreg``): the
  reduce tuple is walked as the pickler would walk it, *and* the attributes;
* bound methods (their ``__self__``), live weak references (their referent) and
  numpy arrays of Python objects (their elements).

The walk is cycle-safe, asks the backend's ``device_of`` about each object, and
never descends into what cannot hold buffers or what it must not touch: modules,
classes, functions (pickled by reference), threads, locks, events, loggers, files,
generators, futures, streams (anything with ``__cuda_stream__``) and array-like
leaves (objects whose type has ``__dlpack__``, ``__cuda_array_interface__`` or
``__array_interface__``: tensors, CuPy and non-object numpy arrays). How an
unknown type is walked is decided once per type and cached.
"""

from __future__ import annotations

import collections
import copyreg
import functools
import io
import logging
import sys
import threading
import types
import weakref
from collections.abc import Callable
from typing import Any

from ._devices import Device

__all__ = ["find_buffers"]

_ATOMIC: frozenset[type] = frozenset(
    {int, float, complex, str, bytes, bytearray, bool, type(None), range, slice, memoryview}
)

_SKIP: tuple[type, ...] = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.CodeType,
    types.FrameType,
    types.TracebackType,
    types.GeneratorType,
    types.CoroutineType,
    types.AsyncGeneratorType,
    types.CellType,
    property,
    staticmethod,
    classmethod,
    threading.Thread,
    threading.local,
    type(threading.Lock()),
    type(threading.RLock()),
    threading.Event,
    threading.Condition,
    threading.Semaphore,
    threading.Barrier,
    logging.Logger,
    io.IOBase,
)

_ARRAY_PROTOCOLS = ("__dlpack__", "__cuda_array_interface__", "__array_interface__")

Walker = Callable[[Any], "list[Any] | None"]

_slot_cache: dict[type, tuple[str, ...]] = {}
_walkers: dict[type, Walker] = {}


def _slots_of(cls: type) -> tuple[str, ...]:
    names = _slot_cache.get(cls)
    if names is None:
        found: list[str] = []
        for klass in cls.__mro__:
            slots = klass.__dict__.get("__slots__", ())
            if isinstance(slots, str):
                slots = (slots,)
            for name in slots:
                if name in ("__dict__", "__weakref__"):
                    continue
                if name.startswith("__") and not name.endswith("__"):
                    name = f"_{klass.__name__.lstrip('_')}{name}"
                found.append(name)
        names = _slot_cache[cls] = tuple(found)
    return names


# -- walkers: each returns the children of one object (kept alive during the walk) ----
def _leaf(obj: Any) -> None:
    return None


def _attrs(obj: Any) -> list[Any]:
    """``__dict__`` values and ``__slots__`` values: what default pickling visits."""
    out: list[Any] = []
    try:
        attrs = object.__getattribute__(obj, "__dict__")
    except (AttributeError, TypeError):
        attrs = None
    if isinstance(attrs, dict):
        out.extend(attrs.values())
    for name in _slots_of(type(obj)):
        try:
            out.append(object.__getattribute__(obj, name))
        except AttributeError:
            continue
    return out


def _items(obj: Any) -> list[Any]:
    return list(obj)


def _items_attrs(obj: Any) -> list[Any]:
    out = list(obj)
    out.extend(_attrs(obj))
    return out


def _dict_sub(obj: Any) -> list[Any]:
    out: list[Any] = list(dict.keys(obj))
    out.extend(dict.values(obj))
    out.extend(_attrs(obj))
    factory = getattr(obj, "default_factory", None)  # defaultdict: pickled as an arg
    if factory is not None:
        out.append(factory)
    return out


def _mapping(obj: Any) -> list[Any]:
    out: list[Any] = list(obj.keys())
    out.extend(obj.values())
    return out


def _view(obj: Any) -> list[Any]:
    return [obj.mapping]  # the whole dict is reachable through a view


def _method(obj: Any) -> list[Any]:
    owner = getattr(obj, "__self__", None)
    return [] if owner is None or isinstance(owner, types.ModuleType) else [owner]


def _weakref(obj: Any) -> list[Any]:
    target = obj()
    return [] if target is None else [target]


def _exception(obj: Any) -> list[Any]:
    out: list[Any] = [obj.args, obj.__cause__, obj.__context__]
    out.extend(_attrs(obj))
    return out


def _exception_reduce(obj: Any) -> list[Any]:
    out = _exception(obj)
    out.extend(_reduce_children(obj))
    return out


def _partial(obj: Any) -> list[Any]:
    out: list[Any] = [obj.func, obj.args, obj.keywords]
    out.extend(_attrs(obj))
    return out


def _ndarray(obj: Any) -> list[Any] | None:
    if obj.dtype.hasobject:  # elements are Python objects: pickling visits each
        return [obj.tolist()]
    return None


def _reduce_children(obj: Any) -> list[Any]:
    """What the pickler would visit in ``obj``'s reduce tuple (nothing if it fails)."""
    try:
        reducer = copyreg.dispatch_table.get(type(obj))
        rv = reducer(obj) if reducer is not None else obj.__reduce_ex__(4)
    except Exception:  # unpicklable: torch would fail; the attributes are still walked
        return []
    if not isinstance(rv, tuple):
        return []  # a string: a global, pickled by reference
    out: list[Any] = list(rv[:3])
    if len(rv) > 3 and rv[3] is not None:
        try:
            out.extend(rv[3])
        except Exception:
            pass
    if len(rv) > 4 and rv[4] is not None:
        try:
            out.extend(rv[4])
        except Exception:
            pass
    return out


def _reduce(obj: Any) -> list[Any]:
    out = _reduce_children(obj)
    out.extend(_attrs(obj))  # also what __getstate__ leaves out: a consumer can read it
    return out


def _items_attrs_reduce(obj: Any) -> list[Any]:
    out = _items_attrs(obj)
    out.extend(_reduce_children(obj))
    return out


def _dict_sub_reduce(obj: Any) -> list[Any]:
    out = _dict_sub(obj)
    out.extend(_reduce_children(obj))
    return out


def _std_base(cls: type) -> type:
    """The first class of ``cls``'s MRO defined by the standard library containers."""
    for klass in cls.__mro__:
        if klass.__module__ in ("builtins", "collections"):
            return klass
    return object  # pragma: no cover - object is always in the MRO


def _custom_pickling(cls: type, base: type = object) -> bool:
    """Whether ``cls`` pickles differently from ``base``'s default."""
    if cls in copyreg.dispatch_table:
        return True
    return any(
        getattr(cls, name, None) is not getattr(base, name, None)
        for name in (
            "__reduce_ex__",
            "__reduce__",
            "__getstate__",
            "__getnewargs_ex__",
            "__getnewargs__",
        )
    )


def _is_ndarray(cls: type) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and issubclass(cls, numpy.ndarray)


def _walker_for(cls: type) -> Walker:
    walker = _choose(cls)
    _walkers[cls] = walker
    return walker


def _choose(cls: type) -> Walker:
    if issubclass(cls, _SKIP):
        return _leaf
    if _is_ndarray(cls):
        return _ndarray
    if any(hasattr(cls, name) for name in _ARRAY_PROTOCOLS) or hasattr(cls, "__cuda_stream__"):
        return _leaf  # tensors, arrays, streams: never descended into
    if issubclass(cls, BaseException):
        return _exception_reduce if _custom_pickling(cls, BaseException) else _exception
    if issubclass(cls, (types.MethodType, types.BuiltinMethodType, types.MethodWrapperType)):
        return _method
    if issubclass(cls, weakref.ref):
        return _weakref
    if issubclass(cls, functools.partial):
        return _partial
    if issubclass(cls, types.MappingProxyType):
        return _mapping
    if issubclass(cls, (type({}.keys()), type({}.values()), type({}.items()))):
        return _view
    if issubclass(cls, dict):
        return _dict_sub_reduce if _custom_pickling(cls, _std_base(cls)) else _dict_sub
    if issubclass(cls, (list, tuple, set, frozenset, collections.deque)):
        if cls in (list, tuple, set, frozenset, collections.deque):
            return _items
        if not issubclass(cls, tuple) and _custom_pickling(cls, _std_base(cls)):
            return _items_attrs_reduce
        return _items_attrs  # named tuples: __getnewargs__ gives their items again
    if _custom_pickling(cls):
        return _reduce
    return _attrs


def find_buffers(
    value: Any,
    device_of: Callable[[Any], Device | None],
    skip: tuple[type, ...] = (),
) -> list[tuple[Any, Device]]:
    """Every ``(buffer, device)`` reachable from ``value``.

    Args:
        value: the object to walk.
        device_of: the backend's leaf test; ``None`` means "not a buffer of mine".
        skip: extra types never descended into (the Future class, a backend's
            streams and events, for example).

    Returns:
        Each buffer once, with its device, in no particular order.
    """
    found: list[tuple[Any, Device]] = []
    stack = [value]
    seen: set[int] = set()
    keep: list[Any] = []  # temporaries (reduce tuples, views' mappings) must outlive the walk
    atomic = _ATOMIC
    walkers = _walkers
    pop, extend, mark = stack.pop, stack.extend, seen.add
    while stack:
        obj = pop()
        cls = type(obj)
        if cls in atomic:
            continue
        size = len(seen)
        mark(id(obj))
        if len(seen) == size:  # seen before (one hash lookup instead of two)
            continue
        device = device_of(obj)
        if device is not None:
            found.append((obj, device))
            continue
        if cls is list or cls is tuple:
            extend(obj)
            continue
        if cls is dict:
            extend(obj.keys())
            extend(obj.values())
            continue
        if skip and isinstance(obj, skip):
            continue
        walker = walkers.get(cls)
        if walker is None:
            walker = _walker_for(cls)
        children = walker(obj)
        if children:
            keep.append(children)
            extend(children)
    return found
