"""The plugin manager: tolerant loading, backend selection and caching.

Everything here runs on the first device future or registry call, never for CPU
futures and never at ``import futurekit``. Results are cached; the hot path of a
device future is one dictionary lookup.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pluggy

from futurekit.core._errors import BackendError, BackendUnavailableError

from ._hookspec import PROJECT_NAME, FuturekitSpecs
from ._spec import BackendSpec

__all__ = [
    "BUILTIN_PLUGINS",
    "BackendInfo",
    "PluginFailure",
    "PluginLoadWarning",
    "available_backends",
    "disabled_plugins",
    "get_backend",
    "get_spec",
    "int_device_type",
    "known_device_types",
    "plugin_failures",
    "register",
    "reset",
    "unregister",
]

logger = logging.getLogger("futurekit")

#: Modules of the built-in backends, registered directly (no entry points needed).
BUILTIN_PLUGINS: tuple[str, ...] = (
    "futurekit.backends.cpu",
    "futurekit.backends.sim",
    "futurekit.backends.torch",
    "futurekit.backends.cuda",
)

#: Extras to suggest for well-known device types that have no registered backend.
_KNOWN_EXTRAS: dict[str, str] = {
    "cuda": "pip install 'futurekit[torch]' or 'futurekit[cuda]'",
    "xpu": "pip install 'futurekit[torch]'",
    "mps": "pip install 'futurekit[torch]'",
    "hpu": "pip install 'futurekit[torch]'",
    "npu": "pip install 'futurekit[torch]'",
    "mtia": "pip install 'futurekit[torch]'",
    "privateuseone": "pip install 'futurekit[torch]'",
}


class PluginLoadWarning(UserWarning):
    """A third-party futurekit plugin failed to load or to answer its hook."""


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be used, and why."""

    name: str
    distribution: str | None
    error: str


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


@dataclass
class _Entry:
    spec: BackendSpec
    plugin: str
    distribution: str | None
    version: str | None
    backend: Any = None
    load_error: str | None = None
    loaded: bool = False


def _env_list(var: str) -> set[str]:
    return {p.strip() for p in os.environ.get(var, "").split(",") if p.strip()}


def _own_version() -> str | None:
    try:
        return importlib.metadata.version("futurekit")
    except importlib.metadata.PackageNotFoundError:
        from futurekit import __version__

        return __version__


