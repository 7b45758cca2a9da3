"""Differential fuzzing: the same random programs on the compiled and the pure-Python core.

``_fuzz_program.py`` runs seeded random programs and prints one trace per program
(every callback run, what every operation returned or raised, the log records, each
future's outcome). Its callbacks wait (on done futures, with timeouts, on futures a later
sibling completes), raise errors, ``KeyboardInterrupt`` and ``SystemExit``, complete,
fail and cancel other futures, register more callbacks, and drop the last reference to
objects whose finalizers complete or register on futures; interrupts are also injected
at the entry of the core's own internal functions. The two cores must give the very
same traces: one semantics, two implementations. A quarter of the futures are device
futures on a backend that traces its calls, so both cores must also drive backends alike.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from futurekit.core import _accelerator

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(_accelerator.speedups is None, reason=_accelerator.status),
]

HERE = Path(__file__).resolve().parent
SRC = str(HERE.parents[1] / "src")
PROGRAM = str(HERE / "_fuzz_program.py")
#: Programs per run; each core runs all of them (about 2 s per core on one CPU).
PROGRAMS = 1000


def _start(pure: bool, count: int, first: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop(_accelerator.ENV_VAR, None)
    if pure:
        env[_accelerator.ENV_VAR] = "1"
    return subprocess.Popen(
        [sys.executable, PROGRAM, str(count), str(first)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=100)
    assert proc.returncode == 0, err[-3000:]
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _first_difference(a: list[Any], b: list[Any]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            context = "\n".join(json.dumps(r) for r in a[max(0, i - 8) : i])
            return f"after\n{context}\npure:     {json.dumps(x)}\ncompiled: {json.dumps(y)}"
    return f"lengths {len(a)} != {len(b)}"


def test_random_programs_give_the_same_traces_on_both_cores() -> None:
    procs = [_start(pure, PROGRAMS, 0) for pure in (True, False)]
    pure, compiled = (_result(p) for p in procs)
    assert pure["core"].startswith("pure Python")
    assert compiled["core"] == "compiled accelerator"
    assert len(pure["traces"]) == len(compiled["traces"]) == PROGRAMS
    differ = [
        seed
        for seed, (a, b) in enumerate(zip(pure["traces"], compiled["traces"], strict=True))
        if a != b
    ]
    if differ:
        seed = differ[0]
        pytest.fail(
            f"{len(differ)} of {PROGRAMS} programs differ between the cores (seeds "
            f"{differ[:10]}); program {seed} (python {PROGRAM} 1 {seed} show):\n"
            + _first_difference(pure["traces"][seed], compiled["traces"][seed])
        )
    # the programs did exercise what they are meant to (the same counts on both cores)
    events = collections.Counter(r[0] for t in pure["traces"] for r in t)
    raised = collections.Counter(
        r[-1][0] for t in pure["traces"] for r in t if r[0] == "op" and isinstance(r[-1], list)
    )
    for kind in ("run", "waited", "timeout", "wait raised", "finalizer", "fin-cb", "log"):
        assert events[kind] >= 20, (kind, events)
    assert events["inject"] >= PROGRAMS // 3
    # device futures: the backend's calls (events, stream waits, callback streams, hints)
    calls = collections.Counter(r[1] for t in pure["traces"] for r in t if r[0] == "dev")
    for call in ("record", "wait_event", "pool", "enter", "exit", "hint", "current_stream"):
        assert calls[call] >= 50, calls
    woken = [r for t in pure["traces"] for r in t if r[0] in ("waited", "wait raised") and r[-1]]
    assert len(woken) >= 20  # waits on pending futures that work queued on the thread finished
    assert raised["KeyboardInterrupt"] >= 50 and raised["SystemExit"] >= 20, raised
