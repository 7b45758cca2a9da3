"""Choosing the backend for a device type, and saying why none can serve it.

Among the available backends for a type the highest ``priority`` wins; a name
(``backend=`` or ``FUTUREKIT_BACKEND_<TYPE>``) picks one instead. The choice is
cached per (type, name) until a plugin is registered or removed.
"""

from __future__ import annotations

import os
from typing import Any

from futurekit.core._errors import BackendError, BackendUnavailableError

from ._hints import KNOWN_EXTRAS, fix_for
from ._loading import Entry, Loader
from ._spec import install_hint

__all__ = ["Registry"]


class Registry(Loader):
    """The plugin registry: :class:`Loader`'s tables and loading, and the selection."""

    def candidates(self, device_type: str) -> list[Entry]:
        self.manager()
        found = [e for e in self.entries.values() if e.spec.device_type == device_type]
        return sorted(found, key=lambda e: -e.spec.priority)

    def live_entries(self) -> list[Entry]:
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
        backend = self._select(device_type, override, bool(name))
        with self.lock:
            if self.generation == generation:
                self.selected[key] = backend
        return backend

    def _select(self, device_type: str, override: str | None, by_name: bool = True) -> Any:
        cands = self.candidates(device_type)
        if override is not None:
            match = [e for e in cands if e.spec.name == override]
            if not match:
                raise BackendError(self._wrong_name_message(device_type, override, by_name))
            cands = match
        for entry in cands:
            self.ensure(entry)
            if entry.available:
                return entry.backend
        live = [e for e in cands if not e.failed]
        if not live:
            raise BackendUnavailableError(self._no_backend_message(device_type))
        reasons = "; ".join(f"{e.describe()}: {e.reason}" for e in live)
        message = f"No available backend for device type {device_type!r}: {reasons}."
        fixes = list(dict.fromkeys(f for f in (fix_for(e.spec, e.distribution) for e in live) if f))
        if fixes:
            lead = "To fix" if len(fixes) == 1 else "To fix, any one of"
            message += f" {lead}: " + "; or ".join(fixes) + "."
        failed = [e for e in cands if e.failed]
        if failed:
            message += " Skipped because they failed: " + "; ".join(
                f"{e.describe()}: {e.reason}" for e in failed
            )
            message += "."
        raise BackendUnavailableError(message)

    def _wrong_name_message(self, device_type: str, override: str, by_name: bool) -> str:
        """Why the backend named ``override`` cannot serve ``device_type``, and what to pass."""
        env = f"FUTUREKIT_BACKEND_{device_type.upper().replace('-', '_')}"
        source = f"backend={override!r}" if by_name else f"{env}={override}"
        other = self.entries.get(override)
        if other is not None:
            why = f"{other.describe()} serves {other.spec.device_type!r}, not {device_type!r}"
        else:
            why = "no backend has that name"
        names = [repr(e.spec.name) for e in self.candidates(device_type) if not e.failed]
        if names:
            fix = f"name one of the backends for {device_type!r} ({', '.join(names)})"
        else:
            fix = f"no backend serves {device_type!r}: install a plugin that does"
        default = "leave backend= out" if by_name else f"unset {env}"
        return (
            f"Backend {override!r} was requested for {device_type!r} devices ({source}), but "
            f"{why}. To fix: {fix}, or {default} to use the highest-priority available one."
        )

    def _no_backend_message(self, device_type: str) -> str:
        with self.lock:
            failures = list(self.failures.values())
        serving = [f for f in failures if device_type in f.device_types]
        if serving:
            listed = "; ".join(f"{f.describe()}: {f.explain()}" for f in serving)
            dists = sorted({f.distribution or f.name for f in serving})
            plugins = ",".join(dict.fromkeys(f.name for f in serving))
            return (
                f"Device type {device_type!r} is served by a plugin that failed and was "
                f"skipped: {listed}. Fix or reinstall {' and '.join(dists)}, or set "
                f"FUTUREKIT_DISABLE_PLUGINS={plugins} to stop loading it."
            )
        known = ", ".join(sorted({e.spec.device_type for e in self.live_entries()})) or "(none)"
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
                + "; ".join(f"{f.describe()}: {f.explain()}" for f in unsure)
                + "."
            )
        extras = KNOWN_EXTRAS.get(device_type)
        if extras:
            message += f" To add one: {install_hint(*extras)}."
        else:
            message += " To add one: install a futurekit backend plugin that serves it."
        return message
