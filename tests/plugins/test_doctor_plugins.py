"""Bad plugins fail ``futurekit doctor`` the way they would fail a program, and say why.

Each plugin below passes ``futurekit backends``. ``futurekit doctor`` runs the
conformance kit and a round trip through a ``Future`` from a new thread and from a
``concurrent.futures`` worker, so each must fail it with a message naming the
plugin, its distribution, the backend method and the fix; and the program's own
``Future`` must fail with an error that names the plugin (or the plugin's own
error, from the plugin's code), never an ``AttributeError`` from inside futurekit.
"""

from __future__ import annotations

import json
import sys
import threading
import traceback
import warnings
from typing import Any

import pytest

from futurekit import BackendError, BackendUnavailableError, Device, Future
from futurekit._cli import main
from futurekit.backends import PluginLoadWarning
from futurekit.backends._contract import contract

from .conftest import Install, module_name

pytestmark = pytest.mark.timeout(120)

TEMPLATE = """
import threading

from futurekit.backends import BackendBase, BackendSpec, Device, hookimpl

class Buffer:
    def __init__(self, device):
        self.device = device

class QBackend(BackendBase):
    device_type = "qdev"
    def device_count(self):
        return {count}
    def current_stream(self, device):
        if {off_main} and threading.current_thread() is not threading.main_thread():
            raise RuntimeError("qdev streams were not set up in this thread")
        return ("stream", device)
    def record_event(self, stream): return ("event", stream)
    def wait_event(self, stream, event): return None
    def query_event(self, event): return True
    def synchronize_event(self, event): return None
    def device_of(self, obj):
        if isinstance(obj, Buffer):
            return {own}
        return {foreign}

@hookimpl
def futurekit_device_backends():
    yield BackendSpec(name="qdev", device_type="qdev", load=QBackend, make_buffer={make})
"""

GOOD = {
    "count": "2",
    "off_main": "False",
    "own": "obj.device",
    "foreign": "None",
    "make": "Buffer",
}

#: How the doctor names the plugin's backend.
NAMED = "backend 'qdev' (plugin 'qdev', distribution futurekit-qdev 1.0)"


def plugin(**changes: str) -> str:
    return TEMPLATE.format(**{**GOOD, **changes})


