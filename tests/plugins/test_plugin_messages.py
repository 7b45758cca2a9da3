"""Every registry error names the plugin, its distribution and the method, with the fix.

A backend is named ``backend 'x' (plugin 'p', distribution d 1.0)``, never by its
``repr``; a backend that already subclasses ``BackendBase`` is told what to
implement, not to subclass it; a backend whose ``is_available()`` or
``device_count()`` answers with the wrong type is skipped when it is loaded, so
that ``futurekit backends``, ``futurekit doctor`` and the runtime agree.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from futurekit import BackendError, BackendUnavailableError, Future
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
from futurekit.backends._registry import describe_backend

from .conftest import Install, plugin_warnings

pytestmark = pytest.mark.timeout(60)

NAMED = "backend 'ring' (plugin 'ring', distribution futurekit-ring 1.0)"


#: The ring plugin, one method per line, so that a test can replace or drop one.
RING = """
from futurekit.backends import BackendBase, BackendSpec, hookimpl

class Ring(BackendBase):
    device_type = "ring"
    def is_available(self): return True
    def current_stream(self, device): return ("stream", device)
    def record_event(self, stream): return ("event", stream)
    def wait_event(self, stream, event): return None
    def query_event(self, event): return True
    def synchronize_event(self, event): return None
    def device_of(self, obj): return None

@hookimpl
def futurekit_device_backends():
    yield BackendSpec(name="ring", device_type="ring", load=Ring)
