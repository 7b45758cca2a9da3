"""GPU test support: skip ``gpu`` tests without a CUDA GPU; backend fixtures."""

from __future__ import annotations

from typing import Any

import pytest


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
    if GPU_COUNT:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU and a CUDA build of torch")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> str:
    return f"futurekit GPU tests: {GPU_COUNT} CUDA device(s) visible to torch"


@pytest.fixture(params=["torch", "cuda-python"])
def backend_name(request: pytest.FixtureRequest) -> str:
    """Each futurekit CUDA backend in turn; skipped when that backend is unavailable."""
    from futurekit.backends import get_backend
    from futurekit.core._errors import BackendUnavailableError

    name: str = request.param
    try:
        get_backend("cuda", name)
    except BackendUnavailableError as exc:
        pytest.skip(f"backend {name!r} unavailable: {exc}")
    return name


@pytest.fixture
def two_gpus() -> Any:
    """Skip unless two GPUs are visible."""
    if GPU_COUNT < 2:
        pytest.skip("needs 2 GPUs")
