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
#:
#: pluggy's ``HookimplMarker("futurekit")``: only functions and methods carrying it,
#: under a hook name of :class:`FuturekitSpecs`, are seen by futurekit. The marker's
#: ordering options (``tryfirst``, ``trylast``) change nothing: the registry asks
#: every plugin, one at a time, and chooses among backends by ``priority``.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class FuturekitSpecs:
    """Hooks a futurekit plugin may implement."""

    @hookspec
    def futurekit_device_backends(self) -> Iterable[BackendSpec]:  # type: ignore[empty-body]
        """Yield one :class:`~futurekit.backends.BackendSpec` per backend provided.

        Called once when the registry is built (and again by ``register()``), before
        any device type can be looked up: keep it quick and put heavy work in
        ``BackendSpec.load``. If it raises (anything but ``KeyboardInterrupt``) or
        yields something other than a ``BackendSpec``, the whole plugin is skipped
        with one ``PluginLoadWarning``.

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
