"""``import futurekit`` loads no stdlib weight it does not need, and nothing is lost by it.

``CancelledError`` and ``InvalidStateError`` subclass ``concurrent.futures``' classes,
and importing ``concurrent.futures`` (with ``logging``, ``threading``, ``re`` ...) was
three quarters of ``import futurekit``. They are made on first use; ``logging`` is
imported by the first failed future. Each test runs in a fresh interpreter, on the
core the parent runs (``FUTUREKIT_PURE_PYTHON`` is inherited).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

SRC = str(Path(__file__).resolve().parents[2] / "src")
LIGHT = ("concurrent", "logging", "threading", "typing", "re", "traceback", "math", "types")


def _run(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; it ends by printing one JSON line."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["stderr"] = proc.stderr
    return out


def test_import_futurekit_loads_none_of_the_heavy_stdlib_modules() -> None:
    out = _run(
        f"""
        import json, sys
        before = set(sys.modules)
        import futurekit
        new = sorted(m for m in set(sys.modules) - before
                     if m.split(".")[0] in {LIGHT!r})
        print(json.dumps({{"new": new}}))
        """
    )
    assert out["new"] == [], out["new"]


def test_cpu_futures_without_errors_import_neither_concurrent_futures_nor_logging() -> None:
    out = _run(
        """
        import json, sys
        import futurekit
        a = futurekit.Future()
        b = a.then(lambda f: f.value() + 1)
        a.add_done_callback(lambda f: None)
        a.set_result(1)
        assert futurekit.collect_all([a, b]).wait()[1].value() == 2
        assert futurekit.wait_all([a, b]) == [1, 2]
        print(json.dumps({"loaded": sorted(m for m in ("concurrent.futures", "logging")
                                           if m in sys.modules)}))
        """
    )
    assert out["loaded"] == []


def test_lazy_errors_are_concurrent_futures_subclasses_and_one_class_per_name() -> None:
    out = _run(
        """
        import concurrent.futures as cf, json, pickle
        import futurekit
        from futurekit.core import _errors
        names = ["CancelledError", "InvalidStateError"]
        assert all(n in dir(futurekit) and n in dir(_errors) for n in names)
        ns = {}
        exec("from futurekit import *", ns)
        same = all(ns[n] is getattr(futurekit, n) is getattr(_errors, n) for n in names)
        c = futurekit.CancelledError("x")
        back = pickle.loads(pickle.dumps(c))
        print(json.dumps({
            "same": same,
            "cancelled_sub": issubclass(futurekit.CancelledError, cf.CancelledError),
            "invalid_sub": [issubclass(futurekit.InvalidStateError, t)
                            for t in (RuntimeError, cf.InvalidStateError)],
            "names": [futurekit.CancelledError.__module__ + "." +
                      futurekit.CancelledError.__qualname__, repr(futurekit.InvalidStateError)],
            "pickled": [type(back) is futurekit.CancelledError, str(back)],
            "missing": hasattr(futurekit, "NoSuchError") or hasattr(_errors, "NoSuchError"),
        }))
        """
    )
    assert out["same"] is True
    assert out["cancelled_sub"] is True
    assert out["invalid_sub"] == [True, True]
    assert out["names"] == ["futurekit.CancelledError", "<class 'futurekit.InvalidStateError'>"]
    assert out["pickled"] == [True, "x"]
    assert out["missing"] is False


def test_errors_raised_before_anyone_named_the_class_are_the_public_class() -> None:
    """The core makes the class when it first raises one; user code then catches it."""
    out = _run(
        """
        import json
        import futurekit
        f = futurekit.Future()
        f.set_result(1)
        try:
            f.set_result(2)
        except RuntimeError as exc:
            first = exc
        g = futurekit.Future()
        g.cancel()
        try:
            g.wait()
        except Exception as exc:
            second = exc
        h = futurekit.Future()
        child = h.then(lambda x: h.set_result(3))  # the callback completes h again
        h.set_result(0)
        try:
            child.wait()
        except RuntimeError as exc:
            third = str(exc)
        print(json.dumps({
            "first": type(first) is futurekit.InvalidStateError,
            "second": type(second) is futurekit.CancelledError,
            "third": third,
        }))
        """
    )
    assert out["first"] is True
    assert out["second"] is True
    # torch's name for InvalidStateError in a callback error is RuntimeError
    assert str(out["third"]).startswith(
        "Got the following error when running the callback: RuntimeError: "
    )


def test_first_use_from_many_threads_at_once_makes_one_class() -> None:
    out = _run(
        """
        import json, threading
        import futurekit
        from futurekit.core import _errors
        seen, go = [], threading.Barrier(16)
        def grab(i):
            go.wait()
            seen.append(getattr(_errors if i % 2 else futurekit, "CancelledError"))
        threads = [threading.Thread(target=grab, args=(i,)) for i in range(16)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(json.dumps({"distinct": len({id(c) for c in seen}), "n": len(seen)}))
        """
    )
    assert (out["distinct"], out["n"]) == (1, 16)


def test_a_never_retrieved_failure_is_still_logged_when_logging_was_not_imported() -> None:
    """The first failed future imports logging, so its finalizer's warning can be given."""
    out = _run(
        """
        import gc, json, sys
        import futurekit
        assert "logging" not in sys.modules
        f = futurekit.Future()
        f.set_exception(ValueError("nobody looked"))
        loaded = "logging" in sys.modules
        del f
        gc.collect()
        print(json.dumps({"loaded_at_failure": loaded}))
        """
    )
    assert out["loaded_at_failure"] is True
    assert "Future exception was never retrieved" in str(out["stderr"])
    assert "nobody looked" in str(out["stderr"])


def test_a_callback_error_is_logged_when_logging_was_not_imported() -> None:
    out = _run(
        """
        import json
        import futurekit
        f = futurekit.Future()
        f.add_done_callback(lambda _: 1 / 0)
        f.set_result(1)
        print(json.dumps({"ok": f.value()}))
        """
    )
    assert out["ok"] == 1
    assert "ZeroDivisionError" in str(out["stderr"])
