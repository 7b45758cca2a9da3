"""The backend-agnostic core: Future, devices, combinators. Imports no torch or CUDA."""

from ._combinators import as_completed, collect_all, collect_any, wait_all, wait_any
from ._devices import Device
from ._future import Future

__all__ = ("Device", "Future", "as_completed", "collect_all", "collect_any", "wait_all", "wait_any")
