"""How the registry reports a plugin or backend that failed: a record and one warning.

A failure is recorded once (:class:`PluginFailure`, listed by
``plugin_failures()``) and warned about once with :class:`PluginLoadWarning`,
pointing at the first frame of the caller's code.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass

__all__ = ["PluginFailure", "PluginLoadWarning", "describe_exception", "stop_loading", "warn"]

#: Where futurekit's own modules live: warnings point at the first frame outside.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class PluginLoadWarning(UserWarning):
    """A futurekit plugin or backend failed and was skipped (see :func:`plugin_failures`)."""


@dataclass(frozen=True)
class PluginFailure:
    """A plugin, or one backend of a plugin, that could not be used, and why.

    Attributes:
        name: the plugin (entry point or module name).
        distribution: the distribution that installed it, when known.
        error: what went wrong, in words.
        backend: the backend that failed, or ``None`` when the whole plugin did.
        device_types: the device types it is known to serve (empty when it failed
            before saying).
        fix: what would fix it, in words (``None`` when ``error`` already says).
    """

    name: str
    distribution: str | None
    error: str
    backend: str | None = None
    device_types: tuple[str, ...] = ()
    fix: str | None = None

    def describe(self) -> str:
        """``plugin 'x' (distribution y), backend 'z'``: who failed, in words."""
        text = f"plugin {self.name!r}"
        if self.distribution:
            text += f" (distribution {self.distribution})"
        if self.backend is not None:
            text += f", backend {self.backend!r}"
        return text

    def explain(self) -> str:
        """The error and, when known, its fix: ``error; fix``."""
        return f"{self.error}; {self.fix}" if self.fix else self.error


def describe_exception(exc: BaseException) -> str:
    """``TypeName: message`` (or just the type's name when the message is empty)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def stop_loading(plugin: str) -> str:
    """How to stop futurekit from loading ``plugin``, in words."""
    return f"set FUTUREKIT_DISABLE_PLUGINS={plugin} to stop loading it"


def _stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside futurekit, for :func:`warn`."""
    frame = sys._getframe(1)  # warn: warnings.warn's stacklevel 1
    level = 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level


def warn(message: str) -> None:
    """Warn with :class:`PluginLoadWarning`, pointing at the caller's code."""
    if sys.version_info >= (3, 12):
        warnings.warn(message, PluginLoadWarning, skip_file_prefixes=(_PACKAGE_DIR,))
    else:
        warnings.warn(message, PluginLoadWarning, stacklevel=_stacklevel())
