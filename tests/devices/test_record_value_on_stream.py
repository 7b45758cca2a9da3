"""The allocator hint: buffers are recorded on the streams that consume them.

torch calls ``recordDataPtrOnStream`` for every extracted storage at ``wait()`` (on
the current streams) and before callbacks (on the pool streams); futures skip
storages freed since ``set_result``. These tests pin the same behaviour for any
backend that implements the optional ``record_value_on_stream``.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

import futurekit
from futurekit.backends import BackendBase, BackendSpec, Device, _registry, hookimpl


class Buf:
    def __init__(self, device: Device) -> None:
        self.device = device


class Recording(BackendBase):
    device_type = "rec"

    def __init__(self) -> None:
        self.recorded: list[tuple[Buf, Any]] = []
        self.pool = 0

    def device_count(self) -> int:
        return 2

    def current_stream(self, device: Device) -> Any:
        return ("current", device)

    def stream_from_pool(self, device: Device) -> Any:
        self.pool += 1
        return ("pool", device, self.pool)

    def record_event(self, stream: Any) -> Any:
        return ("event", stream)

    def wait_event(self, stream: Any, event: Any) -> None:
        return None

    def query_event(self, event: Any) -> bool:
        return True

    def synchronize_event(self, event: Any) -> None:
        return None

    def device_of(self, obj: Any) -> Device | None:
        return obj.device if isinstance(obj, Buf) else None

    def record_value_on_stream(self, obj: Any, stream: Any) -> None:
        self.recorded.append((obj, stream))


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recording]:
    monkeypatch.setenv("FUTUREKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    _registry.reset()
    rec = Recording()

    class Plugin:
        @hookimpl
        def futurekit_device_backends(self) -> Iterator[BackendSpec]:
            yield BackendSpec(name="rec", device_type="rec", load=lambda: rec, testing=True)

    _registry.register(Plugin())
    yield rec
    _registry.reset()


def test_wait_records_each_buffer_on_the_current_stream_of_its_device(backend: Recording) -> None:
    d0, d1 = Device("rec", 0), Device("rec", 1)
    a, b = Buf(d0), Buf(d1)
    fut = futurekit.Future(devices=["rec:0", "rec:1"])
    fut.set_result([a, {"k": b}])
    assert backend.recorded == []
    assert fut.wait()[0] is a
    assert sorted(backend.recorded, key=lambda r: r[1][1]) == [
        (a, ("current", d0)),
        (b, ("current", d1)),
    ]


def test_callbacks_record_on_their_pool_streams(backend: Recording) -> None:
    d0 = Device("rec", 0)
    a = Buf(d0)
    fut = futurekit.Future(devices=["rec:0"])
    seen: list[Any] = []
    fut.add_done_callback(lambda f: seen.append(list(backend.recorded)))
    fut.set_result(a)
    assert seen == [[(a, ("pool", d0, 1))]]


def test_buffers_freed_since_set_result_are_skipped(backend: Recording) -> None:
    fut = futurekit.Future(devices=["rec:0"])
    holder = [Buf(Device("rec", 0))]
    fut.set_result(holder)
    holder.clear()  # the only strong reference to the buffer is gone
    gc.collect()
    fut.wait()
    assert backend.recorded == []
