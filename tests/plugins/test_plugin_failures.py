"""Broken plugins found through entry points: validated at load, skipped, reported once.

Every failure (an import error, a hook that raises or yields garbage, a ``load()``
that raises or returns something that is not a Backend, an ``is_available()`` that
raises, ``SystemExit`` included) gives one ``PluginLoadWarning`` naming the plugin
and its distribution, one ``plugin_failures()`` entry, and errors that say which
plugin serves the device type and why it failed.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from futurekit import BackendUnavailableError, Future
from futurekit.backends import (
    BackendBase,
    BackendSpec,
    available_backends,
    get_backend,
    hookimpl,
    plugin_failures,
    register,
    unregister,
)
from futurekit.backends._registry import known_device_types
from futurekit.backends._spec import REQUIRED_METHODS
from futurekit.backends.cpu import CpuBackend

from .conftest import PARTIAL_RING, Install, build, plugin_warnings, ring

pytestmark = pytest.mark.timeout(120)


def _ring_error() -> BackendUnavailableError:
    error, _ = plugin_warnings(lambda: Future(devices=["ring:0"]))
    assert isinstance(error, BackendUnavailableError), error
    return error


# -- validation against the protocol at load ------------------------------------------


def test_partial_backend_is_rejected_at_load(install: Install) -> None:
    install("futurekit-ring", {"ring": PARTIAL_RING})
    assert build() == []  # the plugin itself is fine; its backend loads lazily
    error, caught = plugin_warnings(lambda: Future(devices=["ring:0"]))
    # Future() fails with the plugin's name and what it lacks, not an AttributeError
    # at wait()
    assert isinstance(error, BackendUnavailableError), error
    message = str(error)
    assert "plugin 'ring' (distribution futurekit-ring)" in message
    assert "not a futurekit Backend" in message
    for name in ("stream_from_pool", "use_streams", "record_event", "wait_event"):
        assert name in message
    [warning] = caught
    text = str(warning.message)
    assert "plugin 'ring' (distribution futurekit-ring), backend 'ring'" in text
    assert "failed and was skipped" in text and "record_event" in text
    [failure] = plugin_failures()
    assert (failure.name, failure.distribution, failure.backend) == (
        "ring",
        "futurekit-ring",
        "ring",
    )
    assert failure.device_types == ("ring",)
    # the runtime, the listing and the known types agree: the backend is skipped
    assert "ring" not in {i.name for i in available_backends()}
    assert "ring" not in known_device_types()
    # asking again neither warns again nor adds a failure
    error2, caught2 = plugin_warnings(lambda: Future(devices=["ring:0"]))
    assert isinstance(error2, BackendUnavailableError) and caught2 == []
    assert len(plugin_failures()) == 1


def test_missing_methods_are_exactly_the_shared_list(install: Install) -> None:
    install("futurekit-ring", {"ring": PARTIAL_RING})
    message = str(_ring_error())
    present = {"is_available", "current_stream", "device_of"}
    lacks = message.split("lacks these methods of the Backend protocol: ")[1]
    assert lacks.startswith(", ".join(n for n in REQUIRED_METHODS if n not in present) + " ")


def test_device_type_that_differs_from_the_spec(install: Install) -> None:
    source = PARTIAL_RING.replace('device_type = "ring"', 'device_type = "rng"')
    install("futurekit-ring", {"ring": source})
    message = str(_ring_error())
    assert "it reports device_type 'rng', its BackendSpec says 'ring'" in message


def test_cli_and_runtime_agree(install: Install) -> None:
    site = install("futurekit-ring", {"ring": PARTIAL_RING})
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(site), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
    )
    env.pop("FUTUREKIT_DISABLE_PLUGIN_AUTOLOAD", None)
    done = subprocess.run(
        [sys.executable, "-m", "futurekit", "backends", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert "ring" not in {b["name"] for b in data["backends"]}
    [failure] = [f for f in data["failures"] if f["name"] == "ring"]
    assert failure["distribution"] == "futurekit-ring"
    assert "not a futurekit Backend" in failure["error"]
    assert done.stderr.count("PluginLoadWarning") == 1  # reported once


# -- "unknown device type" when the serving plugin failed --------------------------------


@pytest.mark.parametrize(
    ("plugin", "error"),
    [
        (ring(in_load="RuntimeError('no ring driver')"), "load() raised RuntimeError"),
        (ring(in_is_available="OSError('ring bus')"), "is_available() raised OSError"),
    ],
    ids=["load", "is_available"],
)
def test_failed_backend_is_named_with_its_error(install: Install, plugin: str, error: str) -> None:
    install("futurekit-ring", {"ring": plugin})
    message = str(_ring_error())
    assert "Device type 'ring' is served by a plugin that failed" in message
    assert "plugin 'ring' (distribution futurekit-ring), backend 'ring'" in message
    assert error in message
    assert "Fix or reinstall futurekit-ring" in message
    assert "FUTUREKIT_DISABLE_PLUGINS=ring" in message
    assert "install a futurekit backend plugin" not in message


def test_hook_that_yielded_the_type_then_failed(install: Install) -> None:
    garbage = PARTIAL_RING + "    yield 'not a spec'\n"
    install("futurekit-ring", {"ring": garbage})
    [warning] = build()
    assert "not a BackendSpec" in str(warning.message)
    [failure] = plugin_failures()
    assert failure.backend is None and failure.device_types == ("ring",)
    message = str(_ring_error())
    assert "Device type 'ring' is served by a plugin that failed" in message
    assert "plugin 'ring' (distribution futurekit-ring)" in message
    assert "not a BackendSpec" in message


@pytest.mark.parametrize(
    ("plugin", "error"),
    [
        (None, "ModuleNotFoundError: No module named 'fkt_futurekit_ring_ring'"),
        (ring(at_import="ImportError('libring.so not found')"), "libring.so not found"),
        (ring(in_hook="RuntimeError('hook exploded')"), "RuntimeError: hook exploded"),
    ],
    ids=["missing module", "import error", "hook raises"],
)
def test_plugin_that_failed_before_naming_its_types(
    install: Install, plugin: str | None, error: str
) -> None:
    install("futurekit-other", {"other": None})
    install("futurekit-ring", {"ring": plugin})
    message = str(_ring_error())
    assert message.startswith("Unknown device type 'ring'")
    assert "failed before saying which device types they serve" in message
    # the plugin named after the type comes first, with its distribution and error
    after = message.split("one may serve it: ")[1]
    assert after.startswith("plugin 'ring' (distribution futurekit-ring): ")
    assert error in after


def test_known_type_without_a_backend_names_the_extras(install: Install, monkeypatch) -> None:
    monkeypatch.setenv("FUTUREKIT_DISABLE_PLUGINS", "futurekit.backends.torch")
    install("futurekit-nothing", {})
    error, _ = plugin_warnings(lambda: Future(devices=["xpu:0"]))
    message = str(error)
    assert message.startswith("Unknown device type 'xpu'")
    assert "pip install '.[torch]' from a futurekit checkout" in message
    assert "pip install 'futurekit[" not in message


# -- BaseException from plugin code ------------------------------------------------------


PLACES = ["at_import", "in_hook", "in_load", "in_is_available"]


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("exc", ["SystemExit(3)", "GeneratorExit()", "BaseException('odd')"])
def test_base_exceptions_are_caught_and_warned_once(install: Install, place: str, exc: str) -> None:
    install("futurekit-ring", {"ring": ring(**{place: exc})})
    _, caught = plugin_warnings(available_backends)
    error, caught2 = plugin_warnings(lambda: Future(devices=["ring:0"]))
    assert isinstance(error, BackendUnavailableError)
    [warning] = caught + caught2
    assert "plugin 'ring' (distribution futurekit-ring)" in str(warning.message)
    assert exc.split("(")[0] in str(warning.message)
    assert len(plugin_failures()) == 1
    # the rest of the registry works
    assert Future(devices=["sim:0"]).devices


@pytest.mark.parametrize("place", PLACES)
def test_keyboard_interrupt_is_not_swallowed(install: Install, place: str) -> None:
    install("futurekit-ring", {"ring": ring(**{place: "KeyboardInterrupt"})})
    with pytest.raises(KeyboardInterrupt):
        available_backends()
        Future(devices=["ring:0"])


# -- reported once, at the caller ---------------------------------------------------------


BROKEN = {
    "broken-import": None,
    "broken-hook": ring(in_hook="RuntimeError('hook exploded')").replace('"ring"', '"ring1"'),
    "broken-garbage": "from futurekit.backends import hookimpl\n\n@hookimpl\n"
    "def futurekit_device_backends():\n    yield 'not a spec'\n",
    "broken-load": ring(in_load="RuntimeError('no driver')").replace('"ring"', '"ring2"'),
}


def test_failures_go_to_warnings_only_not_also_to_logging(
    install: Install, caplog: pytest.LogCaptureFixture
) -> None:
    install("broken-plugins", BROKEN)
    with caplog.at_level(logging.DEBUG, logger="futurekit"):
        _, caught = plugin_warnings(available_backends)
    assert len(caught) == 4 and len(plugin_failures()) == 4
    loud = [r for r in caplog.records if r.name == "futurekit" and r.levelno >= logging.INFO]
    assert loud == []
    # the traceback is still there for whoever turns on DEBUG
    assert any(r.exc_info for r in caplog.records if r.levelno == logging.DEBUG)


def test_warnings_point_at_the_callers_code(install: Install) -> None:
    install("broken-plugins", BROKEN)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available_backends()  # import, hook and load failures
    assert len(caught) == 4
    assert {w.filename for w in caught} == {__file__}
    install("futurekit-ring", {"ring": PARTIAL_RING})
    with warnings.catch_warnings(record=True) as later:
        warnings.simplefilter("always")
        with pytest.raises(BackendUnavailableError):
            Future(devices=["ring:0"])  # a validation failure, from Future()
    # the broken plugins are still installed: the new registry reports them again
    assert {w.filename for w in later} == {__file__}
    assert any("plugin 'ring'" in str(w.message) for w in later)


def test_a_warning_filter_that_raises_leaves_the_registry_whole(install: Install) -> None:
    install("broken-plugins", BROKEN)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(Warning, match="failed and was skipped"):
            known_device_types()
    # the registry was built anyway, and the failures are all recorded
    assert len(build()) >= 1  # the warnings not yet shown come now
    assert {f.name for f in plugin_failures()} >= {"broken-import", "broken-hook"}
    assert Future(devices=["sim:0"]).devices


# -- register() is idempotent for warnings and failures -----------------------------------


class _Acc(CpuBackend):
    """A complete no-op backend (the cpu backend's methods) for a made-up device type."""

    def __init__(self, device_type: str) -> None:
        self.device_type = device_type


class _Good:
    def __init__(self, n: int) -> None:
        self.n = n

    @hookimpl
    def futurekit_device_backends(self) -> Iterator[BackendSpec]:
        kind = f"good{self.n}"
        yield BackendSpec(name=f"good-{self.n}", device_type=kind, load=lambda: _Acc(kind))


def test_repeated_register_does_not_repeat_failures(install: Install) -> None:
    install("broken-plugins", BROKEN)
    _, caught = plugin_warnings(available_backends)
    assert len(caught) == 4
    before = plugin_failures()
    assert len(before) == 4
    for n in range(3):
        _, again = plugin_warnings(lambda n=n: register(_Good(n), name=f"good-{n}"))
        assert again == []
    assert plugin_failures() == before
    _, again = plugin_warnings(available_backends)
    assert again == [] and plugin_failures() == before


def test_backends_stay_loaded_across_register(install: Install) -> None:
    install("futurekit-nothing", {})
    sim = get_backend("sim")
    register(_Good(7), name="good-7")
    assert get_backend("sim") is sim


def test_unregistering_a_broken_plugin_drops_its_failure(install: Install) -> None:
    install("futurekit-nothing", {})

    class Broken:
        @hookimpl
        def futurekit_device_backends(self) -> Iterator[Any]:
            raise SystemExit("bye")

    plugin = Broken()
    _, caught = plugin_warnings(lambda: register(plugin, name="broken-by-hand"))
    [warning] = caught
    assert "plugin 'broken-by-hand'" in str(warning.message) and "SystemExit: bye" in str(
        warning.message
    )
    assert [f.name for f in plugin_failures()] == ["broken-by-hand"]
    unregister(plugin)
    assert plugin_failures() == []


def test_load_asking_for_its_own_type_fails_clearly(install: Install) -> None:
    install("futurekit-nothing", {})

    class Loop(BackendBase):
        device_type = "loop"

        def __init__(self) -> None:
            get_backend("loop")

    class Plugin:
        @hookimpl
        def futurekit_device_backends(self) -> Iterator[BackendSpec]:
            yield BackendSpec(name="loop", device_type="loop", load=Loop)

    register(Plugin(), name="loop-plugin")
    error, caught = plugin_warnings(lambda: get_backend("loop"))
    assert isinstance(error, BackendUnavailableError)
    assert "asked the registry for its own device type 'loop'" in str(error)
    assert len(caught) == 1
