"""A child made by ``fork()`` while other threads use futures can still use futures.

The core has one lock; a thread of the parent may hold it at the instant of the fork,
and that thread does not exist in the child. ``os.register_at_fork`` gives the child a
fresh lock (both cores).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings

import pytest

from futurekit import Future, InvalidStateError, collect_all

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
]


def _child_work() -> int:
    fut: Future[int] = Future()
    seen: list[int] = []
    fut.add_done_callback(lambda f: seen.append(f.value()))
    child = fut.then(lambda f: f.value() + 1)
    both = collect_all([fut, child])
    fut.set_result(1)
    ok = seen == [1] and child.wait(timeout=5) == 2 and len(both.wait(timeout=5)) == 2
    other: Future[int] = Future()
    return 0 if ok and other.cancel() else 3


def test_fork_while_threads_hold_the_lock() -> None:
    stop = threading.Event()

    def hammer() -> None:  # takes the core's lock as often as it can
        while not stop.is_set():
            f: Future[int] = Future()
            f.add_done_callback(lambda _: None)
            f.add_done_callback(lambda _: None)
            try:
                f.set_result(0)
            except InvalidStateError:  # pragma: no cover - cannot happen
                pass
            f.cancel()

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    hung = failed = 0
    try:
        for _ in range(40):
            with warnings.catch_warnings():  # 3.12+: fork() of a multi-threaded process
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:  # the child: only this thread exists
                code = 4
                try:
                    code = _child_work()
                finally:
                    os._exit(code)
            deadline = time.monotonic() + 10
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    failed += os.waitstatus_to_exitcode(status) != 0
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                    hung += 1
                    break
                time.sleep(0.005)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert (hung, failed) == (0, 0), f"{hung} child(ren) hung, {failed} failed of 40"


def test_the_lock_is_replaced_in_the_child() -> None:
    from futurekit.core import _completion

    read, write = os.pipe()
    with _completion.lock:  # held by this thread at the fork
        pid = os.fork()
        if pid == 0:
            try:
                ok = _completion.lock.acquire(blocking=False)
                os.write(write, b"1" if ok else b"0")
            finally:
                os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1", "the child inherited a held lock"
    os.close(read)
    os.close(write)
    assert sys.getrecursionlimit() > 0
