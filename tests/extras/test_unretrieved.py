"""The never-retrieved error warning on the ``futurekit`` logger."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
from collections.abc import Callable
from typing import Any

import pytest

import futurekit
from futurekit import Future

from .extras_helpers import collect_garbage

MESSAGE = "never retrieved"


def warnings_for(caplog: pytest.LogCaptureFixture, exc: BaseException | None = None) -> list[Any]:
    records = [
        r
        for r in caplog.records
        if r.name == "futurekit" and r.levelno == logging.WARNING and MESSAGE in r.getMessage()
    ]
    if exc is not None:
        records = [r for r in records if r.exc_info and r.exc_info[1] is exc]
    return records


@pytest.fixture(autouse=True)
def _capture(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="futurekit")


def drop_failed(exc: Exception, retrieve: Callable[[Future[Any]], object] | None = None) -> None:
    fut: Future[Any] = Future()
    fut.set_exception(exc)
    if retrieve is not None:
        retrieve(fut)
    del fut
    collect_garbage()


def test_failed_future_gc_logs_warning(caplog: pytest.LogCaptureFixture) -> None:
    err = ValueError("nobody looked")
    drop_failed(err)
    records = warnings_for(caplog, err)
    assert len(records) == 1
    assert "ValueError" in caplog.text and "nobody looked" in caplog.text
    assert records[0].exc_info[1] is err  # the exception with its traceback


def test_failed_before_any_callback_then_collected(caplog: pytest.LogCaptureFixture) -> None:
    err = RuntimeError("in a cycle")
    fut: Future[Any] = Future()
    fut.set_exception(err)
    holder: list[Any] = [fut]
    holder.append(holder)  # a reference cycle: only the cycle collector frees it
    del fut, holder
    collect_garbage()
    assert len(warnings_for(caplog, err)) == 1


def _swallow(fn: Callable[[], object]) -> None:
    try:
        fn()
    except Exception:
        pass


def _await(fut: Future[Any]) -> None:
    async def main() -> None:
        try:
            await fut
        except Exception:
            pass

    asyncio.run(main())


RETRIEVALS: dict[str, Callable[[Future[Any]], object]] = {
    "wait": lambda f: _swallow(f.wait),
    "wait_timeout": lambda f: _swallow(lambda: f.wait(0)),
    "value": lambda f: _swallow(f.value),
    "result": lambda f: _swallow(f.result),
    "exception": lambda f: f.exception(),
    "await": _await,
    "then": lambda f: f.then(lambda x: None),
    "add_done_callback": lambda f: f.add_done_callback(lambda x: None),
}


@pytest.mark.parametrize("how", sorted(RETRIEVALS))
def test_any_retrieval_suppresses(caplog: pytest.LogCaptureFixture, how: str) -> None:
    err = ValueError(how)
    drop_failed(err, RETRIEVALS[how])
    assert warnings_for(caplog) == []


@pytest.mark.parametrize("how", ["then", "add_done_callback", "wait_thread"])
def test_retrieval_registered_before_failure_suppresses(
    caplog: pytest.LogCaptureFixture, how: str
) -> None:
    fut: Future[Any] = Future()
    if how == "then":
        fut.then(lambda f: None)
    elif how == "add_done_callback":
        fut.add_done_callback(lambda f: None)
    else:
        import functools
        import threading

        t = threading.Thread(target=_swallow, args=(functools.partial(fut.wait, 10),), daemon=True)
        t.start()
        while not fut._waiters:  # the waiter registered
            t.join(0.001)
    fut.set_exception(KeyError("k"))
    if how == "wait_thread":
        t.join(10)
    del fut
    collect_garbage()
    assert warnings_for(caplog) == []


def test_success_and_pending_do_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    ok: Future[int] = Future()
    ok.set_result(1)
    pending: Future[int] = Future()
    del ok, pending
    collect_garbage()
    assert warnings_for(caplog) == []


def test_cancelled_future_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    fut: Future[int] = Future()
    fut.cancel()
    del fut
    collect_garbage()
    assert warnings_for(caplog) == []


def test_cancelled_pipeline_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    fut: Future[int] = Future()
    child = fut.then(lambda f: f.wait() + 1)  # fails with CallbackError from CancelledError
    both = futurekit.collect_all([fut, Future()])
    fut.cancel()
    del fut, child, both
    collect_garbage()
    assert warnings_for(caplog) == []


def test_collect_all_reports_once(caplog: pytest.LogCaptureFixture) -> None:
    err = ValueError("shared")
    a: Future[int] = Future()
    b: Future[int] = Future()
    first = futurekit.collect_all([a, b])
    second = futurekit.collect_all([a])
    nested = futurekit.collect_all([first, second])
    a.set_exception(err)
    del a, b, first, second, nested
    collect_garbage()
    assert len(warnings_for(caplog, err)) == 1


def test_collect_all_retrieved_on_result_suppresses(caplog: pytest.LogCaptureFixture) -> None:
    a: Future[int] = Future()
    both = futurekit.collect_all([a])
    a.set_exception(ValueError())
    with pytest.raises(ValueError):
        both.wait()
    del a, both
    collect_garbage()
    assert warnings_for(caplog) == []


def test_retrieval_is_per_future_shared_error_still_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Retrieving the error from one future does not hide another future that holds the
    same exception and was never retrieved (it used to, so neither warned)."""
    a: Future[int] = Future()
    both = futurekit.collect_all([a])
    a.set_exception(ValueError())
    assert isinstance(a.exception(), ValueError)  # the user saw it on ``a`` only
    del a, both
    collect_garbage()
    assert len(warnings_for(caplog)) == 1  # ``both`` was never retrieved


def test_then_chain_reports_once(caplog: pytest.LogCaptureFixture) -> None:
    fut: Future[int] = Future()
    tail = fut.then(lambda f: f.wait()).then(lambda f: f.wait()).then(lambda f: f.wait())
    fut.set_exception(ValueError("root"))
    # (a variable holding the root error would keep the chain alive via tracebacks)
    del fut, tail
    collect_garbage()
    records = warnings_for(caplog)
    assert len(records) == 1  # only the last child, which nobody read
    reported = records[0].exc_info[1]
    assert isinstance(reported, futurekit.CallbackError)
    root: BaseException | None = reported
    while root is not None and root.__cause__ is not None:
        root = root.__cause__
    assert isinstance(root, ValueError) and str(root) == "root"


def test_same_exception_on_many_futures_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    err = ValueError("everywhere")
    futs = []
    for _ in range(5):
        fut: Future[int] = Future()
        fut.set_exception(err)
        futs.append(fut)
    del futs, fut
    collect_garbage()
    assert len(warnings_for(caplog, err)) == 1


def test_from_concurrent_failure_unretrieved_warns(caplog: pytest.LogCaptureFixture) -> None:
    err = ValueError("from cf")
    src: cf.Future[int] = cf.Future()
    ours = futurekit.from_concurrent(src)
    src.set_exception(err)
    del ours, src  # the source's callback holds ours
    collect_garbage()
    assert len(warnings_for(caplog, err)) == 1
