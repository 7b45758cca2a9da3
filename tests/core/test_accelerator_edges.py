"""Edges of the compiled accelerator that the pure-Python core never had trouble with.

Each test runs on whichever core is loaded (the pure core is the reference: the same
behaviour is expected of both), and the differential ones run both cores in
subprocesses and compare: the accelerator must be indistinguishable from the pure core
when fields are deleted, when methods get too many arguments, in sub-interpreters, and
it must not leak references on any of its early returns.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from futurekit import Future, collect_all
from futurekit.core import _accelerator

pytestmark = pytest.mark.timeout(120)

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _run(script: str, pure: bool) -> Any:
    """Run ``script`` in a fresh interpreter on one core; its last line, as JSON."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop(_accelerator.ENV_VAR, None)
    if pure:
        env[_accelerator.ENV_VAR] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=90
    )
    assert proc.returncode == 0, f"exit status {proc.returncode}: {proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _both(script: str) -> Any:
    """The script's result on both cores, which must be equal."""
    pure, default = _run(script, True), _run(script, False)
    assert pure == default, "the cores differ:\n" + "\n".join(
        f"{key}: pure {pure[key]!r} != {default.get(key)!r}"
        for key in pure
        if pure[key] != default.get(key)
    )
    return pure


# -- references ----------------------------------------------------------------------------------
def _noop(fut: Future[Any]) -> None:
    return None


def _every_path() -> None:
    Future().set_result(1)  # no callbacks: the early return
    f: Future[int] = Future()
    f.add_done_callback(_noop)
    f.then(_noop)
    f.set_result(2)
    f.wait()
    f.value()
    f.done()
    f.then(_noop)
    f.add_done_callback(_noop)
    c: Future[int] = Future()
    c.cancel()
    ins: list[Future[int]] = [Future(), Future()]
    gathered = collect_all(ins)
    for x in ins:
        x.set_result(0)
    gathered.wait()


def test_no_reference_to_a_shared_constant_leaks() -> None:
    """Completing a future with no callbacks leaked three references to None (each time).

    Constants the fast paths store (None, True, False, the state ints) keep their
    reference counts over 5,000 rounds of every fast path. (From CPython 3.12 these
    objects are immortal and their counts do not move at all.)
    """
    constants = [None, True, False, 0, 1, 2, 3, -1]
    for _ in range(100):
        _every_path()
    before = [sys.getrefcount(c) for c in constants]
    for _ in range(5000):
        _every_path()
    grown = {repr(c): sys.getrefcount(c) - n for c, n in zip(constants, before, strict=True)}
    assert all(abs(d) < 500 for d in grown.values()), f"reference counts moved: {grown}"


# -- deleted fields, wrong calls -----------------------------------------------------------------
DELETED_FIELDS = textwrap.dedent(
    """
    import json
    from futurekit import Future, collect_all

    FIELDS = ["_state", "_value", "_cb1", "_cbs", "_rm", "_waiters", "_dev", "_guard", "_observed"]
    OPS = {
        "wait()": lambda f: f.wait(),
        "wait(0.01)": lambda f: f.wait(0.01),
        "wait(timeout=0.01)": lambda f: f.wait(timeout=0.01),
        "value()": lambda f: f.value(),
        "done()": lambda f: f.done(),
        "set_result(1)": lambda f: f.set_result(1),
        "set_exception": lambda f: f.set_exception(KeyError("k")),
        "cancel()": lambda f: f.cancel(),
        "add_done_callback": lambda f: f.add_done_callback(lambda x: None),
        "then": lambda f: f.then(lambda x: 1),
        "collect_all": lambda f: collect_all([f]),
        "repr": lambda f: repr(f)[:30],
    }

    def outcome(fn, f):
        try:
            result = fn(f)
        except BaseException as exc:
            return [type(exc).__name__, str(exc)]
        return ["ok", type(result).__name__]

    out = {}
    for prestate in ("pending", "done", "with a callback"):
        for field in FIELDS:
            for name, op in OPS.items():
                if prestate != "done" and name == "wait()":
                    continue  # it would block for ever (no field it reads is missing)
                f = Future()
                if prestate == "done":
                    f.set_result(0)
                elif prestate == "with a callback":
                    f.add_done_callback(lambda x: None)
                delattr(f, field)
                out[f"{prestate} / del {field} / {name}"] = outcome(op, f)
    print(json.dumps(out))
    """
)


