"""The record a plugin yields to describe one backend."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["BackendSpec"]

_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")


@dataclass(frozen=True)
class BackendSpec:
    """One device backend contributed by a plugin.

    Attributes:
        name: unique backend name, lower case (``"torch"``, ``"cuda-python"``).
        device_type: the device type it serves (``"cuda"``, ``"sim"`` ...).
        load: called the first time the backend is needed; returns the backend
            object. Heavy imports belong inside it, never at plugin import time.
        priority: among available backends for one type the highest wins.
        extra: the ``pip install futurekit[extra]`` that provides its dependencies.
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
