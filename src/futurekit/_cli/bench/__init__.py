"""The benchmark suite: futurekit against ``torch.futures`` and ``concurrent.futures``.

* :mod:`.cases`: the timed operations, the same code for every implementation;
* :mod:`.probes`: import cost, memory, long chains, the device path;
* :mod:`.suite`: the cases with their sizes and targets, and :func:`run`;
* :mod:`.report`: the rows, the table, JSON, the docs page; :mod:`.plot`: the plot;
* :mod:`.harness`: the one harness behind ``futurekit bench`` and ``benchmarks/run.py``.

Nothing here needs torch or an extra: without torch the torch columns stay empty;
the plot needs matplotlib. Benchmarks are not tests: nothing here asserts a time.
"""

from __future__ import annotations

from .report import Row, format_table, to_json
from .suite import run

__all__ = ["Row", "format_table", "run", "to_json"]