def test_deleted_fields_raise_what_the_pure_core_raises() -> None:
    """``del f._value; f.wait()`` crashed the process (SIGSEGV) with the accelerator."""
    out = _both(DELETED_FIELDS)
    assert out["done / del _value / wait()"][0] == "AttributeError"
    assert out["done / del _state / done()"][0] == "AttributeError"


WRONG_CALLS = textwrap.dedent(
    """
    import json
    from futurekit import Future

    def outcome(fn):
        try:
            fn()
        except BaseException as exc:
            return [type(exc).__name__, str(exc)]
        return ["ok"]

    f = Future()
    calls = {}
    for n in (2, 7, 8, 9, 20):
        args = list(range(n))
        calls[f"wait *{n}"] = outcome(lambda: f.wait(*args))
        calls[f"set_result *{n}"] = outcome(lambda: Future().set_result(*args))
        calls[f"then *{n}"] = outcome(lambda: f.then(*args))
        calls[f"add_done_callback *{n}"] = outcome(lambda: f.add_done_callback(*args))
        calls[f"wait *{n} + keywords"] = outcome(lambda: f.wait(*args, a=1, b=2))
    calls["wait(timeout=, x=)"] = outcome(lambda: f.wait(timeout=1, x=2))
    calls["wait(1, timeout=)"] = outcome(lambda: f.wait(1, timeout=2))
    calls["wait(timeout='x')"] = outcome(lambda: f.wait(timeout="x"))
    calls["wait(-1)"] = outcome(lambda: f.wait(-1))
    print(json.dumps(calls))
    """
)


def test_wrong_calls_raise_the_pure_cores_type_error() -> None:
    """8 or more arguments gave a bare "too many arguments" with the accelerator."""
    out = _both(WRONG_CALLS)
    assert out["wait *8"][0] == "TypeError" and "were given" in out["wait *8"][1]
    assert out["wait(timeout='x')"][0] == "TypeError"


# -- sub-interpreters ----------------------------------------------------------------------------
def _subinterpreters() -> str | None:
    for name in ("_interpreters", "_xxsubinterpreters"):
        if importlib.util.find_spec(name) is not None:
            return name
    return None


SUBINTERPRETER = textwrap.dedent(
    """
    import json, sys
    import {module} as interpreters
    import futurekit
    from futurekit import Future
    from futurekit.core import _accelerator

    out = {{"main": _accelerator.status}}
    code = (
        f"import sys; sys.path[:0] = {{sys.path!r}}\\n"
        "import futurekit\\n"
        "from futurekit.core import _accelerator\\n"
        "f = futurekit.Future(); c = f.then(lambda f: f.value() + 1); f.set_result(1)\\n"
        "assert c.wait() == 2\\n"
        "open({{path!r}}, 'w').write(_accelerator.status)\\n"
    )
    interp = interpreters.create()
    path = sys.argv[1] if len(sys.argv) > 1 else "/dev/null"
    interpreters.run_string(interp, code.format(path=sys.argv[1]))
    out["sub"] = open(sys.argv[1]).read()
    f = Future()
    child = f.then(lambda x: x.value() + 1)
    out["then type while the sub-interpreter lives"] = type(child) is Future
    interpreters.destroy(interp)
    g = Future()
    calls = []
    g.add_done_callback(calls.append)
    g2 = g.then(lambda x: x.value() * 3)
    g.set_result(2)
    f.set_result(1)
    out["after it is destroyed"] = [g2.wait(), len(calls), child.wait(), type(g2) is Future]
    print(json.dumps(out))
    """
)


@pytest.mark.skipif(_subinterpreters() is None, reason="no sub-interpreter module")
def test_a_sub_interpreter_does_not_rewire_the_main_interpreters_core(tmp_path: Path) -> None:
    """The accelerator's C globals serve the main interpreter; a sub-interpreter that
    imports futurekit runs the pure-Python core."""
    script = SUBINTERPRETER.format(module=_subinterpreters())
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "sub-status")],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["then type while the sub-interpreter lives"] is True
    assert out["after it is destroyed"] == [6, 1, 2, True]
    assert out["sub"].startswith("pure Python")
    assert out["main"] == _accelerator.status
