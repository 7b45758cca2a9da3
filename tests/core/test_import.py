"""``import futurekit`` is light: no torch, no CUDA, no pluggy (checked in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

SRC = str(Path(__file__).resolve().parents[2] / "src")
HEAVY = ("torch", "cuda", "pluggy", "numpy", "cupy", "importlib.metadata")


def _modules_after(code: str) -> dict[str, list[str]]:
    report = textwrap.dedent(
        f"""
        import json, sys
        heavy = {HEAVY!r}
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy
                        or m in heavy or m.startswith("importlib.metadata")
                        or m.startswith("futurekit.backends."))
        print(json.dumps({{"heavy": loaded}}))
        """
    )
    script = textwrap.dedent(code) + "\n" + report
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, list[str]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_import_futurekit_imports_no_torch_cuda_or_pluggy() -> None:
    loaded = _modules_after("import futurekit")["heavy"]
    assert not [m for m in loaded if m.split(".")[0] in ("torch", "cuda", "pluggy")], loaded


def test_cpu_futures_never_load_the_registry() -> None:
    code = """
        import futurekit
        from futurekit import Future, collect_all, wait_all
        f = Future(devices=["cpu:0"])
        g = Future()
        c = f.then(lambda x: x.value() + 1)
        f.add_done_callback(lambda x: None)
        f.set_result(1)
        g.set_exception(ValueError("x"))
        try:
            wait_all([f, g])
        except ValueError:
            pass
        assert collect_all([f, c]).wait()[1].wait() == 2
        assert repr(f) and futurekit.Device("cuda", 0)
        import futurekit.backends
        """
    loaded = _modules_after(code)["heavy"]
    assert not [m for m in loaded if m.split(".")[0] in ("torch", "cuda", "pluggy")], loaded
    assert "futurekit.backends._registry" not in loaded


def test_registry_loads_on_first_device_use() -> None:
    code = """
        import futurekit.backends
        futurekit.backends.available_backends()
        """
    loaded = _modules_after(code)["heavy"]
    assert "pluggy" in loaded
