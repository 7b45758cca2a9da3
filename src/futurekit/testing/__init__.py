"""Testing helpers: the simulated device and the backend conformance kit.

* :mod:`futurekit.testing.sim`: streams, buffers and launched work on a simulated
  asynchronous device (``"sim:N"``), to test stream-ordering code without a GPU.
* :func:`check_backend`: drives a backend through the protocol and the future
  core's device semantics; backend authors call it from their own tests.
"""

from __future__ import annotations

from . import sim
from ._conformance import check_backend
from ._ops import BufferOps

__all__ = ("BufferOps", "check_backend", "sim")
