"""The plugin manager: tolerant loading, validation, backend selection and caching.

Everything here runs on the first device future or registry call, never for CPU
futures and never at ``import futurekit``. Results are cached; the hot path of a
device future is one dictionary lookup.

Locking: the global lock guards only the registry's own tables (building the
plugin manager, asking plugins for their specs, recording failures). A backend's
``load()`` and ``is_available()`` run under that backend's own lock, so a slow
backend delays only lookups of its own device type.

Failures: a plugin that cannot be imported, whose hook raises or yields something
other than a :class:`BackendSpec`, or a backend whose ``load()`` raises, returns
an object that does not implement the protocol, or whose ``is_available()``
raises, is skipped. Each failure is recorded once (:func:`plugin_failures`) and
warned about once with :class:`PluginLoadWarning`, naming the plugin and its
distribution.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
import os
import re
import sys
import threading
import warnings
from dataclasses import dataclass
from typing import Any

import pluggy

from futurekit.core import _resolver
from futurekit.core._errors import BackendError, BackendUnavailableError

from ._hookspec import PROJECT_NAME, FuturekitSpecs
from ._spec import BackendSpec, install_hint, protocol_problems

__all__ = [
    "BUILTIN_PLUGINS",
    "BackendInfo",
    "PluginFailure",
    "PluginLoadWarning",
    "available_backends",
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

logger = logging.getLogger("futurekit")

#: Modules of the built-in backends, registered directly (no entry points needed).
BUILTIN_PLUGINS: tuple[str, ...] = (
    "futurekit.backends.cpu",
    "futurekit.backends.sim",
    "futurekit.backends.torch",
    "futurekit.backends.cuda",
)

#: Extras to suggest for well-known device types that have no registered backend.
_KNOWN_EXTRAS: dict[str, tuple[str, ...]] = {
    "cuda": ("torch", "cuda"),
    "xpu": ("torch",),
    "mps": ("torch",),
    "hpu": ("torch",),
    "npu": ("torch",),
    "mtia": ("torch",),
    "privateuseone": ("torch",),
}

_TORCH_GET_STARTED = "https://pytorch.org/get-started/locally/"

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
    """

    name: str
    distribution: str | None
    error: str
    backend: str | None = None
    device_types: tuple[str, ...] = ()

    def describe(self) -> str:
        """``plugin 'x' (distribution y), backend 'z'``: who failed, in words."""
        text = f"plugin {self.name!r}"
        if self.distribution:
            text += f" (distribution {self.distribution})"
        if self.backend is not None:
            text += f", backend {self.backend!r}"
        return text


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


class _Entry:
    """One registered backend and, once resolved, its object and availability."""

    __slots__ = (
        "available",
        "backend",
        "distribution",
        "failed",
        "lock",
        "plugin",
        "reason",
        "resolved",
        "resolving",
        "spec",
        "version",
    )

    def __init__(
        self, spec: BackendSpec, plugin: str, distribution: str | None, version: str | None
    ) -> None:
        self.spec = spec
        self.plugin = plugin
        self.distribution = distribution
        self.version = version
        self.lock = threading.RLock()
        self.resolved = False
        self.resolving = False
        self.backend: Any = None
        self.available = False
        self.failed = False
        self.reason: str | None = None


def _env_list(var: str) -> set[str]:
    return {p.strip() for p in os.environ.get(var, "").split(",") if p.strip()}


def _own_version() -> str | None:
    try:
        return importlib.metadata.version("futurekit")
    except importlib.metadata.PackageNotFoundError:
        from futurekit._version import __version__

        return __version__


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside futurekit, for :func:`_warn`."""
    frame = sys._getframe(1)  # _warn: warnings.warn's stacklevel 1
    level = 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level


def _warn(message: str) -> None:
    """Warn with :class:`PluginLoadWarning`, pointing at the caller's code."""
    if sys.version_info >= (3, 12):
        warnings.warn(message, PluginLoadWarning, skip_file_prefixes=(_PACKAGE_DIR,))
    else:
        warnings.warn(message, PluginLoadWarning, stacklevel=_stacklevel())


@functools.cache
def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


_EXTRA_MARKER = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")
_REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@functools.cache
def _extra_installed(extra: str) -> bool | None:
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
    return all(_dist_version(name) is not None for name in names)


def _builtin_needs(spec: BackendSpec, extra_ok: bool) -> str | None:
    """What a built-in backend needs beyond what is installed, in words."""
    if spec.name == "torch":
        torch_version = _dist_version("torch") if extra_ok else None
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


