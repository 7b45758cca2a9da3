"""How the core finds a backend, without knowing where backends come from.

The core never imports :mod:`futurekit.backends`: the layer above it (the
``futurekit`` package itself, see ``futurekit/__init__.py``) installs a
:class:`Resolver` here. ``generation`` changes whenever the answer may change
(a plugin registered or removed, the registry reset), so that the core's caches
(:mod:`._device_plan`) know when to resolve again.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["Resolver", "bump", "generation", "install", "resolver"]


class Resolver:
    """What the core asks of the layer that knows the backends.

    Attributes:
        backend: ``backend(device_type, name)`` returns the backend object that
            serves ``device_type`` (``name`` picks one by name), or raises
            ``BackendUnavailableError`` / ``BackendError`` saying what to install.
        int_type: ``int_type()`` returns the device type a bare ``int`` means.
        describe: ``describe(backend)`` names a backend for error messages: its
            plugin, distribution and version where known.
    """

    __slots__ = ("backend", "describe", "int_type")

    def __init__(
        self,
        backend: Callable[[str, str | None], Any],
        int_type: Callable[[], str],
        describe: Callable[[Any], str] | None = None,
    ) -> None:
        self.backend = backend
        self.int_type = int_type
        self.describe = describe if describe is not None else _describe


def _describe(backend: Any) -> str:
    name = getattr(backend, "device_type", None)
    return f"the {type(backend).__name__} backend" + (f" for {name!r}" if name else "")


def _not_installed(*args: Any) -> Any:
    from ._errors import BackendUnavailableError

    raise BackendUnavailableError(
        "no backend resolver is installed: import futurekit (the package) before "
        "making device futures"
    )


#: The installed resolver (the package installs the registry's at import).
resolver = Resolver(_not_installed, _not_installed)
#: Changes whenever a resolved backend may change (a one-element list: mutable).
generation = [0]


def install(new: Resolver) -> Resolver:
    """Install ``new`` as the resolver; returns the previous one. Bumps the generation."""
    global resolver
    previous, resolver = resolver, new
    bump()
    return previous


def bump() -> None:
    """Invalidate the core's caches of resolved backends (plugins changed)."""
    generation[0] += 1