"""


def without(method: str, source: str = RING) -> str:
    """The ring plugin without ``method``."""
    return "\n".join(
        line for line in source.splitlines() if not line.strip().startswith(f"def {method}(")
    )


def ring_with(method: str, body: str) -> str:
    """The ring plugin with ``method`` (replaced or added) running ``body``."""
    lines = without(method).splitlines()
    at = lines.index("class Ring(BackendBase):") + 1
    return "\n".join([*lines[:at], f"    def {method}(self, *args): {body}", *lines[at:]])


class Complete(BackendBase):
    """A host-only backend with every method of the protocol."""

    def current_stream(self, device: object) -> str:
        return "stream"

    def record_event(self, stream: object) -> str:
        return "event"

    def wait_event(self, stream: object, event: object) -> None:
        return None

    def query_event(self, event: object) -> bool:
        return True

    def synchronize_event(self, event: object) -> None:
        return None

    def device_of(self, obj: object) -> None:
        return None


def ring_error(install: Install, source: str) -> tuple[BackendUnavailableError, list[str]]:
    install("futurekit-ring", {"ring": source})
    error, caught = plugin_warnings(lambda: Future(devices=["ring:0"]))
    assert isinstance(error, BackendUnavailableError), error
    return error, [str(w.message) for w in caught]


def test_a_backendbase_subclass_is_told_what_to_implement_not_to_subclass(
    install: Install,
) -> None:
    error, [warning] = ring_error(install, without("record_event"))
    for text in (str(error), warning):
        assert "lacks these methods of the Backend protocol: record_event" in text
        assert "implement record_event(stream) -> event in Ring" in text
        assert "subclass futurekit.backends.BackendBase" not in text


def test_a_plain_class_is_told_which_defaults_backendbase_gives(install: Install) -> None:
    source = without("record_event").replace("class Ring(BackendBase):", "class Ring:")
    error, _ = ring_error(install, source)
    message = str(error)
    assert "implement record_event(stream) -> event in Ring" in message
    assert (
        "subclass futurekit.backends.BackendBase for the defaults of device_count, "
        "stream_from_pool, use_streams"
    ) in message


def test_backendbase_placeholder_current_stream_is_refused_at_load(install: Install) -> None:
    error, _ = ring_error(install, without("current_stream"))
    message = str(error)
    assert "plugin 'ring' (distribution futurekit-ring), backend 'ring'" in message
    assert "Ring does not override BackendBase's current_stream" in message
    assert "implement current_stream(device) -> stream in Ring" in message


@pytest.mark.parametrize(
    ("method", "body", "said"),
    [
        ("is_available", "return 'yes'", "is_available() returned 'yes' (str)"),
        ("is_available", "return None", "is_available() returned None (NoneType)"),
        ("device_count", "return '2'", "device_count() returned '2' (str)"),
        ("device_count", "return -1", "device_count() returned -1 (int)"),
        ("device_count", "raise OSError('bus')", "device_count() raised OSError: bus"),
    ],
)
def test_wrong_answers_at_load_name_plugin_method_and_fix(
    install: Install, method: str, body: str, said: str
) -> None:
    error, [warning] = ring_error(install, ring_with(method, body))
    fix = f"{method}() must return"
    for text in (str(error), warning):
        assert "plugin 'ring' (distribution futurekit-ring), backend 'ring'" in text
        assert said in text and fix in text
    [failure] = plugin_failures()
    assert failure.error.startswith(said) and failure.fix is not None
    assert failure.fix.startswith(fix)
    # the listing agrees with the runtime: the backend is skipped, not "available"
    assert "ring" not in {info.name for info in available_backends()}


def test_unavailable_backends_are_named_by_plugin_and_distribution(install: Install) -> None:
    source = ring_with("is_available", "return False")
    install("futurekit-ring", {"ring": source})
    with pytest.raises(BackendUnavailableError) as info:
        Future(devices=["ring:0"])
    assert f"No available backend for device type 'ring': {NAMED}: is_available()" in str(
        info.value
    )


def test_load_asking_for_its_own_type_names_plugin_and_stage(install: Install) -> None:
    install("futurekit-nothing", {})

    class Loop(Complete):
        device_type = "loop"

        def is_available(self) -> bool:
            get_backend("loop")
            return True

    class Plugin:
        @hookimpl
        def futurekit_device_backends(self) -> Iterator[BackendSpec]:
            yield BackendSpec(name="loop", device_type="loop", load=Loop)

    register(Plugin(), name="loop-plugin")
    error, _ = plugin_warnings(lambda: get_backend("loop"))
    message = str(error)
    assert "backend 'loop' (plugin 'loop-plugin'): its is_available() asked the registry" in (
        message
    )
    assert "is_available() must not make a 'loop' future or call get_backend('loop')" in message


def test_a_wrong_backend_name_says_where_it_came_from_and_what_to_pass(
    install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    install("futurekit-nothing", {})
    with pytest.raises(BackendError) as info:
        Future(devices=["sim:0"], backend="cpu")
    message = str(info.value)
    assert "Backend 'cpu' was requested for 'sim' devices (backend='cpu')" in message
    assert "backend 'cpu' (plugin 'futurekit.backends.cpu', distribution futurekit" in message
    assert "serves 'cpu', not 'sim'" in message
    assert "name one of the backends for 'sim' ('sim'), or leave backend= out" in message
    monkeypatch.setenv("FUTUREKIT_BACKEND_SIM", "nosuch")
    with pytest.raises(BackendError) as info:
        get_backend("sim")
    message = str(info.value)
    assert "(FUTUREKIT_BACKEND_SIM=nosuch), but no backend has that name" in message
    assert "or unset FUTUREKIT_BACKEND_SIM" in message


def test_plugins_and_backends_are_never_named_by_their_repr(install: Install) -> None:
    install("futurekit-nothing", {})

    class Anonymous:
        @hookimpl
        def futurekit_device_backends(self) -> Iterator[BackendSpec]:
            yield from ()

    plugin = Anonymous()
    with pytest.raises(ValueError) as info:
        unregister(plugin)
    assert "object at 0x" not in str(info.value)
    assert "unregister(): plugin object of class" in str(info.value)
    assert "Anonymous is not registered" in str(info.value)

    class Loose(BackendBase):
        device_type = "loose"

    text = describe_backend(Loose())
    assert text.endswith("Loose for 'loose' (not loaded from a plugin)")
    assert "0x" not in text
    assert describe_backend(get_backend("sim")).startswith(
        "backend 'sim' (plugin 'futurekit.backends.sim', distribution futurekit "
    )