def _fix(entry: _Entry) -> str | None:
    """What would make ``entry`` available, or ``None`` if futurekit cannot tell."""
    spec = entry.spec
    extra_ok = spec.extra is None or _extra_installed(spec.extra) is True
    needs = _builtin_needs(spec, extra_ok) if entry.distribution == "futurekit" else None
    install = None if extra_ok or spec.extra is None else install_hint(spec.extra)
    if needs and install:
        return f"{spec.name!r} needs {needs} ({install})"
    if needs:
        return f"{spec.name!r} needs {needs}"
    if install:
        return f"{spec.name!r}: {install}"
    return None


class _Registry:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.pm: pluggy.PluginManager | None = None
        self.entries: dict[str, _Entry] = {}
        self.plugin_dists: dict[str, tuple[str | None, str | None]] = {}
        #: One failure per (plugin, backend or None), in the order they happened.
        self.failures: dict[tuple[str, str | None], PluginFailure] = {}
        #: Failures found while asking the hooks (recomputed by each refresh).
        self.hook_failures: set[tuple[str, str | None]] = set()
        self.disabled: list[str] = []
        self.selected: dict[tuple[str, str | None], Any] = {}
        self.generation = 0
        #: Warnings not yet emitted: they are emitted outside every lock.
        self.pending: list[str] = []

    # -- failures -------------------------------------------------------------------
    def fail(self, failure: PluginFailure, exc: BaseException | None = None) -> None:
        """Record ``failure`` and queue its warning, once per plugin and backend.

        The traceback goes to the ``futurekit`` logger at DEBUG level only: the
        warning (see :meth:`flush`) is the one report.
        """
        key = (failure.name, failure.backend)
        with self.lock:
            if key in self.failures:
                return
            self.failures[key] = failure
            self.pending.append(
                f"futurekit {failure.describe()} failed and was skipped: {failure.error}"
            )
        if exc is not None:
            logger.debug("futurekit: %s failed", failure.describe(), exc_info=exc)

    def flush(self) -> None:
        """Emit the queued warnings (call with no lock held: a filter may raise)."""
        while self.pending:
            with self.lock:
                if not self.pending:
                    return
                message = self.pending.pop(0)
            _warn(message)

    # -- building ---------------------------------------------------------------------
    def manager(self) -> pluggy.PluginManager:
        pm = self.pm
        if pm is not None:
            if self.pending:  # a warnings filter raised on an earlier one
                self.flush()
            return pm
        with self.lock:
            if self.pm is None:
                built = self._build()
                self._collect(built)
                self.pm = built
            pm = self.pm
        self.flush()
        return pm

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
                self.fail(PluginFailure(modname, "futurekit", _describe(exc)), exc)
                continue
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                self.fail(PluginFailure(modname, "futurekit", _describe(exc)), exc)
                continue
            pm.register(module, name=modname)
            self.plugin_dists[modname] = ("futurekit", version)
        if os.environ.get("FUTUREKIT_DISABLE_PLUGIN_AUTOLOAD", "").strip() not in ("", "0"):
            return pm
        for dist in importlib.metadata.distributions():
            try:
                eps = [ep for ep in dist.entry_points if ep.group == PROJECT_NAME]
                dist_name = dist.metadata["Name"] if dist.metadata else None
            except Exception:  # pragma: no cover - broken metadata
                logger.debug("futurekit: unreadable distribution metadata", exc_info=True)
                continue
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
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:
                    self.fail(PluginFailure(ep.name, dist_name, _describe(exc)), exc)
                    continue
                self.plugin_dists[ep.name] = (dist_name, dist.version)
        return pm

    def _collect(self, pm: pluggy.PluginManager) -> None:
        """Ask every plugin for its backends, one plugin at a time (lock held)."""
        blocked = _env_list("FUTUREKIT_DISABLE_PLUGINS")
        previous = self.entries
        entries: dict[str, _Entry] = {}
        stale = self.hook_failures
        self.hook_failures = set()
        impls = pm.hook.futurekit_device_backends.get_hookimpls()
        # pluggy calls the last registered first; built-ins come first here.
        for impl in impls:
            plugin = impl.plugin_name
            dist, version = self.plugin_dists.get(plugin, (None, None))
            specs: list[Any] = []
            try:
                produced: Any = impl.function()
                for spec in produced or ():
                    specs.append(spec)
                    if not isinstance(spec, BackendSpec):
                        raise TypeError(
                            f"futurekit_device_backends() yielded {spec!r}, not a BackendSpec"
                        )
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                kinds = {s.device_type for s in specs if isinstance(s, BackendSpec)}
                self.hook_failures.add((plugin, None))
                failure = PluginFailure(plugin, dist, _describe(exc), None, tuple(sorted(kinds)))
                self.fail(failure, exc)
                continue
            for spec in specs:
                if spec.name in blocked:
                    if spec.name not in self.disabled:
                        self.disabled.append(spec.name)
                    continue
                if spec.name in entries:
                    other = entries[spec.name]
                    self.hook_failures.add((plugin, spec.name))
                    error = (
                        f"backend name {spec.name!r} is already provided by plugin "
                        f"{other.plugin!r} ({other.distribution or '?'}); this one is ignored"
                    )
                    self.fail(PluginFailure(plugin, dist, error, spec.name, (spec.device_type,)))
                    continue
                old = previous.get(spec.name)
                if old is not None and old.plugin == plugin:
                    entries[spec.name] = old  # keep what was loaded and reported
                else:
                    entries[spec.name] = _Entry(spec, plugin, dist, version)
        for key in stale - self.hook_failures:  # plugins unregistered or fixed since
            self.failures.pop(key, None)
        self.entries = entries
        self.selected = {}
        self.generation += 1
        for name in blocked:
            if pm.is_blocked(name) and name not in self.disabled:
                self.disabled.append(name)

    def refresh(self) -> None:
        with self.lock:
            self._collect(self.manager())
        _resolver.bump()  # the core resolves its device plans again

    # -- loading, validation and availability -------------------------------------
    def ensure(self, entry: _Entry) -> None:
        """Load ``entry``'s backend and ask whether it is available, once.

        Runs the plugin's code under the entry's own lock, never the global one.
        """
        if entry.resolved:
            return
        with entry.lock:
            if entry.resolved:
                return
            if entry.resolving:  # load() or is_available() asked for its own type
                raise BackendError(
                    f"backend {entry.spec.name!r} asked the registry for its own device "
                    f"type {entry.spec.device_type!r} while it was being loaded"
                )
            entry.resolving = True
            try:
                self._resolve(entry)
            finally:
                entry.resolving = False
            entry.resolved = True
        self.flush()

    def _resolve(self, entry: _Entry) -> None:
        spec = entry.spec
        try:
            backend = spec.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            self._skip(entry, f"load() raised {_describe(exc)}", exc)
            return
        problems = protocol_problems(backend, spec.device_type)
        if problems:
            what = f"{type(backend).__module__}.{type(backend).__qualname__}"
            self._skip(
                entry,
                f"load() returned a {what} that is not a futurekit Backend: " + "; ".join(problems),
            )
            return
        try:
            available = bool(backend.is_available())
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            self._skip(entry, f"is_available() raised {_describe(exc)}", exc)
            return
        entry.backend = backend
        entry.available = available
        if not available:
            entry.reason = self._unavailable_reason(backend)

    @staticmethod
    def _unavailable_reason(backend: Any) -> str:
        get_reason = getattr(backend, "unavailable_reason", None)
        if not callable(get_reason):
            return "is_available() returned False"
        try:
            reason = get_reason()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            logger.debug("futurekit: unavailable_reason() raised", exc_info=exc)
            return f"is_available() returned False; unavailable_reason() raised {_describe(exc)}"
        return str(reason) if reason else "is_available() returned False"

    def _skip(self, entry: _Entry, error: str, exc: BaseException | None = None) -> None:
        entry.failed = True
        entry.backend = None
        entry.reason = error
        spec = entry.spec
        self.fail(
            PluginFailure(entry.plugin, entry.distribution, error, spec.name, (spec.device_type,)),
            exc,
        )

    # -- selection ----------------------------------------------------------------------
    def candidates(self, device_type: str) -> list[_Entry]:
        self.manager()
        found = [e for e in self.entries.values() if e.spec.device_type == device_type]
        return sorted(found, key=lambda e: -e.spec.priority)

    def live_entries(self) -> list[_Entry]:
        self.manager()
        return [e for e in self.entries.values() if not e.failed]

    def get(self, device_type: str, name: str | None) -> Any:
        env = os.environ.get(f"FUTUREKIT_BACKEND_{device_type.upper().replace('-', '_')}")
        override = name or (env.strip() if env else None) or None
        key = (device_type, override)
        backend = self.selected.get(key)
        if backend is not None:
            return backend
        self.manager()
        generation = self.generation
        backend = self._select(device_type, override)
        with self.lock:
            if self.generation == generation:
                self.selected[key] = backend
        return backend

    def _select(self, device_type: str, override: str | None) -> Any:
        cands = self.candidates(device_type)
        if override is not None:
            match = [e for e in cands if e.spec.name == override]
            if not match:
                names = ", ".join(e.spec.name for e in cands if not e.failed) or "(none)"
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
        for entry in cands:
            self.ensure(entry)
            if entry.available:
                return entry.backend
        live = [e for e in cands if not e.failed]
        if not live:
            raise BackendUnavailableError(self._no_backend_message(device_type))
        reasons = "; ".join(f"{e.spec.name!r} ({e.distribution or '?'}): {e.reason}" for e in live)
        message = f"No available backend for device type {device_type!r}: {reasons}."
        fixes = list(dict.fromkeys(f for f in map(_fix, live) if f))
        if fixes:
            lead = "To fix" if len(fixes) == 1 else "To fix, any one of"
            message += f" {lead}: " + "; or ".join(fixes) + "."
        failed = [e for e in cands if e.failed]
        if failed:
            message += " Skipped because they failed: " + "; ".join(
                f"{e.spec.name!r} ({e.distribution or '?'}): {e.reason}" for e in failed
            )
            message += "."
        raise BackendUnavailableError(message)

    def _no_backend_message(self, device_type: str) -> str:
        with self.lock:
            failures = list(self.failures.values())
        serving = [f for f in failures if device_type in f.device_types]
        if serving:
            listed = "; ".join(f"{f.describe()}: {f.error}" for f in serving)
            dists = sorted({f.distribution or f.name for f in serving})
            plugins = ",".join(dict.fromkeys(f.name for f in serving))
            return (
                f"Device type {device_type!r} is served by a plugin that failed and was "
                f"skipped: {listed}. Fix or reinstall {' and '.join(dists)}, or set "
                f"FUTUREKIT_DISABLE_PLUGINS={plugins} to stop loading it."
            )
        known = ", ".join(sorted(known_device_types())) or "(none)"
        message = (
            f"Unknown device type {device_type!r}: no futurekit backend serves it. "
            f"Known device types: {known}."
        )
        unsure = [f for f in failures if not f.device_types]
        if unsure:
            # Plugins named after the type first: they most likely serve it.
            unsure.sort(key=lambda f: device_type not in f"{f.name} {f.distribution or ''}")
            message += (
                " These plugins failed before saying which device types they serve, "
                "and one may serve it: "
                + "; ".join(f"{f.describe()}: {f.error}" for f in unsure)
                + "."
            )
        extras = _KNOWN_EXTRAS.get(device_type)
        if extras:
            message += f" To add one: {install_hint(*extras)}."
        else:
            message += " To add one: install a futurekit backend plugin that serves it."
        return message


