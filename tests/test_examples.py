"""Every ``examples/*.py`` runs to completion (exit 0) in a fresh interpreter.

Examples are discovered by glob, so new ones are covered without editing this file.
The distributed ones (``distributed_*``, ``rpc_*``, ``ddp_*``) are tested elsewhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SKIP_PREFIXES = ("distributed_", "rpc_", "ddp_")
TIMEOUT_S = 90


def _examples() -> list[Path]:
    return sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith((*SKIP_PREFIXES, "_")))


def test_the_documented_examples_exist() -> None:
    names = {p.name for p in _examples()}
    assert {"quickstart.py", "pipeline.py", "cuda_streams.py"} <= names


@pytest.mark.timeout(TIMEOUT_S + 30)
@pytest.mark.parametrize("path", _examples(), ids=lambda p: p.stem)
def test_example_runs(path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONUNBUFFERED="1")
    env.pop("FUTUREKIT_DISABLE_PLUGINS", None)
    proc = subprocess.run(
        [sys.executable, str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, (
        f"{path.name} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    )
    assert proc.stdout.strip(), f"{path.name} printed nothing; examples say what they show"
