"""The plugin module named by the ``futurekit`` entry point.

It must import quickly and must not fail: heavy imports belong in ``load``.
"""

from __future__ import annotations

from collections.abc import Iterator

from futurekit.backends import BackendSpec, hookimpl


def _load() -> object:
    from futurekit_echo import EchoBackend

    return EchoBackend()


@hookimpl
def futurekit_device_backends() -> Iterator[BackendSpec]:
    """Contribute the echo backend."""
    yield BackendSpec(
        name="echo",
        device_type="echo",
        load=_load,
        priority=0,
        description="example host-synchronous device (futurekit-echo)",
    )
