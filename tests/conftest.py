"""Set-up shared by the whole suite.

**The heap that was alive before a test is frozen for the tests outside tests/core.**
Once torch is imported, one ``gc.collect()`` walks its ~180,000 objects: about 0.1 s,
paid by every test that collects garbage to check what a finalizer or a never-retrieved
failure does. ``gc.freeze()`` moves everything alive at that moment out of the
collector's sight, so a collection looks only at what later tests make, and every
object a test creates (and checks the collection of) is still collected as before.
tests/core keeps the collector as CPython has it (the core's own GC tests choose what
they need): the heap is given back (``gc.unfreeze()``) before a core test runs and
frozen again at the next test outside it.

**Ctrl-C works even when the suite was started with SIGINT ignored.** A shell starts
background jobs of a script (``nohup pytest &``, ``cmd &`` in a non-interactive shell)
with SIGINT ignored, and Python then installs no ``KeyboardInterrupt`` handler: the
tests that interrupt a blocked ``wait()`` would time out instead (10 of them, ~400 s).
Python's default handler is put back here, in every process that loads this file
(xdist workers too); child interpreters then start with SIGINT at its default again.
"""

from __future__ import annotations

import gc
import signal
from pathlib import Path

import pytest

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

_CORE = Path(__file__).resolve().parent / "core"
_frozen_here = False


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    global _frozen_here
    in_core = _CORE in Path(str(item.path)).resolve().parents
    if in_core and _frozen_here:
        gc.unfreeze()
        _frozen_here = False
    elif not in_core and not _frozen_here and not gc.get_freeze_count():
        gc.collect()
        gc.freeze()
        _frozen_here = True
