"""CUDA buffers that are not torch tensors (CuPy, numba, anything with DLPack or CAI).

Shared by the ``torch`` and ``cuda-python`` backends: which device a foreign array
lives on (``__dlpack_device__``, or the driver asked about its
``__cuda_array_interface__`` pointer), and which stream its producer names (the CUDA
Array Interface v3 ``stream`` key), so that the future's event is ordered after it.
Nothing here imports torch, CuPy or cuda-python.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from futurekit.core._devices import Device
from futurekit.core._errors import BackendError

__all__ = ["KDL_CUDA", "KDL_CUDA_MANAGED", "cai_stream", "foreign_cuda_device", "is_array_type"]

KDL_CUDA, KDL_CUDA_MANAGED = 2, 13
_NEVER = frozenset({int, float, complex, bool, str, bytes, type(None), list, tuple, dict})


def is_array_type(cls: type) -> bool:
    """Whether instances of ``cls`` may be CUDA arrays (DLPack or CAI on the type)."""
    if cls in _NEVER:
        return False
    return hasattr(cls, "__dlpack_device__") or hasattr(cls, "__cuda_array_interface__")


def _cai(obj: Any) -> dict[str, Any] | None:
    try:
        cai = obj.__cuda_array_interface__
    except Exception:  # a property that fails (host array, closed buffer): not a CUDA array
        return None
    return cai if isinstance(cai, dict) else None


def foreign_cuda_device(obj: Any, pointer_device: Callable[[int], int | None]) -> Device | None:
    """The CUDA device of a DLPack or CUDA-Array-Interface object, or ``None``.

    ``kDLCUDA`` gives its device id; ``kDLCUDAManaged`` (whose id means nothing) and
    CAI-only objects ask ``pointer_device`` (the driver) about the data pointer.
    Host memory, zero-size arrays and other DLPack devices give ``None``. Errors of
    ``pointer_device`` propagate: an unexpected driver error must not make a CUDA
    buffer look like host memory.
    """
    dlpack = getattr(type(obj), "__dlpack_device__", None)
    managed_index: int | None = None
    if dlpack is not None:
        try:
            kind, index = dlpack(obj)
        except Exception:
            kind, index = None, None
        if kind == KDL_CUDA:
            return Device("cuda", int(index))
        if kind == KDL_CUDA_MANAGED:
            managed_index = int(index)
        elif kind is not None:
            return None
    cai = _cai(obj)
    if cai is None:
        return None if managed_index is None else Device("cuda", managed_index)
    try:
        ptr = cai["data"][0]
    except Exception:
        ptr = None
    if not isinstance(ptr, int) or isinstance(ptr, bool) or ptr == 0:  # zero-size arrays
        return None if managed_index is None else Device("cuda", managed_index)
    ordinal = pointer_device(ptr)
    if ordinal is None:
        return None if managed_index is None else Device("cuda", managed_index)
    return Device("cuda", ordinal)


def cai_stream(obj: Any) -> int | None:
    """The producer stream a CUDA Array Interface names (``stream`` key), or ``None``.

    ``None`` or no key: no synchronization needed. ``1`` is the legacy default stream,
    ``2`` the per-thread default stream, anything else a ``cudaStream_t``. ``0`` is
    disallowed by the interface (v3); older producers meant the legacy default
    stream by it, so it is read as ``1``.

    Raises:
        BackendError: the key is neither ``None`` nor an int.
    """
    cai = _cai(obj)
    if cai is None:
        return None
    stream = cai.get("stream")
    if stream is None:
        return None
    if isinstance(stream, bool) or not isinstance(stream, int):
        raise BackendError(
            f"the __cuda_array_interface__ of {type(obj).__name__} has a 'stream' of "
            f"{stream!r}; the interface allows None or a stream handle (int)"
        )
    return 1 if stream == 0 else stream
