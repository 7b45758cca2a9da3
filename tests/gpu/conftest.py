"""GPU test support: skip ``gpu`` tests without a CUDA GPU; backend fixtures.

``FUTUREKIT_REQUIRE_BACKENDS=torch,cuda-python`` (what ``scripts/gpu-check.sh``
sets) turns every skip for a missing GPU or an unavailable listed backend into a
failure, so a run that silently tested one backend (or none) cannot pass for a
full one.
"""

from __future__ import annotations

from typing import Any

import pytest
from gpu_helpers import REQUIRED, require_backend


def _gpu_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    try:
        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:
        return 0


GPU_COUNT = _gpu_count()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if GPU_COUNT or REQUIRED:  # required: the tests run, and fail without a GPU
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU and a CUDA build of torch")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> str:
    required = ", ".join(sorted(REQUIRED)) or "none (unavailable backends are skipped)"
    return (
        f"futurekit GPU tests: {GPU_COUNT} CUDA device(s) visible to torch; "
        f"required backends: {required}"
    )


@pytest.fixture(autouse=True)
def _gpu_present(request: pytest.FixtureRequest) -> None:
    if REQUIRED and "gpu" in request.keywords and not GPU_COUNT:
        pytest.fail(
            f"FUTUREKIT_REQUIRE_BACKENDS={','.join(sorted(REQUIRED))} but torch sees no CUDA GPU"
        )


@pytest.fixture(params=["torch", "cuda-python"])
def backend_name(request: pytest.FixtureRequest) -> str:
    """Each futurekit CUDA backend in turn; skipped (or failed, if required) when unavailable."""
    name: str = request.param
    require_backend(name)
    return name


@pytest.fixture
def two_gpus() -> Any:
    """Skip unless two GPUs are visible."""
    if GPU_COUNT < 2:
        pytest.skip("needs 2 GPUs")  # never required: most GPU machines have one
