"""Finding the device buffers inside a value, without pickling it.

torch pickles a value to find its tensors, which is slow and fails on members
that cannot be pickled. futurekit walks the value instead: lists, tuples, sets,
dict keys and values, dataclasses, namedtuples and user objects' ``__dict__`` and
``__slots__``, cycle-safe, asking the backend's ``device_of`` about each object and
skipping what cannot hold buffers (modules, classes, functions, threads, locks,
events, loggers, files, futures).
"""

from __future__ import annotations

import io
import logging
import threading
import types
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
    types.BuiltinFunctionType,
    types.MethodType,
    types.CodeType,
    types.FrameType,
    types.GeneratorType,
    types.CoroutineType,
    threading.Thread,
    type(threading.Lock()),
    type(threading.RLock()),
    threading.Event,
    threading.Condition,
    threading.Semaphore,
    threading.Barrier,
    logging.Logger,
    io.IOBase,
    BaseException,
)

_slot_cache: dict[type, tuple[str, ...]] = {}


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


def find_buffers(
    value: Any,
    device_of: Callable[[Any], Device | None],
    skip: tuple[type, ...] = (),
) -> list[tuple[Any, Device]]:
    """Every ``(buffer, device)`` reachable from ``value``.

    Args:
        value: the object to walk.
        device_of: the backend's leaf test; ``None`` means "not a buffer of mine".
        skip: extra types never descended into (the Future class, for example).
    """
    found: list[tuple[Any, Device]] = []
    stack = [value]
    seen: set[int] = set()
    skip_types = _SKIP + skip
    atomic = _ATOMIC
    while stack:
        obj = stack.pop()
        cls = type(obj)
        if cls in atomic:
            continue
        oid = id(obj)
        if oid in seen:
            continue
        seen.add(oid)
        device = device_of(obj)
        if device is not None:
            found.append((obj, device))
            continue
        if cls is list or cls is tuple:
            stack.extend(obj)
            continue
        if cls is dict:
            stack.extend(obj.keys())
            stack.extend(obj.values())
            continue
        if isinstance(obj, skip_types):
            continue
        if isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
            continue
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
            continue
        try:
            attrs = object.__getattribute__(obj, "__dict__")
        except AttributeError:
            attrs = None
        if isinstance(attrs, dict):
            stack.extend(attrs.values())
        for name in _slots_of(cls):
            try:
                stack.append(object.__getattribute__(obj, name))
            except AttributeError:
                continue
    return found
