"""futurekit-echo: the smallest useful futurekit device backend.

The ``echo`` device runs work synchronously on the host: launching work on a
stream runs it at once, so every event is complete when it is recorded. That
makes the backend trivially correct while still exercising every part of the
protocol: device buffers (:class:`EchoBuffer`), streams that know their device,
a per-thread current stream, a stream pool and ``use_streams``.
"""

from __future__ import annotations

from ._backend import EchoBackend, EchoBuffer, EchoEvent, EchoStream, conformance_ops

__all__ = ["EchoBackend", "EchoBuffer", "EchoEvent", "EchoStream", "conformance_ops"]
