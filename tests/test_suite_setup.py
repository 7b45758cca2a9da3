"""The suite's own set-up (tests/conftest.py) does what it says."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(120)
@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="POSIX signals")
def test_ctrl_c_tests_pass_when_the_suite_starts_with_sigint_ignored() -> None:
    """A shell starts a script's background jobs with SIGINT ignored; the Ctrl-C tests
    still interrupt their waits (without the conftest fix they time out)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "tests/core/test_interrupt.py", "-k", "ctrl_c_interrupts_wait"],
        cwd=ROOT,
        env={**os.environ, "PYTEST_ADDOPTS": ""},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        capture_output=True,
        text=True,
        timeout=100,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