class _Registry:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.pm: pluggy.PluginManager | None = None
        self.entries: dict[str, _Entry] = {}
        self.plugin_dists: dict[str, tuple[str | None, str | None]] = {}
        self.failures: list[PluginFailure] = []
        self.disabled: list[str] = []
        self.selected: dict[tuple[str, str | None], Any] = {}

    # -- building ---------------------------------------------------------------
    def manager(self) -> pluggy.PluginManager:
        pm = self.pm
        if pm is not None:
            return pm
        with self.lock:
            if self.pm is None:
                self.pm = self._build()
                self._collect()
            return self.pm

    def _warn(self, name: str, dist: str | None, error: BaseException | str) -> None:
        where = f" (distribution {dist})" if dist else ""
        msg = f"futurekit plugin {name!r}{where} failed and was skipped: {error!r}"
        self.failures.append(PluginFailure(name, dist, repr(error)))
        logger.warning(msg)
        warnings.warn(msg, PluginLoadWarning, stacklevel=4)

    def _build(self) -> pluggy.PluginManager:
        pm = pluggy.PluginManager(PROJECT_NAME)
        pm.add_hookspecs(FuturekitSpecs)
        blocked = _env_list("FUTUREKIT_DISABLE_PLUGINS")
        for name in blocked:
            pm.set_blocked(name)
        version = _own_version()
        for modname in BUILTIN_PLUGINS:
            try:
                module = importlib.import_module(modname)
            except ModuleNotFoundError as exc:
                if exc.name == modname:  # not part of this build
                    continue
                self._warn(modname, "futurekit", exc)
                continue
            except Exception as exc:
                self._warn(modname, "futurekit", exc)
                continue
            pm.register(module, name=modname)
            self.plugin_dists[modname] = ("futurekit", version)
        if os.environ.get("FUTUREKIT_DISABLE_PLUGIN_AUTOLOAD", "").strip() not in ("", "0"):
            return pm
        for dist in importlib.metadata.distributions():
            try:
                eps = [ep for ep in dist.entry_points if ep.group == PROJECT_NAME]
            except Exception:  # pragma: no cover - broken metadata
                continue
            dist_name = dist.metadata["Name"] if dist.metadata else None
            if dist_name == "futurekit":
                continue
            for ep in eps:
                if ep.name in blocked or pm.has_plugin(ep.name) or pm.is_blocked(ep.name):
                    if ep.name in blocked and ep.name not in self.disabled:
                        self.disabled.append(ep.name)
                    continue
                try:
                    plugin = ep.load()
                    pm.register(plugin, name=ep.name)
                except Exception as exc:
                    self._warn(ep.name, dist_name, exc)
                    continue
                self.plugin_dists[ep.name] = (dist_name, dist.version)
        return pm

    def _collect(self) -> None:
        """Ask every plugin for its backends, one plugin at a time."""
        assert self.pm is not None
        blocked = _env_list("FUTUREKIT_DISABLE_PLUGINS")
        self.entries = {}
        self.selected = {}
        impls = self.pm.hook.futurekit_device_backends.get_hookimpls()
        # pluggy calls the last registered first; built-ins come first here.
        for impl in impls:
            plugin = impl.plugin_name
            dist, version = self.plugin_dists.get(plugin, (None, None))
            try:
                specs: list[Any] = list(impl.function() or ())  # type: ignore[call-overload]
                for spec in specs:
                    if not isinstance(spec, BackendSpec):
                        raise TypeError(f"hook yielded {spec!r}, not a BackendSpec")
            except Exception as exc:
                self._warn(plugin, dist, exc)
                continue
            for spec in specs:
                if spec.name in blocked:
                    if spec.name not in self.disabled:
                        self.disabled.append(spec.name)
                    continue
                if spec.name in self.entries:
                    other = self.entries[spec.name]
                    self._warn(
                        plugin,
                        dist,
                        f"backend name {spec.name!r} is already provided by "
                        f"{other.plugin!r}; this one is ignored",
                    )
                    continue
                self.entries[spec.name] = _Entry(spec, plugin, dist, version)
        for name in blocked:
            if self.pm.is_blocked(name) and name not in self.disabled:
                self.disabled.append(name)

    def refresh(self) -> None:
        with self.lock:
            self.manager()
            self._collect()

    # -- loading and selection --------------------------------------------------
    def load(self, entry: _Entry) -> Any:
        if entry.loaded:
            return entry.backend
        with self.lock:
            if not entry.loaded:
                try:
                    entry.backend = entry.spec.load()
                    if getattr(entry.backend, "device_type", entry.spec.device_type) != (
                        entry.spec.device_type
                    ):
                        raise BackendError(
                            f"backend {entry.spec.name!r} reports device_type "
                            f"{entry.backend.device_type!r}, its spec says "
                            f"{entry.spec.device_type!r}"
                        )
                except Exception as exc:
                    entry.backend = None
                    entry.load_error = f"failed to load: {type(exc).__name__}: {exc}"
                    logger.warning("futurekit backend %r %s", entry.spec.name, entry.load_error)
                entry.loaded = True
        return entry.backend

    def status(self, entry: _Entry) -> tuple[bool, str | None]:
        backend = self.load(entry)
        if backend is None:
            return False, entry.load_error
        try:
            ok = bool(backend.is_available())
        except Exception as exc:  # is_available must not raise; be tolerant anyway
            return False, f"is_available() raised {type(exc).__name__}: {exc}"
        if ok:
            return True, None
        reason = None
        get_reason = getattr(backend, "unavailable_reason", None)
        if callable(get_reason):
            try:
                reason = get_reason()
            except Exception as exc:
                reason = f"unavailable_reason() raised {exc!r}"
        return False, reason or "is_available() returned False"

    def candidates(self, device_type: str) -> list[_Entry]:
        self.manager()
        found = [e for e in self.entries.values() if e.spec.device_type == device_type]
        return sorted(found, key=lambda e: -e.spec.priority)

    def _extra_hint(self, device_type: str, entries: Iterable[_Entry]) -> str:
        extras = sorted({e.spec.extra for e in entries if e.spec.extra})
        if extras:
            return " or ".join(f"pip install 'futurekit[{x}]'" for x in extras)
        return _KNOWN_EXTRAS.get(device_type, "install a futurekit backend plugin that serves it")

    def get(self, device_type: str, name: str | None) -> Any:
        env = os.environ.get(f"FUTUREKIT_BACKEND_{device_type.upper().replace('-', '_')}")
        override = name or (env.strip() if env else None) or None
        key = (device_type, override)
        backend = self.selected.get(key)
        if backend is not None:
            return backend
        with self.lock:
            backend = self._select(device_type, override)
            self.selected[key] = backend
            return backend

    def _select(self, device_type: str, override: str | None) -> Any:
        cands = self.candidates(device_type)
        if not cands:
            known = ", ".join(sorted(known_device_types())) or "(none)"
            raise BackendUnavailableError(
                f"Unknown device type {device_type!r}: no futurekit backend serves it. "
                f"Known device types: {known}. To add one: "
                f"{self._extra_hint(device_type, [])}."
            )
        if override is not None:
            match = [e for e in cands if e.spec.name == override]
            if not match:
                names = ", ".join(e.spec.name for e in cands)
                other = self.entries.get(override)
                why = (
                    f"it serves {other.spec.device_type!r}, not {device_type!r}"
                    if other
                    else "no backend has that name"
                )
                raise BackendError(
                    f"Backend {override!r} was requested for {device_type!r} devices, but "
                    f"{why}. Backends for {device_type!r}: {names}."
                )
            cands = match
        reasons = []
        for entry in cands:
            ok, reason = self.status(entry)
            if ok:
                return entry.backend
            reasons.append(f"{entry.spec.name!r} ({entry.distribution or '?'}): {reason}")
        raise BackendUnavailableError(
            f"No available backend for device type {device_type!r}: "
            + "; ".join(reasons)
            + f". To fix: {self._extra_hint(device_type, cands)}."
        )


