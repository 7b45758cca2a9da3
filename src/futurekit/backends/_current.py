"""A per-thread "current stream" table, swapped for the length of a ``with`` block."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["swap_current"]


@contextlib.contextmanager
def swap_current(table: dict[int, Any], items: Sequence[tuple[int, Any]]) -> Iterator[None]:
    """Set ``table[index] = stream`` for each pair; restore the previous entries after.

    Backends whose API has no current stream (cuda-python, sim) keep one table per
    thread, keyed by device index, and implement ``use_streams`` with this.
    """
    saved = []
    for index, stream in items:
        saved.append((index, table.get(index)))
        table[index] = stream
    try:
        yield
    finally:
        for index, previous in reversed(saved):
            if previous is None:
                table.pop(index, None)
            else:
                table[index] = previous
