"""Third-party plugins: the custom backend example end to end, broken neighbours,
the disable variables, and register/unregister.

Distributions are faked with ``*.dist-info`` folders on ``sys.path`` (what an
installer writes; ``importlib.metadata`` finds them there); one test installs the
example for real with pip, offline.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from futurekit import BackendUnavailableError, Future
from futurekit.backends import (
    PluginLoadWarning,
    disabled_plugins,
    get_backend,
    plugin_failures,
    register,
    unregister,
)
from futurekit.backends._registry import get_spec, known_device_types, reset
from futurekit.testing import check_backend

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "custom_backend"

HOOK_RAISES = """
from futurekit.backends import hookimpl

@hookimpl
def futurekit_device_backends():
    raise RuntimeError("hook exploded")
"""

HOOK_GARBAGE = """
from futurekit.backends import hookimpl

@hookimpl
def futurekit_device_backends():
    yield "not a spec"
"""


def _dist(site: Path, name: str, entry_points: dict[str, str]) -> None:
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[futurekit]\n{lines}")


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    good = tmp_path_factory.mktemp("good")
    _dist(good, "futurekit-echo", {"echo": "futurekit_echo.plugin"})
    bad = tmp_path_factory.mktemp("bad")
    _dist(
        bad,
        "broken-plugins",
        {
            "broken-import": "fk_test_no_such_module",
            "broken-hook": "fk_test_hook_raises",
            "broken-garbage": "fk_test_hook_garbage",
        },
    )
    (bad / "fk_test_hook_raises.py").write_text(HOOK_RAISES)
    (bad / "fk_test_hook_garbage.py").write_text(HOOK_GARBAGE)
    return {"good": good, "bad": bad}


@pytest.fixture
def on_path(monkeypatch, sites):
    """Put fake distributions (and the example's sources) on sys.path."""
    monkeypatch.delenv("FUTUREKIT_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("FUTUREKIT_DISABLE_PLUGIN_AUTOLOAD", raising=False)

    def add(*names):
        monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
        for name in names:
            monkeypatch.syspath_prepend(str(sites[name]))
        reset()

    yield add
    reset()
    for mod in [m for m in sys.modules if m.startswith(("futurekit_echo", "fk_test_"))]:
        del sys.modules[mod]


def _build():
    """Build the registry now, returning the warnings it emitted."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        known_device_types()
    return [w for w in caught if issubclass(w.category, PluginLoadWarning)]


# -- the example, found through its entry point -----------------------------------------


def test_example_is_found_and_selected_by_its_device_type(on_path):
    on_path("good")
    assert _build() == []
    assert "echo" in known_device_types()
    from futurekit_echo import EchoBackend, EchoBuffer

    backend = get_backend("echo")
    assert isinstance(backend, EchoBackend)
    fut = Future(devices=["echo:1"])
    assert fut._dev.backend is backend
    buffer = EchoBuffer("echo:1", 41)
    child = fut.then(lambda f: f.value().value + 1)
    fut.set_result(buffer)
    assert fut.wait() is buffer
    assert child.wait() == 42
    bad = Future(devices=["echo:0"])
    bad.set_result(buffer)
    with pytest.raises(ValueError, match=r"device\(s\) echo:1 which are not among"):
        bad.wait()


def test_example_reports_its_distribution(on_path):
    on_path("good")
    _build()
    from futurekit.backends import available_backends

    info = {i.name: i for i in available_backends()}["echo"]
    assert (info.distribution, info.version) == ("futurekit-echo", "1.0")
    assert info.available and info.device_count == 2 and info.testing is False


def test_example_passes_the_conformance_kit(on_path):
    on_path("good")
    _build()
    from futurekit_echo import conformance_ops

    ran = check_backend("echo", ops=conformance_ops())
    assert ran[-1] == "data ordering" and "callback streams" in ran
    assert "data ordering" not in check_backend(get_backend("echo"), ["echo:1"])


# -- broken neighbours only warn ----------------------------------------------------------


def test_broken_plugins_beside_it_only_warn(on_path):
    on_path("good", "bad")
    caught = _build()
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 3, messages
    for name in ("broken-import", "broken-hook", "broken-garbage"):
        [message] = [m for m in messages if f"'{name}'" in m]
        assert "(distribution broken-plugins)" in message
    assert any("fk_test_no_such_module" in m for m in messages)
    assert any("hook exploded" in m for m in messages)
    assert any("not a BackendSpec" in m for m in messages)
    failures = {f.name: f for f in plugin_failures()}
    assert set(failures) == {"broken-import", "broken-hook", "broken-garbage"}
    assert {f.distribution for f in failures.values()} == {"broken-plugins"}
    # the rest works
    fut = Future(devices=["echo:0"])
    fut.set_result(1)
    assert fut.wait() == 1
    assert type(get_backend("sim")).__name__ == "SimBackend"


# -- the disable variables ----------------------------------------------------------------


def test_disable_plugins_by_name(on_path, monkeypatch):
    monkeypatch.setenv("FUTUREKIT_DISABLE_PLUGINS", "echo, broken-import,broken-hook")
    on_path("good", "bad")
    caught = _build()
    [warning] = caught  # only the plugin that was not disabled still warns
    assert "'broken-garbage'" in str(warning.message)
    assert "echo" not in known_device_types()
    assert {"echo", "broken-import", "broken-hook"} <= set(disabled_plugins())
    with pytest.raises(BackendUnavailableError, match="Unknown device type 'echo'"):
        Future(devices=["echo:0"])
    assert get_spec("sim") is not None  # built-ins are unaffected


def test_disable_autoload_skips_entry_points(on_path, monkeypatch):
    monkeypatch.setenv("FUTUREKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    on_path("good", "bad")
    assert _build() == []
    assert plugin_failures() == []
    assert "echo" not in known_device_types()
    assert get_spec("sim") is not None
    # a plugin can still be registered explicitly
    import futurekit_echo.plugin

    assert register(futurekit_echo.plugin, name="echo") == "echo"
    assert "echo" in known_device_types()
    unregister(name="echo")
    assert "echo" not in known_device_types()


def test_autoload_zero_means_enabled(on_path, monkeypatch):
    monkeypatch.setenv("FUTUREKIT_DISABLE_PLUGIN_AUTOLOAD", "0")
    on_path("good")
    assert "echo" in known_device_types()


# -- register / unregister ----------------------------------------------------------------


def test_register_and_unregister_errors(on_path):
    on_path()
    import futurekit_echo.plugin as plugin

    register(plugin, name="echo-by-hand")
    assert get_spec("echo") is not None
    with pytest.raises(ValueError):
        register(plugin, name="echo-by-hand")
    unregister(plugin)
    assert get_spec("echo") is None
    with pytest.raises(ValueError, match="not registered"):
        unregister(name="echo-by-hand")


def test_register_blocked_plugin_is_refused(on_path, monkeypatch):
    monkeypatch.setenv("FUTUREKIT_DISABLE_PLUGINS", "echo-blocked")
    on_path()
    import futurekit_echo.plugin as plugin

    with pytest.raises(ValueError, match="blocked by FUTUREKIT_DISABLE_PLUGINS"):
        register(plugin, name="echo-blocked")


# -- a real install ------------------------------------------------------------------------


def test_pip_installed_example_is_found(tmp_path, monkeypatch):
    pytest.importorskip("setuptools")
    source = tmp_path / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = tmp_path / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation"]
    cmd += ["--no-index", "--quiet", "--target", str(target), str(source)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        pytest.skip(f"pip could not build the example offline: {done.stderr[-500:]}")
    monkeypatch.delenv("FUTUREKIT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.syspath_prepend(str(target))
    reset()
    try:
        backend = get_backend("echo")
        assert Path(sys.modules[type(backend).__module__].__file__).is_relative_to(target)
        assert check_backend(backend)[-1] == "is_ready and synchronize"
    finally:
        reset()
        for mod in [m for m in sys.modules if m.startswith("futurekit_echo")]:
            del sys.modules[mod]
