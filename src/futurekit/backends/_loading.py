"""Loading plugins and backends: tolerant, validated, each failure reported once.

Everything here runs on the first device future or registry call, never for CPU
futures and never at ``import futurekit``.

Locking: the global lock guards only the registry's own tables (building the
plugin manager, asking plugins for their specs, recording failures). A backend's
``load()`` and ``is_available()`` run under that backend's own lock, so a slow
backend delays only lookups of its own device type.

Failures: a plugin that cannot be imported, whose hook raises or yields something
other than a :class:`BackendSpec`, or a backend whose ``load()`` raises, returns
an object that does not implement the protocol, or whose ``is_available()``
raises, is skipped. Each failure is recorded once (``plugin_failures()``) and
warned about once with :class:`PluginLoadWarning`, naming the plugin and its
distribution.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import threading
from typing import Any

import pluggy

from futurekit.core import _resolver
from futurekit.core._errors import BackendError

from ._contract import contract
from ._failures import PluginFailure, describe_exception, stop_loading, warn
from ._hookspec import PROJECT_NAME, FuturekitSpecs
from ._spec import BackendSpec, protocol_problems

__all__ = ["BUILTIN_PLUGINS", "Entry", "Loader", "count_problem", "env_list", "own_version"]

logger = logging.getLogger("futurekit")

#: Modules of the built-in backends, registered directly (no entry points needed).
BUILTIN_PLUGINS: tuple[str, ...] = (
    "futurekit.backends.cpu",
    "futurekit.backends.sim",
    "futurekit.backends.torch",
    "futurekit.backends.cuda",
)


class Entry:
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
        #: The method running while the backend is resolved ("" when none).
        self.resolving = ""
        self.backend: Any = None
        self.available = False
        self.failed = False
        self.reason: str | None = None

    def describe(self) -> str:
        """``backend 'x' (plugin 'p', distribution d 1.0)``: the backend, for messages."""
        parts = []
        if not self.plugin.isdigit():  # pluggy names anonymous plugins by id()
            parts.append(f"plugin {self.plugin!r}")
        if self.distribution:
            dist = self.distribution + (f" {self.version}" if self.version else "")
            parts.append(f"distribution {dist}")
        return f"backend {self.spec.name!r}" + (f" ({', '.join(parts)})" if parts else "")


def env_list(var: str) -> set[str]:
    """The comma-separated names in environment variable ``var``."""
    return {p.strip() for p in os.environ.get(var, "").split(",") if p.strip()}


def own_version() -> str | None:
    """The installed futurekit's version (the source tree's when not installed)."""
    try:
        return importlib.metadata.version("futurekit")
    except importlib.metadata.PackageNotFoundError:
        from futurekit._version import __version__

        return __version__


class Loader:
    """The registry's tables, the plugin manager, and loading backends once each."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.pm: pluggy.PluginManager | None = None
        self.entries: dict[str, Entry] = {}
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
                f"futurekit {failure.describe()} failed and was skipped: {failure.explain()}"
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
            warn(message)

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
        blocked = env_list("FUTUREKIT_DISABLE_PLUGINS")
        for name in blocked:
            pm.set_blocked(name)
        version = own_version()
        for modname in BUILTIN_PLUGINS:
            try:
                module = importlib.import_module(modname)
            except ModuleNotFoundError as exc:
                if exc.name == modname:  # not part of this build
                    continue
                self._fail_import(modname, "futurekit", exc)
                continue
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                self._fail_import(modname, "futurekit", exc)
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
                    self._fail_import(ep.name, dist_name, exc)
                    continue
                self.plugin_dists[ep.name] = (dist_name, dist.version)
        return pm

    def _fail_import(self, plugin: str, dist: str | None, exc: BaseException) -> None:
        error = f"importing the plugin raised {describe_exception(exc)}"
        fix = f"reinstall {dist or 'the distribution that provides it'}, or {stop_loading(plugin)}"
        self.fail(PluginFailure(plugin, dist, error, fix=fix), exc)

    def _collect(self, pm: pluggy.PluginManager) -> None:
        """Ask every plugin for its backends, one plugin at a time (lock held)."""
        blocked = env_list("FUTUREKIT_DISABLE_PLUGINS")
        previous = self.entries
        entries: dict[str, Entry] = {}
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
                error = f"its futurekit_device_backends() hook raised {describe_exception(exc)}"
                fix = (
                    "the hook must yield futurekit.backends.BackendSpec records without raising "
                    f"(heavy work belongs in BackendSpec.load); or {stop_loading(plugin)}"
                )
                failure = PluginFailure(plugin, dist, error, None, tuple(sorted(kinds)), fix)
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
                    fix = f"give one of them another BackendSpec.name, or {stop_loading(plugin)}"
                    failure = PluginFailure(
                        plugin, dist, error, spec.name, (spec.device_type,), fix
                    )
                    self.fail(failure)
                    continue
                old = previous.get(spec.name)
                if old is not None and old.plugin == plugin:
                    entries[spec.name] = old  # keep what was loaded and reported
                else:
                    entries[spec.name] = Entry(spec, plugin, dist, version)
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
    def ensure(self, entry: Entry) -> None:
        """Load ``entry``'s backend and ask whether it is available, once.

        Runs the plugin's code under the entry's own lock, never the global one.
        """
        if entry.resolved:
            return
        with entry.lock:
            if entry.resolved:
                return
            if entry.resolving:  # load() or is_available() asked for its own type
                kind, stage = entry.spec.device_type, entry.resolving
                raise BackendError(
                    f"{entry.describe()}: its {stage} asked the registry for its own device "
                    f"type {kind!r} while the backend was being loaded; {stage} must not make "
                    f"a {kind!r} future or call get_backend({kind!r}): return the backend "
                    "object (or the answer) and let futurekit call it"
                )
            try:
                self._resolve(entry)
            finally:
                entry.resolving = ""
            entry.resolved = True
        self.flush()

    def _resolve(self, entry: Entry) -> None:
        """Load, validate and ask for availability; a misbehaving backend is skipped."""
        spec = entry.spec
        entry.resolving = "load()"
        try:
            backend = spec.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            self._skip(entry, f"load() raised {describe_exception(exc)}", contract("load"), exc)
            return
        problems = protocol_problems(backend, spec.device_type)
        if problems:
            what = f"{type(backend).__module__}.{type(backend).__qualname__}"
            error = f"load() returned a {what} that is not a futurekit Backend: "
            self._skip(entry, error + "; ".join(problems))
            return
        entry.resolving = "is_available()"
        try:
            available = backend.is_available()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            error = f"is_available() raised {describe_exception(exc)}"
            self._skip(entry, error, contract("is_available"), exc)
            return
        if not isinstance(available, bool):
            error = f"is_available() returned {available!r} ({type(available).__name__})"
            self._skip(entry, error, contract("is_available"))
            return
        if available:
            entry.resolving = "device_count()"
            problem, error_object = count_problem(backend)
            if problem is not None:
                self._skip(entry, problem, contract("device_count"), error_object)
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
            why = describe_exception(exc)
            return f"is_available() returned False; unavailable_reason() raised {why}"
        return str(reason) if reason else "is_available() returned False"

    def _skip(
        self,
        entry: Entry,
        error: str,
        fix: str | None = None,
        exc: BaseException | None = None,
    ) -> None:
        entry.failed = True
        entry.backend = None
        entry.reason = f"{error}; {fix}" if fix else error
        spec = entry.spec
        failure = PluginFailure(
            entry.plugin, entry.distribution, error, spec.name, (spec.device_type,), fix
        )
        self.fail(failure, exc)


def count_problem(backend: Any) -> tuple[str | None, BaseException | None]:
    """What is wrong with ``backend.device_count()``'s answer (None: nothing), and the error."""
    try:
        count = backend.device_count()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        return f"device_count() raised {describe_exception(exc)}", exc
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        return f"device_count() returned {count!r} ({type(count).__name__})", None
    return None, None
