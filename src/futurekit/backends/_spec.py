"""The record a plugin yields to describe one backend."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["REQUIRED_METHODS", "BackendSpec", "install_hint", "protocol_problems"]

_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")

#: The methods of :class:`~futurekit.backends.Backend` that every backend object must
#: have (``BackendBase`` supplies ``device_count``, ``stream_from_pool`` and
#: ``use_streams``). The registry checks them when it loads a backend, and the
#: conformance kit's ``protocol`` check uses the same list.
REQUIRED_METHODS: tuple[str, ...] = (
    "is_available",
    "device_count",
    "current_stream",
    "stream_from_pool",
    "use_streams",
    "record_event",
    "wait_event",
    "query_event",
    "synchronize_event",
    "device_of",
)


def protocol_problems(backend: object, device_type: str | None = None) -> list[str]:
    """What ``backend`` lacks to implement the :class:`~futurekit.backends.Backend` protocol.

    Only the shape is checked (a non-empty ``device_type``, equal to
    ``device_type`` when given, and every method of :data:`REQUIRED_METHODS`
    callable); behaviour is the conformance kit's job
    (:func:`futurekit.testing.check_backend`). Never raises: an attribute whose
    lookup raises counts as missing.

    Args:
        backend: the object a ``BackendSpec.load`` returned.
        device_type: the device type its spec declares, if any.

    Returns:
        One sentence per problem; empty when the shape is right.
    """
    problems: list[str] = []
    try:
        kind = getattr(backend, "device_type", None)
    except Exception as exc:
        kind = None
        problems.append(f"reading device_type raised {type(exc).__name__}: {exc}")
    if not problems and (not isinstance(kind, str) or not kind):
        problems.append(f"device_type must be a non-empty str, got {kind!r}")
    elif device_type is not None and kind != device_type:
        problems.append(f"it reports device_type {kind!r}, its BackendSpec says {device_type!r}")
    missing = []
    for name in REQUIRED_METHODS:
        try:
            ok = callable(getattr(backend, name, None))
        except Exception:
            ok = False
        if not ok:
            missing.append(name)
    if missing:
        problems.append(
            "it lacks these methods of the Backend protocol: "
            + ", ".join(missing)
            + " (subclass futurekit.backends.BackendBase for the optional ones)"
        )
    return problems


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
    """

    name: str
    device_type: str
    load: Callable[[], Any]
    priority: int = 0
    extra: str | None = None
    description: str = ""
    testing: bool = False

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
