"""A torch future's value reaches a device future under the streams torch made current.

``from_torch`` already did this; ``then(..., unwrap=True)`` returning a torch future now
does too (a backend with its own current-stream table, like cuda-python, records the
child's events on torch's streams, not on its default stream).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from futurekit import Device, Future, from_torch
from futurekit.backends import BackendSpec, _registry, hookimpl

from .conftest import FakeAccelerator

torch = pytest.importorskip("torch")


class Buf:
    """A device buffer of the made-up device type."""


class Marked(FakeAccelerator):
    """Streams say whether torch's streams were made current (``from_torch_streams``)."""

    def __init__(self) -> None:
        super().__init__("mark", count=1)
        self.inside = False

    def current_stream(self, device: Any) -> Any:
        return ("torch's" if self.inside else "default", device)

    def device_of(self, obj: Any) -> Any:
        return Device("mark", 0) if isinstance(obj, Buf) else None

    @contextlib.contextmanager
    def from_torch_streams(self, devices: Sequence[Device]) -> Iterator[None]:
        self.inside = True
        try:
            yield
        finally:
            self.inside = False


@pytest.fixture
def marked(isolated_registry: Callable[..., str]) -> None:
    """The ``Marked`` backend for device type ``mark``, in the isolated test registry."""
    backend = Marked()

    class Plugin:
        @hookimpl
        def futurekit_device_backends(self) -> Iterator[BackendSpec]:
            yield BackendSpec(
                name="mark", device_type="mark", load=lambda: backend, description="test"
            )

    _registry.register(Plugin())


def _streams_of(fut: Future[Any]) -> list[str]:
    dev = fut._dev
    assert dev is not None
    return [event[1][0] for _, event in dev.events]


def test_from_torch_records_under_torchs_streams(marked: None) -> None:
    tf = torch.futures.Future()
    fut = from_torch(tf, devices=["mark:0"])
    tf.set_result([Buf()])
    assert _streams_of(fut) == ["torch's"]


def test_unwrapped_torch_future_records_under_torchs_streams(marked: None) -> None:
    tf = torch.futures.Future()
    parent: Future[int] = Future(devices=["mark:0"])
    child = parent.then(lambda f: tf, unwrap=True)
    parent.set_result(1)
    tf.set_result([Buf()])
    assert child.done()
    assert _streams_of(child) == ["torch's"]
