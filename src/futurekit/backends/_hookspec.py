"""The pluggy hook specification and markers (project name ``futurekit``)."""

from __future__ import annotations

from collections.abc import Iterable

import pluggy

from ._spec import BackendSpec

__all__ = ["PROJECT_NAME", "FuturekitSpecs", "hookimpl", "hookspec"]

#: pluggy project name and entry-point group.
PROJECT_NAME = "futurekit"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Marker for plugin hook implementations: ``@futurekit.backends.hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class FuturekitSpecs:
    """Hooks a futurekit plugin may implement."""

    @hookspec
    def futurekit_device_backends(self) -> Iterable[BackendSpec]:  # type: ignore[empty-body]
        """Yield one :class:`~futurekit.backends.BackendSpec` per backend provided.

        Example::

            from futurekit.backends import BackendSpec, hookimpl

            @hookimpl
            def futurekit_device_backends():
                yield BackendSpec(
                    name="mydev",
                    device_type="mydev",
                    load=lambda: __import__("mypkg.backend").backend.MyBackend(),
                    extra=None,
                    description="My accelerator",
                )
        """
