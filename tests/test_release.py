"""The release check: sdist and wheel build, pass twine check, install and run fresh.

Runs ``scripts/release-check.sh`` exactly as the release workflow does. It needs the
release extra (build, twine, hatchling: ``pip install -e '.[release]'``) and no network.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "release-check.sh"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="bash")]


@pytest.mark.timeout(400)
def test_the_release_check_builds_installs_and_runs_the_quickstart(tmp_path: Path) -> None:
    missing = [m for m in ("build", "twine", "hatchling") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the release extra is not installed (missing {', '.join(missing)})")
    env = dict(os.environ, PYTHON=sys.executable)
    for var in ("PYTHONPATH", "FUTUREKIT_DISABLE_PLUGINS", "FUTUREKIT_DISABLE_PLUGIN_AUTOLOAD"):
        env.pop(var, None)
    proc = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=360,
        check=False,
    )
    output = f"{proc.stdout}\n{proc.stderr}"
    assert proc.returncode == 0, output
    dist = sorted(p.name for p in (tmp_path / "dist").iterdir())
    assert len(dist) == 2 and dist[0].endswith(".whl") and dist[1].endswith(".tar.gz"), dist
    assert "PASSED" in proc.stdout  # twine check
    venv = str(tmp_path / "venv")
    assert f"from {venv}" in proc.stdout  # imported from the fresh venv, not from src/
    assert "wait_all    -> [0, 1, 4, 9]" in proc.stdout  # the quickstart ran
    assert "[PASS] cpu (cpu)" in proc.stdout  # the installed console script ran doctor
    assert "release check passed" in proc.stdout
    # the wheel carries the compiled accelerator wherever a C compiler is at hand
    ldshared = (sysconfig.get_config_var("LDSHARED") or "").split()
    if ldshared and shutil.which(ldshared[0]):
        assert "core: compiled accelerator" in proc.stdout, output
        assert "-py3-none-any" not in dist[0], dist
