"""A report made by a finalizer never breaks an ``ast.parse`` it interrupts.

On CPython 3.11 the garbage collector can run finalizers in the middle of
``ast.parse`` (while it builds the tree), and ``ast`` keeps one recursion counter per
interpreter: a finalizer that itself parses (3.11's traceback formatting does, to
place its ``^^^^`` markers) makes the outer parse fail with ``SystemError: AST
constructor recursion depth mismatch`` (CPython gh-106905). futurekit's never-retrieved
warning is such a finalizer: its traceback is formatted without markers, so no ``ast``
runs in it. Before, this test failed on 3.11 in 300 parses out of 300.
"""

from __future__ import annotations

import ast
import gc
import logging
from pathlib import Path

import pytest

from futurekit import Future

pytestmark = pytest.mark.timeout(120)

SOURCE = (Path(__file__).resolve().parents[2] / "src/futurekit/core/_completion.py").read_text()


def _unretrieved_failures_in_cycles(n: int) -> None:
    for _ in range(n):
        fut: Future[int] = Future()
        try:
            raise ValueError("never retrieved")
        except ValueError as exc:
            fut.set_exception(exc)
        holder: list[object] = [fut]
        holder.append(holder)  # only the garbage collector frees it
        del fut, holder  # this frame, kept by the tracebacks, must not keep them alive


def test_never_retrieved_warnings_during_ast_parse(caplog: pytest.LogCaptureFixture) -> None:
    handler = logging.StreamHandler()  # formats every record, as an application's would
    logger = logging.getLogger("futurekit")
    logger.addHandler(handler)
    threshold = gc.get_threshold()
    gc.set_threshold(50)
    errors = []
    try:
        with caplog.at_level(logging.WARNING, logger="futurekit"):
            for _ in range(200):
                _unretrieved_failures_in_cycles(20)
                try:
                    ast.parse(SOURCE)
                except SystemError as exc:
                    errors.append(exc)
            gc.collect()
    finally:
        gc.set_threshold(*threshold)
        logger.removeHandler(handler)
    assert not errors, f"{len(errors)} of 200 parses failed: {errors[0]}"
    warned = [r for r in caplog.records if "never retrieved" in r.getMessage()]
    assert len(warned) == 200 * 20  # every failure was still reported...
    assert all(r.exc_info and r.exc_text for r in warned)  # ...with its exception
    assert "ValueError: never retrieved" in warned[0].exc_text
