"""The torch.distributed examples run: two processes each, loopback, bounded in time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 240

EXAMPLES = [
    ("distributed_allreduce.py", "allreduce OK: world_size=2 sum=12 (expected 12)"),
    ("rpc_pipeline.py", "rpc pipeline OK: squares=[0.0, 1.0, 4.0, 9.0] chained=81 timed_out=True"),
    ("ddp_comm_hook.py", "ddp comm hook OK:"),
]

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available"),
    pytest.mark.skipif(sys.platform == "win32", reason="gloo on loopback is tested on Linux/macOS"),
]


@pytest.mark.timeout(TIMEOUT_S + 30)
@pytest.mark.parametrize(("name", "expected"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_distributed_example(name: str, expected: str) -> None:
    if name.startswith("rpc_"):
        rpc = pytest.importorskip("torch.distributed.rpc")
        if not rpc.is_available():
            pytest.skip("torch.distributed.rpc is not available")
    elif not dist.is_gloo_available():
        pytest.skip("the gloo backend is not available")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONUNBUFFERED="1")
    env.pop("FUTUREKIT_DISABLE_PLUGINS", None)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    output = f"{proc.stdout}\n{proc.stderr}"
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\n{output}"
    assert expected in proc.stdout, output
