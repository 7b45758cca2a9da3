"""The record a plugin yields to describe one backend."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# The protocol's shape check, re-exported where the registry and the kit first found it.
from ._contract import REQUIRED_METHODS, protocol_problems

if TYPE_CHECKING:
    from futurekit.core._devices import Device

__all__ = ["REQUIRED_METHODS", "BackendSpec", "install_hint", "protocol_problems"]

_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")


def install_hint(*extras: str) -> str:
    """How to install futurekit's pip extras, in words; the one place that says it.

    futurekit is not on PyPI yet, so the command installs from a checkout.

    Args:
        extras: extra names such as ``"torch"``; several are alternatives.

    Raises:
        ValueError: no extras, or a name that is not a lower-case identifier.

    Example:
        >>> install_hint("torch")
        "install the futurekit[torch] extra: pip install '.[torch]' from a futurekit checkout"
    """
    if not extras:
        raise ValueError("install_hint() needs at least one extra name, e.g. 'torch'")
    for extra in extras:
        if not isinstance(extra, str) or not _NAME.match(extra):
            raise ValueError(f"install_hint(): {extra!r} is not an extra name such as 'torch'")
    names = " or ".join(f"futurekit[{x}]" for x in extras)
    commands = " or ".join(f"'.[{x}]'" for x in extras)
    return f"install the {names} extra: pip install {commands} from a futurekit checkout"


@dataclass(frozen=True)
class BackendSpec:
    """One device backend contributed by a plugin.

    Attributes:
        name: unique backend name, lower case (``"torch"``, ``"cuda-python"``).
        device_type: the device type it serves (``"cuda"``, ``"sim"`` ...).
        load: called the first time the backend is needed; returns the backend
            object. Heavy imports belong inside it, never at plugin import time.
        priority: among available backends for one type the highest wins.
        extra: the futurekit pip extra that provides its dependencies (named in
            error messages through :func:`install_hint`).
        description: one line for ``futurekit backends``.
        testing: a testing backend (such as ``sim``); never chosen for ``int``
            devices.
        make_buffer: ``make_buffer(device)`` returns a small buffer of this
            backend on ``device`` (a ``futurekit.Device``). Optional; when given,
            ``futurekit doctor`` and :func:`futurekit.testing.check_backend` use it
            to drive ``device_of`` and event recording with real buffers, as user
            code does (without it they can only use stand-ins).
    """

    name: str
    device_type: str
    load: Callable[[], Any]
    priority: int = 0
    extra: str | None = None
    description: str = ""
    testing: bool = False
    make_buffer: Callable[[Device], Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name.lower()):
            raise ValueError(
                f"BackendSpec.name must be a lower-case identifier like 'my-backend', "
                f"got {self.name!r}"
            )
        object.__setattr__(self, "name", self.name.lower())
        if not isinstance(self.device_type, str) or not _NAME.match(self.device_type):
            raise ValueError(
                f"BackendSpec.device_type must be a lower-case device type like 'cuda', "
                f"got {self.device_type!r}"
            )
        if not callable(self.load):
            raise TypeError(f"BackendSpec.load must be callable, got {self.load!r}")
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise TypeError(f"BackendSpec.priority must be an int, got {self.priority!r}")
        if self.make_buffer is not None and not callable(self.make_buffer):
            raise TypeError(
                f"BackendSpec.make_buffer must be callable (device -> buffer) or None, "
                f"got {self.make_buffer!r}"
            )
