"""torch tensor inspection shared by the torch and cuda-python backends.

Below both backends (neither imports the other). torch is imported only inside the
functions that need it, and only once a tensor exists (so torch is loaded already).
"""

from __future__ import annotations

from typing import Any

from futurekit.core._devices import Device
from futurekit.core._errors import BackendError

__all__ = ["record_tensor_on_stream", "tensor_device"]

_HOST_TYPES = frozenset({"cpu", "meta"})


def tensor_device(tensor: Any) -> Device | None:
    """The device of a ``torch.Tensor`` (dense or sparse); ``None`` for CPU and meta.

    Tensors of any accelerator type are reported (``xpu:0`` for an XPU tensor), so
    that a future for another device type rejects them as torch does.
    """
    dev = tensor.device
    kind = dev.type
    if kind in _HOST_TYPES:
        return None
    index = dev.index
    return Device(kind, 0 if index is None else index)


def record_tensor_on_stream(tensor: Any, stream: Any) -> None:
    """Tell torch's caching allocator that ``stream`` uses ``tensor``'s memory.

    Dense tensors call ``Tensor.record_stream``; sparse tensors record each of
    their component tensors (COO: indices and values; CSR/BSR: crow indices, col
    indices and values; CSC/BSC: ccol indices, row indices and values).
    ``aten::record_stream`` has only a plain dense kernel, so where it refuses a
    tensor (strided nested tensors, quantized tensors, tensor subclasses) the
    tensor's storage is recorded instead (a wrapper subclass such as a jagged
    nested tensor records each of its inner tensors).

    Raises:
        BackendError: neither the tensor nor its storage could be recorded.
    """
    import torch

    layout = tensor.layout
    if layout == torch.sparse_coo:
        parts: tuple[Any, ...] = (tensor._indices(), tensor._values())
    elif layout in (torch.sparse_csr, torch.sparse_bsr):
        parts = (tensor.crow_indices(), tensor.col_indices(), tensor.values())
    elif layout in (torch.sparse_csc, torch.sparse_bsc):
        parts = (tensor.ccol_indices(), tensor.row_indices(), tensor.values())
    else:  # strided, jagged and future layouts
        parts = (tensor,)
    for part in parts:
        try:
            part.record_stream(stream)
        except (RuntimeError, NotImplementedError, TypeError) as exc:
            _record_storage(torch, part, stream, exc)


def _record_storage(torch: Any, tensor: Any, stream: Any, cause: BaseException) -> None:
    """Record what backs ``tensor`` on ``stream`` when ``record_stream`` refused it."""
    from torch.utils._python_dispatch import is_traceable_wrapper_subclass

    if is_traceable_wrapper_subclass(tensor):  # e.g. a jagged nested tensor
        names, _ = tensor.__tensor_flatten__()
        for name in names:
            inner = getattr(tensor, name)
            if isinstance(inner, torch.Tensor):
                record_tensor_on_stream(inner, stream)
        return
    try:
        storage = tensor.untyped_storage()
        view = torch.empty(0, dtype=torch.uint8, device=storage.device).set_(storage)
        view.record_stream(stream)
    except Exception as exc:
        raise BackendError(
            f"cannot tell the caching allocator that a stream uses a "
            f"{type(tensor).__name__} (layout {tensor.layout}, dtype {tensor.dtype}): "
            f"record_stream failed ({cause}) and so did recording its storage ({exc})"
        ) from exc
