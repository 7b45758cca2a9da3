#!/usr/bin/env bash
# One command for a GPU machine: futurekit's GPU tests for both CUDA backends, then a
# short benchmark against torch's own CUDA future. Needs torch (CUDA build), and for
# the cuda-python backend cuda-core/cuda-bindings (CuPy optional). Nothing is
# installed: futurekit runs from this source tree (PYTHONPATH=src). Under 5 minutes.
#
#   scripts/gpu-check.sh            # or: PYTHON=/path/to/python scripts/gpu-check.sh
#
# Both backends are required (FUTUREKIT_REQUIRE_BACKENDS=torch,cuda-python): a missing
# GPU or an unavailable backend makes the tests fail instead of skip, so a run that
# tested only one backend cannot pass for a full one. To check one backend on purpose:
#   FUTUREKIT_REQUIRE_BACKENDS=torch scripts/gpu-check.sh
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export CUDA_PYTHON_DISABLE_MAJOR_VERSION_WARNING=1
export FUTUREKIT_REQUIRE_BACKENDS="${FUTUREKIT_REQUIRE_BACKENDS-torch,cuda-python}"
PY="${PYTHON:-python3}"

echo "== futurekit GPU check ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
# the core's compiled accelerator, built in place (the pure-Python core runs without it)
"$PY" setup.py -q build_ext --inplace || echo "  (running the pure-Python core)"
"$PY" -c 'from futurekit.core import _accelerator as a; print("  core:", a.status)'
"$PY" - <<'PYEOF'
import importlib
for name in ("torch", "cuda.core", "cuda.bindings", "cupy"):
    try:
        mod = importlib.import_module(name)
        print(f"  {name:14} {getattr(mod, '__version__', '?')}")
    except Exception as exc:
        print(f"  {name:14} not importable ({type(exc).__name__})")
try:
    import torch
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    print(f"  GPUs:          {n}")
    for i in range(n):
        print(f"    cuda:{i} {torch.cuda.get_device_name(i)}")
except Exception:
    print("  GPUs:          unknown (torch missing)")
from futurekit.backends import available_backends
for info in available_backends():
    if info.device_type == "cuda":
        state = f"{info.device_count} device(s)" if info.available else info.reason
        print(f"  backend {info.name:12} (priority {info.priority}): {state}")
PYEOF

echo
echo "== GPU tests (required backends: ${FUTUREKIT_REQUIRE_BACKENDS:-none})"
timeout 200 "$PY" -m pytest tests/gpu -m gpu -p no:cacheprovider -q -rs
tests_rc=$?

echo
echo "== benchmark: set_result + wait, futurekit vs torch.futures"
timeout 70 "$PY" scripts/gpu_bench.py "$@"
bench_rc=$?

echo
echo "== done: tests exit code ${tests_rc}, benchmark exit code ${bench_rc}"
if [ "$tests_rc" -ne 0 ]; then exit "$tests_rc"; fi
exit "$bench_rc"
