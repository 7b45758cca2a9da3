"""The ``futurekit`` command line and its helpers (private: not imported by ``futurekit``).

* :mod:`futurekit._cli.main`: the argument parser, ``futurekit backends`` and the
  dispatch to the other commands;
* :mod:`futurekit._cli.doctor`: ``futurekit doctor``, a real round trip per device;
* :mod:`futurekit._cli.bench`: the benchmark suite behind ``futurekit bench`` and
  ``benchmarks/run.py``.

:func:`main` takes the argument list and returns the exit status, without exiting.
"""

from __future__ import annotations

from .main import main

__all__ = ["main"]
