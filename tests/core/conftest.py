"""Shared fixtures for the core (foundation) tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from futurekit.backends import BackendBase, BackendSpec, _registry, hookimpl
from futurekit.core import _accelerator
from thread_helpers import run_in_thread  # noqa: F401  (re-exported for the tests)

#: For white-box tests that patch functions of the pure-Python core, which the compiled
#: accelerator's fast paths do not call; CI runs the core tests a second time with
#: FUTUREKIT_PURE_PYTHON=1, where they run.
pure_python_only = pytest.mark.skipif(
    _accelerator.speedups is not None,
    reason="patches the pure-Python core (run with FUTUREKIT_PURE_PYTHON=1)",
)

#: Built-in plugins that may find real accelerators; disabled for deterministic tests.
ACCELERATOR_PLUGINS = "futurekit.backends.torch,futurekit.backends.cuda"


class FakeAccelerator(BackendBase):
    """A minimal, always available backend for a made-up device type."""

    def __init__(self, device_type: str, count: int = 4) -> None:
        self.device_type = device_type
        self.count = count

    def device_count(self) -> int:
        return self.count

    def current_stream(self, device: Any) -> Any:
        return ("stream", device)

    def record_event(self, stream: Any) -> Any:
        return ("event", stream)

    def wait_event(self, stream: Any, event: Any) -> None:
        return None

    def query_event(self, event: Any) -> bool:
        return True

    def synchronize_event(self, event: Any) -> None:
        return None

    def device_of(self, obj: Any) -> Any:
        return None


def fake_plugin(device_type: str, *, testing: bool = False, name: str | None = None) -> object:
    """A pluggy plugin object contributing one FakeAccelerator backend."""

    class Plugin:
        @hookimpl
        def futurekit_device_backends(self) -> Iterator[BackendSpec]:
            yield BackendSpec(
                name=name or f"fake-{device_type}",
                device_type=device_type,
                load=lambda: FakeAccelerator(device_type),
                testing=testing,
                description="fake accelerator for tests",
            )

    return Plugin()


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """A fresh registry with no real accelerator plugins; yields a ``register`` helper."""
    monkeypatch.setenv("FUTUREKIT_DISABLE_PLUGINS", ACCELERATOR_PLUGINS)
    monkeypatch.setenv("FUTUREKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    _registry.reset()

    def register(device_type: str, *, testing: bool = False, name: str | None = None) -> str:
        return _registry.register(fake_plugin(device_type, testing=testing, name=name))

    yield register
    monkeypatch.undo()
    _registry.reset()
