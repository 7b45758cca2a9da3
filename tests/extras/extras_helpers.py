"""Helpers for the beyond-torch tests: a tracing device backend, sim, threads."""

from __future__ import annotations

import contextlib
import gc
import importlib
import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from futurekit.backends import BackendBase, BackendSpec, _registry, hookimpl
from thread_helpers import run_in_thread  # noqa: F401  (re-exported for the tests)

ACCELERATOR_PLUGINS = "futurekit.backends.torch,futurekit.backends.cuda"


class TraceBackend(BackendBase):
    """A synchronous fake device that records every stream operation with its thread.

    Streams are strings (``"trace:0/main"``, ``"trace:0/pool3"``); events are
    ``("event", stream, n)``. ``log`` holds ``(op, stream, event, thread name)``.
    """

    device_type = "trace"

    def __init__(self) -> None:
        self.log: list[tuple[str, Any, Any, str]] = []
        self._tls = threading.local()
        self._pool = itertools.count()
        self._events = itertools.count()
        self._lock = threading.Lock()

    def _note(self, op: str, stream: Any, event: Any = None) -> None:
        with self._lock:
            self.log.append((op, stream, event, threading.current_thread().name))

    def device_count(self) -> int:
        return 2

    def _current(self) -> dict[Any, Any]:
        cur = getattr(self._tls, "current", None)
        if cur is None:
            cur = self._tls.current = {}
        return cur

    def current_stream(self, device: Any) -> Any:
        return self._current().get(str(device), f"{device}/main")

    def stream_from_pool(self, device: Any) -> Any:
        return f"{device}/pool{next(self._pool)}"

    @contextlib.contextmanager
    def use_streams(self, streams: Sequence[Any]) -> Iterator[None]:
        cur = self._current()
        saved = dict(cur)
        for stream in streams:
            cur[stream.split("/")[0]] = stream
        try:
            yield
        finally:
            cur.clear()
            cur.update(saved)

    def record_event(self, stream: Any) -> Any:
        event = ("event", stream, next(self._events))
        self._note("record", stream, event)
        return event

    def wait_event(self, stream: Any, event: Any) -> None:
        self._note("wait", stream, event)

    def query_event(self, event: Any) -> bool:
        return True

    def synchronize_event(self, event: Any) -> None:
        self._note("synchronize", None, event)

    def device_of(self, obj: Any) -> Any:
        return getattr(obj, "trace_device", None)


class TraceBuffer:
    """A value living on a trace device."""

    def __init__(self, device: str, value: Any = None) -> None:
        from futurekit import Device

        kind, index = device.split(":")
        self.trace_device = Device(kind, int(index))
        self.value = value


@pytest.fixture
def trace_backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[TraceBackend]:
    """A fresh registry holding only the tracing backend for device type ``trace``."""
    monkeypatch.setenv("FUTUREKIT_DISABLE_PLUGINS", ACCELERATOR_PLUGINS)
    monkeypatch.setenv("FUTUREKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    _registry.reset()
    backend = TraceBackend()

    class Plugin:
        @hookimpl
        def futurekit_device_backends(self) -> Iterator[BackendSpec]:
            yield BackendSpec(
                name="trace",
                device_type="trace",
                load=lambda: backend,
                testing=True,
                description="tracing fake device for tests",
            )

    _registry.register(Plugin())
    yield backend
    monkeypatch.undo()
    _registry.reset()


@pytest.fixture
def sim() -> Any:
    """``futurekit.testing.sim`` if the simulated device exists, else skip."""
    try:
        return importlib.import_module("futurekit.testing.sim")
    except ImportError:
        pytest.skip("futurekit.testing.sim is not available yet")


def later(delay: float, fn: Callable[[], Any]) -> threading.Thread:
    """Run ``fn`` in a daemon thread after ``delay`` seconds."""
    timer = threading.Timer(delay, fn)
    timer.daemon = True
    timer.start()
    return timer


def collect_garbage() -> None:
    """Run the garbage collector until nothing more is freed (a few passes)."""
    for _ in range(3):
        if not gc.collect():
            break
