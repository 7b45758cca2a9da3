"""The torch.distributed examples run: two processes each, loopback, bounded in time.

The examples meet through a rendezvous file, not a port picked in advance (a port
found free can be taken by another process before rank 0 binds it: the cause of an
occasional failure under load). ``examples/_dist.py`` gives the whole example
``DEADLINE_S`` (180 s); this test allows more, so that the example's own deadline,
with its message, is what fires on a slow machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 240
NO_TORCH = (
    "import runpy, sys\n"
    "sys.modules['torch'] = None  # as if torch were not installed\n"
    "sys.path.insert(0, {examples!r})\n"
    "runpy.run_path({path!r}, run_name='__main__')\n"
)


@pytest.mark.parametrize("name", ["distributed_allreduce.py", "rpc_pipeline.py",
                                  "ddp_comm_hook.py"])  # fmt: skip
def test_without_torch_the_example_names_the_extra(name: str) -> None:
    path = ROOT / "examples" / name
    code = NO_TORCH.format(examples=str(path.parent), path=str(path))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "needs torch" in proc.stdout and "futurekit[torch]" in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stderr


EXAMPLES = [
    ("distributed_allreduce.py", "allreduce OK: world_size=2 sum=12 (expected 12)"),
    ("rpc_pipeline.py", "rpc pipeline OK: squares=[0.0, 1.0, 4.0, 9.0] chained=81 timed_out=True"),
    ("ddp_comm_hook.py", "ddp comm hook OK:"),
]


@pytest.mark.distributed
@pytest.mark.skipif(sys.platform == "win32", reason="gloo on loopback is tested on Linux/macOS")
@pytest.mark.timeout(TIMEOUT_S + 30)
@pytest.mark.parametrize(("name", "expected"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_distributed_example(name: str, expected: str) -> None:
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
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
