"""futurekit: torch.futures for any device.

``Future``, ``collect_all`` and ``wait_all`` behave like ``torch.futures``; device
synchronization is delegated to backends found through pluggy (see
:mod:`futurekit.backends`). ``import futurekit`` imports neither torch, CUDA nor
pluggy.
"""

from __future__ import annotations

from ._version import __version__
from .core._combinators import as_completed, collect_all, collect_any, wait_all, wait_any
from .core._devices import Device
from .core._errors import (
    BackendError,
    BackendUnavailableError,
    CallbackError,
    InvalidDeviceError,
    InvalidFutureError,
    NotAnExceptionError,
    TimeoutError,
    UnwrapCycleError,
)
from .core._future import Future
from .core._resolver import Resolver as _Resolver
from .core._resolver import install as _install_resolver

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~10 ms
if TYPE_CHECKING:
    from .core._errors import CancelledError, InvalidStateError
    from .core._interop import from_asyncio, from_concurrent, from_torch

__all__ = (
    "BackendError",
    "BackendUnavailableError",
    "CallbackError",
    "CancelledError",
    "Device",
    "Future",
    "InvalidDeviceError",
    "InvalidFutureError",
    "InvalidStateError",
    "NotAnExceptionError",
    "TimeoutError",
    "UnwrapCycleError",
    "__version__",
    "as_completed",
    "collect_all",
    "collect_any",
    "from_asyncio",
    "from_concurrent",
    "from_torch",
    "wait_all",
    "wait_any",
)

#: Names imported on first use, and the core module that has each: the bridges, and
#: the two errors that subclass concurrent.futures' classes (see core._errors).
_LAZY = {
    "from_asyncio": "_interop",
    "from_concurrent": "_interop",
    "from_torch": "_interop",
    "CancelledError": "_errors",
    "InvalidStateError": "_errors",
}


def _backend(device_type: str, name: str | None) -> object:
    from .backends._registry import get_backend

    return get_backend(device_type, name)


def _int_type() -> str:
    from .backends._registry import int_device_type

    return int_device_type()


def _describe(backend: object) -> str:
    from .backends._registry import describe_backend

    return describe_backend(backend)


# The core knows no backends: it is handed the registry (loaded on first use).
_install_resolver(_Resolver(_backend, _int_type, _describe))


def __getattr__(name: str) -> object:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'futurekit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"futurekit.core.{where}"), name)
    value.__module__ = "futurekit"
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


for _name in __all__:
    if _name in _LAZY:
        continue
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("futurekit."):
        try:
            _obj.__module__ = "futurekit"
        except (AttributeError, TypeError):  # pragma: no cover
            pass
del _name, _obj
