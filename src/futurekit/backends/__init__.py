"""Device backends: the protocol, the plugin hook and the registry.

A backend serves one device type (``"cuda"``, ``"sim"`` ...). Plugins contribute
backends by implementing the ``futurekit_device_backends()`` hook, marked with
:data:`hookimpl`, and yielding :class:`BackendSpec` records. Third-party plugins
are found through the ``futurekit`` entry-point group.

Importing this package is cheap: pluggy and the plugins load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from futurekit.core._devices import Device

from ._protocol import Backend, BackendBase
from ._spec import BackendSpec

if TYPE_CHECKING:
    from ._hookspec import hookimpl
    from ._registry import (
        BackendInfo,
        PluginFailure,
        PluginLoadWarning,
        available_backends,
        disabled_plugins,
        get_backend,
        plugin_failures,
        register,
        unregister,
    )

__all__ = (
    "Backend",
    "BackendBase",
    "BackendInfo",
    "BackendSpec",
    "Device",
    "PluginFailure",
    "PluginLoadWarning",
    "available_backends",
    "disabled_plugins",
    "get_backend",
    "hookimpl",
    "plugin_failures",
    "register",
    "unregister",
)

_LAZY = {
    "hookimpl": "._hookspec",
    "BackendInfo": "._registry",
    "PluginFailure": "._registry",
    "PluginLoadWarning": "._registry",
    "available_backends": "._registry",
    "disabled_plugins": "._registry",
    "get_backend": "._registry",
    "plugin_failures": "._registry",
    "register": "._registry",
    "unregister": "._registry",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'futurekit.backends' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
