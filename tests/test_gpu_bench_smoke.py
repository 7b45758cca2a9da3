"""``scripts/gpu_bench.py --smoke``: every path of the GPU benchmark, on the sim device.

The first GPU run of the benchmark crashed on a path no CPU run had taken; the
smoke mode runs the same code (set_result + wait of 1 and of 1,000 buffers,
``then()``, ``collect_all``) on the simulated device.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent.parent / "scripts" / "gpu_bench.py"


def test_the_gpu_benchmark_runs_every_case_on_the_sim_device(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parent.parent / "src")}
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    for case in ("1 tensor", "1000 tensors", "then()", "collect_all(100)"):
        assert f"| {case} |" in run.stdout
    assert "futurekit[sim]" in run.stdout and out.exists()
