"""Ctrl-C interrupts ``wait()`` in the main thread and leaves the future usable.

torch's ``wait()`` ignores SIGINT until the process is killed. The scenario runs in
a subprocess (signals go to its main thread); it reports what happened on stdout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]

SRC = str(Path(__file__).resolve().parents[2] / "src")

CHILD = textwrap.dedent(
    """
    import json, sys, threading
    from futurekit import Future

    def report(**kw):
        print(json.dumps(kw), flush=True)

    f = Future()
    child = f.then(lambda x: x.value() * 2)
    report(event="waiting")
    try:
        f.wait({timeout})
    except KeyboardInterrupt:
        report(event="interrupted", done=f.done())
    else:
        report(event="returned")
        sys.exit(1)

    # the future is still usable: another thread completes it, wait() returns
    threading.Timer(0.05, f.set_result, args=(21,)).start()
    report(event="result", value=f.wait(), child=child.wait(), done=f.done())
    """
)


def _run(timeout_arg: str) -> list[dict[str, object]]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(timeout=timeout_arg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first == {"event": "waiting"}
        # let the main thread block inside wait(); an early signal still lands in wait()
        try:
            proc.wait(0.3)
        except subprocess.TimeoutExpired:
            pass
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    assert proc.returncode == 0, err
    return [first] + [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.mark.parametrize("timeout_arg", ["", "timeout=3600"], ids=["forever", "long-timeout"])
def test_ctrl_c_interrupts_wait(timeout_arg: str) -> None:
    events = _run(timeout_arg)
    assert events[1] == {"event": "interrupted", "done": False}
    assert events[2] == {"event": "result", "value": 21, "child": 42, "done": True}
