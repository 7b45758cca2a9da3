"""Fake plugin distributions for the registry tests.

A distribution is a ``*.dist-info`` folder (what an installer writes) with an
``entry_points.txt`` in the ``futurekit`` group, next to the plugin modules, in a
folder put on ``sys.path``: ``importlib.metadata`` finds it as it finds a real one.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from futurekit.backends import PluginLoadWarning
from futurekit.backends._registry import known_device_types, reset

#: Installs a fake distribution: ``install(dist, {entry_point: source or None})``.
Install = Callable[[str, dict[str, str | None]], Path]

#: Module name prefix of every plugin module these tests write.
PREFIX = "fkt_"


def module_name(dist: str, entry_point: str) -> str:
    """The module a fake entry point points at."""
    return PREFIX + f"{dist}_{entry_point}".replace("-", "_")


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """Install fake distributions; the registry is reset before and after the test.

    A source of ``None`` makes an entry point whose module does not exist.
    """
    for var in (
        "FUTUREKIT_DISABLE_PLUGINS",
        "FUTUREKIT_DISABLE_PLUGIN_AUTOLOAD",
        "FUTUREKIT_BACKEND_CUDA",
        "FUTUREKIT_BACKEND_SIM",
    ):
        monkeypatch.delenv(var, raising=False)

    def add(dist: str, plugins: dict[str, str | None]) -> Path:
        site = tmp_path / f"site-{dist}"
        info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        lines = "".join(f"{ep} = {module_name(dist, ep)}\n" for ep in plugins)
        (info / "entry_points.txt").write_text(f"[futurekit]\n{lines}")
        for ep, source in plugins.items():
            if source is not None:
                (site / f"{module_name(dist, ep)}.py").write_text(source)
        monkeypatch.syspath_prepend(str(site))
        reset()
        return site

    reset()
    yield add
    reset()
    for name in [m for m in sys.modules if m.startswith(PREFIX)]:
        del sys.modules[name]


def build() -> list[warnings.WarningMessage]:
    """Build the registry now; the PluginLoadWarnings it emitted."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        known_device_types()
    return [w for w in caught if issubclass(w.category, PluginLoadWarning)]


def plugin_warnings(fn: Callable[[], object]) -> tuple[object, list[warnings.WarningMessage]]:
    """Call ``fn``; its result (or the exception it raised) and its PluginLoadWarnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result: object = fn()
        except Exception as exc:
            result = exc
    return result, [w for w in caught if issubclass(w.category, PluginLoadWarning)]


#: A backend with only four of the protocol's methods (issue 10's "ring" plugin).
PARTIAL_RING = """
from futurekit.backends import BackendSpec, hookimpl

class Ring:
    device_type = "ring"
    def is_available(self): return True
    def current_stream(self, device): return None
    def device_of(self, obj): return None

@hookimpl
def futurekit_device_backends():
    yield BackendSpec(name="ring", device_type="ring", load=Ring)
"""

#: A complete backend for "ring", with ``{body}`` run at import and in its hook,
#: load() and is_available() where the marker names that place.
RING_TEMPLATE = """
from futurekit.backends import BackendBase, BackendSpec, hookimpl

{at_import}

class Ring(BackendBase):
    device_type = "ring"
    def __init__(self):
        {in_load}
    def is_available(self):
        {in_is_available}
        return True
    def current_stream(self, device): return ("stream", device)
    def record_event(self, stream): return ("event", stream)
    def wait_event(self, stream, event): return None
    def query_event(self, event): return True
    def synchronize_event(self, event): return None
    def device_of(self, obj): return None

@hookimpl
def futurekit_device_backends():
    {in_hook}
    yield BackendSpec(name="ring", device_type="ring", load=Ring)
"""


def ring(**raises: str) -> str:
    """The ring plugin's source, with ``raise <expr>`` at the places named.

    Places: ``at_import``, ``in_load``, ``in_is_available``, ``in_hook``.
    """
    places = ("at_import", "in_load", "in_is_available", "in_hook")
    unknown = set(raises) - set(places)
    assert not unknown, unknown
    return RING_TEMPLATE.format(
        **{p: f"raise {raises[p]}" if p in raises else "pass" for p in places}
    )