_REGISTRY = _Registry()


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
            unavailable.append(f"{spec.name} ({spec.device_type}): {entry.reason}")
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
        if ok:
            try:
                count = int(entry.backend.device_count())
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                ok, reason = False, f"device_count() raised {_describe(exc)}"
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
                fix=None if ok else _fix(entry),
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
        raise TypeError(f"plugin name must be a str, got {name!r}")
    pm = _REGISTRY.manager()
    with _REGISTRY.lock:
        registered = pm.register(plugin, name=name)
        if registered is None:
            raise ValueError(
                f"plugin {name or plugin!r} is blocked by FUTUREKIT_DISABLE_PLUGINS; remove "
                "it from that variable to register it"
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
        if pm.unregister(plugin=plugin, name=name) is None:
            raise ValueError(f"plugin {name or plugin!r} is not registered")
        _REGISTRY.refresh()
    _REGISTRY.flush()


def describe_backend(backend: object) -> str:
    """Name a loaded backend for error messages: its plugin, distribution and version.

    ``backend 'mydev' (plugin 'mydev_plugin', distribution mydev 1.0)``; a backend
    object the registry did not load is named by its class.
    """
    for entry in list(_REGISTRY.entries.values()):
        if entry.backend is backend and backend is not None:
            named = not entry.plugin.isdigit()  # pluggy names anonymous plugins by id()
            parts = [f"plugin {entry.plugin!r}"] if named else []
            if entry.distribution:
                dist = entry.distribution + (f" {entry.version}" if entry.version else "")
                parts.append(f"distribution {dist}")
            return f"backend {entry.spec.name!r}" + (f" ({', '.join(parts)})" if parts else "")
    kind = getattr(backend, "device_type", None)
    return f"backend {type(backend).__qualname__}" + (f" for {kind!r}" if kind else "")


def reset() -> None:
    """Forget every plugin and cached backend; the next call reloads (for tests)."""
    global _REGISTRY
    _REGISTRY = _Registry()
    _resolver.bump()
    _extra_installed.cache_clear()
    _dist_version.cache_clear()