_REGISTRY = _Registry()


def get_backend(device_type: str, name: str | None = None) -> Any:
    """The backend serving ``device_type`` (cached after the first call).

    Among available backends for the type the highest ``priority`` wins;
    ``name`` or the environment variable ``FUTUREKIT_BACKEND_<TYPE>`` picks one by
    name instead.

    Raises:
        BackendUnavailableError: the type is unknown or no backend for it is
            available; the message says why and which extra to install.
        BackendError: ``name`` does not name a backend for this type.
    """
    if not isinstance(device_type, str):
        raise TypeError(f"device_type must be a str, got {device_type!r}")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"backend name must be a str, got {name!r}")
    return _REGISTRY.get(device_type, name)


def get_spec(name: str) -> BackendSpec | None:
    """The spec of the backend called ``name``, if one is registered."""
    _REGISTRY.manager()
    entry = _REGISTRY.entries.get(name)
    return entry.spec if entry else None


def known_device_types() -> set[str]:
    """Device types that some registered backend serves."""
    _REGISTRY.manager()
    return {e.spec.device_type for e in _REGISTRY.entries.values()}


def int_device_type() -> str:
    """The accelerator type a bare ``int`` device means.

    It is the one non-CPU, non-testing device type with an available backend.

    Raises:
        BackendUnavailableError: there is no such type, or more than one.
    """
    _REGISTRY.manager()
    with _REGISTRY.lock:
        types: dict[str, list[str]] = {}
        unavailable: list[str] = []
        for entry in _REGISTRY.entries.values():
            spec = entry.spec
            if spec.testing or spec.device_type == "cpu":
                continue
            ok, reason = _REGISTRY.status(entry)
            if ok:
                types.setdefault(spec.device_type, []).append(spec.name)
            else:
                unavailable.append(f"{spec.name} ({spec.device_type}): {reason}")
    if len(types) == 1:
        return next(iter(types))
    if not types:
        why = "; ".join(unavailable) or "no accelerator backend is installed"
        raise BackendUnavailableError(
            "An int device means an index of this machine's accelerator, but no "
            f"accelerator backend is available ({why}). Pass a 'type:index' string "
            "such as 'sim:0', or install a backend: pip install 'futurekit[torch]' or "
            "'futurekit[cuda]'."
        )
    raise BackendUnavailableError(
        "An int device is ambiguous here: several accelerator types are available ("
        + ", ".join(sorted(types))
        + "). Pass a 'type:index' string such as "
        + f"'{sorted(types)[0]}:0'."
    )


def available_backends() -> list[BackendInfo]:
    """Every registered backend with its availability (loads each one)."""
    _REGISTRY.manager()
    out = []
    with _REGISTRY.lock:
        entries = list(_REGISTRY.entries.values())
    for entry in entries:
        ok, reason = _REGISTRY.status(entry)
        count: int | None = None
        if ok:
            try:
                count = int(entry.backend.device_count())
            except Exception as exc:
                ok, reason = False, f"device_count() raised {type(exc).__name__}: {exc}"
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
            )
        )
    return sorted(out, key=lambda i: (i.device_type, -i.priority, i.name))


def plugin_failures() -> list[PluginFailure]:
    """Plugins that failed to load or to answer the hook."""
    _REGISTRY.manager()
    return list(_REGISTRY.failures)


def disabled_plugins() -> list[str]:
    """Plugins and backends disabled by ``FUTUREKIT_DISABLE_PLUGINS``."""
    _REGISTRY.manager()
    return list(_REGISTRY.disabled)


def register(plugin: object, name: str | None = None) -> str:
    """Register a plugin object (module, class or instance with hook implementations).

    Returns:
        The name it was registered under.

    Raises:
        ValueError: the plugin (or its name) is already registered.
    """
    pm = _REGISTRY.manager()
    with _REGISTRY.lock:
        registered = pm.register(plugin, name=name)
        if registered is None:
            raise ValueError(f"plugin {name or plugin!r} is blocked by FUTUREKIT_DISABLE_PLUGINS")
        _REGISTRY.refresh()
        return registered


def unregister(plugin: object | None = None, name: str | None = None) -> None:
    """Remove a plugin registered with :func:`register` (by object or by name)."""
    pm = _REGISTRY.manager()
    with _REGISTRY.lock:
        if pm.unregister(plugin=plugin, name=name) is None:
            raise ValueError(f"plugin {name or plugin!r} is not registered")
        _REGISTRY.refresh()


def reset() -> None:
    """Forget every plugin and cached backend; the next call reloads (for tests)."""
    global _REGISTRY
    _REGISTRY = _Registry()