@pytest.fixture
def qdev(install: Install, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Installs the qdev plugin with ``changes``; returns its module (for its Buffer)."""
    # only cpu and the plugin: the doctor runs quicker without sim and torch
    builtins = ["sim", "torch", "cuda"]
    monkeypatch.setenv(
        "FUTUREKIT_DISABLE_PLUGINS", ",".join(f"futurekit.backends.{b}" for b in builtins)
    )

    def setup(**changes: str) -> Any:
        install("futurekit-qdev", {"qdev": plugin(**changes)})
        __import__(module_name("futurekit-qdev", "qdev"))
        return sys.modules[module_name("futurekit-qdev", "qdev")]

    return setup


def doctor(capsys: pytest.CaptureFixture[str]) -> tuple[int, str, dict[str, Any]]:
    """Run ``futurekit doctor`` as text, then as JSON: the status, the text, the data."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)  # the failure is reported too
        code = main(["doctor", "--timeout", "10"])
        text = capsys.readouterr().out
        json_code = main(["doctor", "--json", "--timeout", "10"])
        data = json.loads(capsys.readouterr().out)
    assert json_code == code
    return code, text, data


def report(data: dict[str, Any]) -> dict[str, Any]:
    [found] = [b for b in data["backends"] if b["name"] == "qdev"]
    return found


def in_new_thread(fn: Any) -> BaseException | None:
    """What ``fn()`` raised in a new thread (None if nothing)."""
    box: list[BaseException | None] = [None]

    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            box[0] = exc

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(30)
    assert not worker.is_alive()
    return box[0]


# -- the plugins that must fail -----------------------------------------------------------


def test_a_good_plugin_passes(qdev: Any, capsys: pytest.CaptureFixture[str]) -> None:
    qdev()
    code, text, data = doctor(capsys)
    assert code == 0, text
    assert f"[PASS] qdev (qdev): {NAMED}: 11 conformance checks passed, 2/2 devices" in text
    assert report(data)["devices"][0]["buffer"] == "Buffer"


def test_device_of_returning_a_str_fails_doctor(
    qdev: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    module = qdev(own="str(obj.device)")
    code, text, data = doctor(capsys)
    assert code == 1
    assert f"[FAIL] qdev (qdev): {NAMED}: conformance failed, 0/2 devices passed" in text
    found = report(data)
    assert found["conformance"] == (
        "check 'device_of' failed: device_of() of a buffer made on qdev:0 returned 'qdev:0'; "
        + contract("device_of")
    )
    detail = found["devices"][0]["detail"]
    assert detail.startswith("in a new threading.Thread, Future.wait() raised BackendError: ")
    assert f"{NAMED}: device_of() returned 'qdev:0' (str); it must return a futurekit.Device" in (
        detail
    )
    # the program's wait() names the plugin too, in any thread; never an AttributeError
    for where in ("main", "new thread"):
        fut: Future[Any] = Future(devices=["qdev:0"])
        fut.set_result(module.Buffer(Device("qdev", 0)))
        error = in_new_thread(fut.wait) if where == "new thread" else _raised(fut.wait)
        assert isinstance(error, BackendError), error
        assert f"{NAMED}: device_of() returned 'qdev:0' (str)" in str(error)


def test_device_of_claiming_foreign_objects_fails_doctor_without_buffers(
    qdev: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    qdev(own="str(obj.device)", foreign="'qdev:0'", make="None")
    code, _, data = doctor(capsys)
    assert code == 1
    assert report(data)["conformance"] == (
        "check 'device_of' failed: device_of(None) returned 'qdev:0'; it must be None for "
        f"non-buffers; {contract('device_of')}"
    )


def test_a_plain_value_is_said_to_leave_device_of_untried(
    qdev: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # no make_buffer and a device_of that is wrong only for its own buffers: nothing
    # can make one, so the doctor passes it, and says what it could not try
    qdev(own="str(obj.device)", make="None")
    code, text, _ = doctor(capsys)
    assert code == 0
    assert "device_of() and events were not tried on a real buffer" in text
    assert "give the BackendSpec a make_buffer" in text


def test_device_count_returning_a_str_fails_doctor(
    qdev: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    qdev(count="'2'")
    code, text, data = doctor(capsys)
    assert code == 1
    fix = contract("device_count")
    assert (
        "[FAIL] plugin qdev (distribution futurekit-qdev), backend qdev: "
        f"device_count() returned '2' (str); {fix}"
    ) in text
    [failure] = data["failures"]
    assert failure["error"] == "device_count() returned '2' (str)" and failure["fix"] == fix
    assert "qdev" not in {b["name"] for b in data["backends"]}  # not listed as available
    # the program is told at Future(), naming the plugin, the method and the fix
    error = _raised(lambda: Future(devices=["qdev:0"]))
    assert isinstance(error, BackendUnavailableError) and isinstance(error, BackendError)
    message = str(error)
    assert "plugin 'qdev' (distribution futurekit-qdev), backend 'qdev'" in message
    assert f"device_count() returned '2' (str); {fix}" in message


def test_current_stream_failing_off_the_main_thread_fails_doctor(
    qdev: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    module = qdev(off_main="True")
    code, text, data = doctor(capsys)
    assert code == 1
    found = report(data)
    fix = contract("current_stream")
    assert found["conformance"] == (
        "check 'streams' failed: current_stream() raised RuntimeError: qdev streams were not "
        f"set up in this thread; {fix}"
    )
    assert found["devices"][0]["detail"] == (
        "in a new threading.Thread, Future.wait() raised RuntimeError: qdev streams were not "
        f"set up in this thread (from the backend's current_stream()); {fix}"
    )
    assert f"[FAIL] qdev (qdev): {NAMED}: conformance failed, 0/2 devices passed" in text
    # the main thread works; a new thread gets the plugin's own error, raised in the
    # plugin's code (the traceback ends there), not an error from inside futurekit
    fut: Future[Any] = Future(devices=["qdev:0"])
    fut.set_result(module.Buffer(Device("qdev", 0)))
    fut.wait()

    def complete_and_wait() -> None:
        other: Future[Any] = Future(devices=["qdev:0"])
        other.set_result(module.Buffer(Device("qdev", 0)))
        other.wait()

    error = in_new_thread(complete_and_wait)
    assert isinstance(error, RuntimeError) and not isinstance(error, AttributeError)
    assert str(error) == "qdev streams were not set up in this thread"
    last = traceback.extract_tb(error.__traceback__)[-1]
    assert last.filename == module.__file__ and last.name == "current_stream"


def _raised(fn: Any) -> BaseException | None:
    try:
        fn()
    except BaseException as exc:
        return exc
    return None
