"""The registry's public functions: look up, list, register and name backends.

The work is done by one :class:`~._selection.Registry` (loading in
:mod:`._loading`, selection in :mod:`._selection`, failures in :mod:`._failures`,
install hints in :mod:`._hints`); this module holds it and validates what callers
pass. Everything here runs on the first device future or registry call, never for
CPU futures and never at ``import futurekit``. Results are cached; the hot path of
a device future is one dictionary lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from futurekit.core import _resolver
from futurekit.core._errors import BackendUnavailableError

from ._contract import contract
from ._failures import PluginFailure, PluginLoadWarning
from ._hints import clear_caches, fix_for
from ._loading import BUILTIN_PLUGINS, count_problem
from ._selection import Registry
from ._spec import BackendSpec, install_hint

__all__ = [
    "BUILTIN_PLUGINS",
    "BackendInfo",
    "PluginFailure",
    "PluginLoadWarning",
    "available_backends",
    "backend_spec",
    "describe_backend",
    "disabled_plugins",
    "get_backend",
    "get_spec",
    "install_hint",
    "int_device_type",
    "known_device_types",
    "plugin_failures",
    "register",
    "reset",
    "unregister",
]


@dataclass(frozen=True)
class BackendInfo:
    """What ``available_backends()`` reports about one backend."""

    name: str
    device_type: str
    priority: int
    available: bool
    reason: str | None
    device_count: int | None
    distribution: str | None
    version: str | None
    extra: str | None
    description: str
    testing: bool
    #: What would make it available (None when available or when futurekit cannot
    #: tell): the missing extra, or what a CPU build of torch lacks.
    fix: str | None = None


_REGISTRY = Registry()


def get_backend(device_type: str, name: str | None = None) -> Any:
    """The backend serving ``device_type`` (cached after the first call).

    Among available backends for the type the highest ``priority`` wins;
    ``name`` or the environment variable ``FUTUREKIT_BACKEND_<TYPE>`` picks one by
    name instead.

    Raises:
        TypeError: ``device_type`` or ``name`` is not a str.
        BackendUnavailableError: the type is unknown, its plugin failed, or no
            backend for it is available; the message says why and what to install.
        BackendError: ``name`` does not name a backend for this type.
    """
    if not isinstance(device_type, str):
        raise TypeError(f"device_type must be a str such as 'cuda', got {device_type!r}")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"backend name must be a str such as 'torch', got {name!r}")
    return _REGISTRY.get(device_type, name)


def get_spec(name: str) -> BackendSpec | None:
    """The spec of the backend called ``name``, if one is registered.

    Raises:
        TypeError: ``name`` is not a str.
    """
    if not isinstance(name, str):
        raise TypeError(f"backend name must be a str such as 'torch', got {name!r}")
    _REGISTRY.manager()
    entry = _REGISTRY.entries.get(name)
    return entry.spec if entry else None


def known_device_types() -> set[str]:
    """Device types that some registered backend serves (failed backends excluded)."""
    return {e.spec.device_type for e in _REGISTRY.live_entries()}


def int_device_type() -> str:
    """The accelerator type a bare ``int`` device means.

    It is the one non-CPU, non-testing device type with an available backend.

    Raises:
        BackendUnavailableError: there is no such type, or more than one.
    """
    types: dict[str, list[str]] = {}
    unavailable: list[str] = []
    for entry in _REGISTRY.live_entries():
        spec = entry.spec
        if spec.testing or spec.device_type == "cpu":
            continue
        _REGISTRY.ensure(entry)
        if entry.available:
            types.setdefault(spec.device_type, []).append(spec.name)
        elif not entry.failed:
            unavailable.append(f"{entry.describe()} for {spec.device_type!r}: {entry.reason}")
    if len(types) == 1:
        return next(iter(types))
    if not types:
        why = "; ".join(unavailable) or "no accelerator backend is installed"
        raise BackendUnavailableError(
            "An int device means an index of this machine's accelerator, but no "
            f"accelerator backend is available ({why}). Pass a 'type:index' string "
            f"such as 'sim:0', or {install_hint('torch', 'cuda')}."
        )
    raise BackendUnavailableError(
        "An int device is ambiguous here: several accelerator types are available ("
        + ", ".join(sorted(types))
        + "). Pass a 'type:index' string such as "
        + f"'{sorted(types)[0]}:0'."
    )


def available_backends() -> list[BackendInfo]:
    """Every registered backend with its availability (loads each one).

    Backends that failed (their ``load()`` or ``is_available()`` raised, or the
    object is not a Backend) are left out and appear in :func:`plugin_failures`.
    """
    out = []
    for entry in _REGISTRY.live_entries():
        _REGISTRY.ensure(entry)
        if entry.failed:
            continue
        ok, reason = entry.available, entry.reason
        count: int | None = None
        fix = None
        if ok:  # valid when the backend was loaded; asked again, as it may change
            problem, _ = count_problem(entry.backend)
            if problem is None:
                count = entry.backend.device_count()
            else:
                ok, reason, fix = False, problem, contract("device_count")
        spec = entry.spec
        out.append(
            BackendInfo(
                name=spec.name,
                device_type=spec.device_type,
                priority=spec.priority,
                available=ok,
                reason=reason,
                device_count=count,
                distribution=entry.distribution,
                version=entry.version,
                extra=spec.extra,
                description=spec.description,
                testing=spec.testing,
                fix=fix or (None if ok else fix_for(spec, entry.distribution)),
            )
        )
    return sorted(out, key=lambda i: (i.device_type, -i.priority, i.name))


def plugin_failures() -> list[PluginFailure]:
    """Plugins and backends that failed and were skipped, each once.

    Import and hook failures are known once the registry is built; a backend's
    ``load()`` and ``is_available()`` run the first time it is needed
    (:func:`available_backends` loads every backend).
    """
    _REGISTRY.manager()
    with _REGISTRY.lock:
        return list(_REGISTRY.failures.values())


def disabled_plugins() -> list[str]:
    """Plugins and backends disabled by ``FUTUREKIT_DISABLE_PLUGINS``."""
    _REGISTRY.manager()
    return list(_REGISTRY.disabled)


def register(plugin: object, name: str | None = None) -> str:
    """Register a plugin object (module, class or instance with hook implementations).

    Backends already loaded stay loaded, and failures already reported are not
    reported again.

    Returns:
        The name it was registered under.

    Raises:
        TypeError: ``name`` is not a str.
        ValueError: the plugin (or its name) is already registered, or blocked by
            ``FUTUREKIT_DISABLE_PLUGINS``.
    """
    if name is not None and not isinstance(name, str):
        raise TypeError(f"register(): the plugin name must be a str, got {name!r}")
    pm = _REGISTRY.manager()
    with _REGISTRY.lock:
        registered = pm.register(plugin, name=name)
        if registered is None:
            raise ValueError(
                f"register(): plugin {_plugin_label(plugin, name)} is blocked by "
                "FUTUREKIT_DISABLE_PLUGINS; remove it from that variable to register it"
            )
        _REGISTRY.refresh()
    _REGISTRY.flush()
    return registered


def unregister(plugin: object | None = None, name: str | None = None) -> None:
    """Remove a plugin registered with :func:`register` (by object or by name).

    Raises:
        ValueError: neither ``plugin`` nor ``name`` is given, or it is not registered.
    """
    if plugin is None and name is None:
        raise ValueError("unregister() needs the plugin object or its name")
    pm = _REGISTRY.manager()
    with _REGISTRY.lock:
        known = pm.has_plugin(name) if name is not None else pm.is_registered(plugin)
        if not known or pm.unregister(plugin=plugin, name=name) is None:
            raise ValueError(
                f"unregister(): plugin {_plugin_label(plugin, name)} is not registered "
                "(futurekit.backends.register() returns the name to pass)"
            )
        _REGISTRY.refresh()
    _REGISTRY.flush()


def describe_backend(backend: object) -> str:
    """Name a loaded backend for error messages: its plugin, distribution and version.

    ``backend 'mydev' (plugin 'mydev_plugin', distribution mydev 1.0)``; a backend
    object the registry did not load is named by its class and device type. Never
    raises.
    """
    for entry in list(_REGISTRY.entries.values()):
        if entry.backend is backend and backend is not None:
            return entry.describe()
    cls = type(backend)
    try:
        kind = getattr(backend, "device_type", None)
    except Exception:
        kind = None
    where = f" for {kind!r}" if isinstance(kind, str) and kind else ""
    return f"backend {cls.__module__}.{cls.__qualname__}{where} (not loaded from a plugin)"


def backend_spec(backend: object) -> BackendSpec | None:
    """The spec of a backend object the registry loaded, else ``None``."""
    for entry in list(_REGISTRY.entries.values()):
        if entry.backend is backend and backend is not None:
            return entry.spec
    return None


def _plugin_label(plugin: object, name: str | None) -> str:
    """A plugin named for messages: its name, else its module or class (never a repr)."""
    if name is not None:
        return repr(name)
    module_name = getattr(plugin, "__name__", None)
    if isinstance(module_name, str):
        return repr(module_name)
    return f"object of class {type(plugin).__module__}.{type(plugin).__qualname__}"


def reset() -> None:
    """Forget every plugin and cached backend; the next call reloads (for tests)."""
    global _REGISTRY
    _REGISTRY = Registry()
    _resolver.bump()
    clear_caches()
