"""Helpers shared by the GPU tests and their conftest (no GPU needed to import)."""

from __future__ import annotations

import os

import pytest

#: Backends whose absence fails the GPU tests instead of skipping them.
REQUIRED = frozenset(
    name.strip()
    for name in os.environ.get("FUTUREKIT_REQUIRE_BACKENDS", "").split(",")
    if name.strip()
)


def skip_or_fail(reason: str, backend: str | None = None) -> None:
    """Skip, unless ``FUTUREKIT_REQUIRE_BACKENDS`` says this must not be missing."""
    if REQUIRED and (backend is None or backend in REQUIRED):
        pytest.fail(f"FUTUREKIT_REQUIRE_BACKENDS={','.join(sorted(REQUIRED))}: {reason}")
    pytest.skip(reason)


def require_backend(name: str) -> None:
    """Skip (or fail, when required) unless the futurekit backend ``name`` is usable."""
    from futurekit.backends import get_backend
    from futurekit.core._errors import BackendError

    try:
        get_backend("cuda", name)
    except BackendError as exc:
        skip_or_fail(f"backend {name!r} unavailable: {exc}", name)
