"""What would make a backend available, in words: the missing extra or build.

futurekit's own metadata says which distributions each extra needs; a built-in
backend also says what it needs beyond them (a CUDA build of torch, a driver).
"""

from __future__ import annotations

import functools
import importlib.metadata
import re

from ._spec import BackendSpec, install_hint

__all__ = ["KNOWN_EXTRAS", "clear_caches", "dist_version", "extra_installed", "fix_for"]

#: Extras to suggest for well-known device types that have no registered backend.
KNOWN_EXTRAS: dict[str, tuple[str, ...]] = {
    "cuda": ("torch", "cuda"),
    "xpu": ("torch",),
    "mps": ("torch",),
    "hpu": ("torch",),
    "npu": ("torch",),
    "mtia": ("torch",),
    "privateuseone": ("torch",),
}

_TORCH_GET_STARTED = "https://pytorch.org/get-started/locally/"

_EXTRA_MARKER = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")
_REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@functools.cache
def dist_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or ``None``."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.cache
def extra_installed(extra: str) -> bool | None:
    """Whether every distribution futurekit's ``extra`` requires is installed.

    ``None`` when futurekit's metadata does not know the extra.
    """
    try:
        requires = importlib.metadata.requires("futurekit") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    names = []
    for requirement in requires:
        spec, _, marker = requirement.partition(";")
        found = _EXTRA_MARKER.search(marker)
        match = _REQUIREMENT_NAME.match(spec.strip())
        if found and found.group(1) == extra and match:
            names.append(match.group(0))
    if not names:
        return None
    return all(dist_version(name) is not None for name in names)


def clear_caches() -> None:
    """Forget installed versions looked up so far (the registry's ``reset()``)."""
    extra_installed.cache_clear()
    dist_version.cache_clear()


def _builtin_needs(spec: BackendSpec, extra_ok: bool) -> str | None:
    """What a built-in backend needs beyond what is installed, in words."""
    if spec.name == "torch":
        torch_version = dist_version("torch") if extra_ok else None
        if torch_version and "+cpu" in torch_version:
            build = f"a CUDA build of torch instead of the CPU-only torch {torch_version}"
        else:
            build = "a CUDA build of torch"
        return f"{build} ({_TORCH_GET_STARTED}) and an NVIDIA driver"
    if spec.name == "cuda-python":
        if extra_ok:
            return "an NVIDIA GPU with its driver (cuda-python is installed)"
        return "cuda-python and an NVIDIA driver"
    if spec.name.startswith("torch-"):
        return f"a torch build with {spec.device_type} support and a {spec.device_type} device"
    return None


def fix_for(spec: BackendSpec, distribution: str | None) -> str | None:
    """What would make the backend of ``spec`` available, or ``None`` if unknown."""
    extra_ok = spec.extra is None or extra_installed(spec.extra) is True
    needs = _builtin_needs(spec, extra_ok) if distribution == "futurekit" else None
    install = None if extra_ok or spec.extra is None else install_hint(spec.extra)
    if needs and install:
        return f"{spec.name!r} needs {needs} ({install})"
    if needs:
        return f"{spec.name!r} needs {needs}"
    if install:
        return f"{spec.name!r}: {install}"
    return None
