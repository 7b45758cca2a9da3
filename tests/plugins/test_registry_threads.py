"""A slow backend delays only its own device type; lookups stay cached.

The slow ``is_available()`` blocks on an event instead of sleeping, so the tests
check the order of events, never a duration.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from futurekit import Future
from futurekit.backends import (
    BackendBase,
    BackendSpec,
    _loading,
    _selection,
    available_backends,
    get_backend,
    hookimpl,
    register,
)
from futurekit.backends.cpu import CpuBackend
from futurekit.backends.sim import SimBackend

from .conftest import Install

pytestmark = pytest.mark.timeout(60)

#: How long a thread may take before the test calls it stuck (never reached when
#: the registry is right: the waits end on events).
STUCK = 20.0


class Slow(CpuBackend):
    """A backend whose ``is_available()`` waits until the test releases it."""

    device_type = "slow"

    def __init__(self, entered: threading.Event, release: threading.Event) -> None:
        self.entered = entered
        self.release = release

    def is_available(self) -> bool:
        self.entered.set()
        assert self.release.wait(STUCK), "the test never released is_available()"
        return True


class SlowPlugin:
    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.loads = 0

    def load(self) -> Slow:
        self.loads += 1
        return Slow(self.entered, self.release)

    @hookimpl
    def futurekit_device_backends(self) -> Iterator[BackendSpec]:
        yield BackendSpec(name="slow", device_type="slow", load=self.load)


class Worker:
    """Runs ``fn`` in a daemon thread and keeps its result or error."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self.result = fn()
        except BaseException as exc:
            self.error = exc

    def join(self) -> Any:
        self.thread.join(STUCK)
        assert not self.thread.is_alive(), "the thread is stuck"
        if self.error is not None:
            raise self.error
        return self.result


@pytest.fixture
def slow(install: Install) -> Iterator[SlowPlugin]:
    install("futurekit-nothing", {})
    plugin = SlowPlugin()
    register(plugin, name="slow-plugin")
    yield plugin
    plugin.release.set()  # never leave a thread behind


@pytest.mark.parametrize(
    "block",
    [lambda: get_backend("slow"), available_backends, lambda: Future(devices=["slow:0"])],
    ids=["get_backend", "available_backends", "Future"],
)
def test_slow_is_available_does_not_block_another_type(
    slow: SlowPlugin, block: Callable[[], Any]
) -> None:
    blocked = Worker(block)
    assert slow.entered.wait(STUCK)
    # the first sim lookup ever, in another thread, while is_available() is running
    other = Worker(lambda: Future(devices=["sim:0"]))
    fut = other.join()  # fails if it waited for the slow backend
    assert blocked.thread.is_alive() and not slow.release.is_set()
    assert isinstance(fut._dev.backend, SimBackend)
    assert isinstance(get_backend("cpu"), BackendBase)
    slow.release.set()
    blocked.join()
    assert isinstance(get_backend("slow"), Slow)


def test_threads_asking_for_the_slow_type_share_one_load(slow: SlowPlugin) -> None:
    first = Worker(lambda: get_backend("slow"))
    assert slow.entered.wait(STUCK)
    second = Worker(lambda: get_backend("slow"))
    third = Worker(lambda: get_backend("slow", "slow"))
    slow.release.set()
    backends = {id(w.join()) for w in (first, second, third)}
    assert len(backends) == 1
    assert slow.loads == 1


def test_lookups_are_cached_no_plugin_or_pluggy_call(
    install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    install("futurekit-nothing", {})
    backend = get_backend("sim")
    Future(devices=["sim:0"])

    def boom(*args: object) -> None:
        raise AssertionError("the hot path reached the plugin manager")

    monkeypatch.setattr(_loading.Loader, "manager", boom)
    monkeypatch.setattr(_loading.Loader, "ensure", boom)
    monkeypatch.setattr(_selection.Registry, "_select", boom)
    assert get_backend("sim") is backend
    assert Future(devices=["sim:1"])._dev.backend is backend
