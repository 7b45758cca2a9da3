"""The ``futurekit`` command line: backends, doctor, bench, help and bad arguments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import futurekit
from futurekit import cli
from futurekit.backends import BackendBase, BackendSpec, Device, _registry, hookimpl, register

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    _registry.reset()
    yield
    _registry.reset()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# -- fake backends for doctor ------------------------------------------------------------


class FakeBackend(BackendBase):
    """A host-only backend whose events can be made to fail or hang."""

    device_type = "fake"

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.release = threading.Event()

    def device_count(self) -> int:
        return 2

    def current_stream(self, device: Device) -> str:
        return f"stream-{device}"

    def record_event(self, stream: Any) -> str:
        if self.mode == "broken":
            raise RuntimeError("record_event exploded")
        return f"event-on-{stream}"

    def wait_event(self, stream: Any, event: Any) -> None:
        return None

    def query_event(self, event: Any) -> bool:
        return True

    def synchronize_event(self, event: Any) -> None:
        if self.mode == "hang":
            self.release.wait(10)

    def device_of(self, obj: Any) -> Device | None:
        return None


class Unavailable(FakeBackend):
    def unavailable_reason(self) -> str | None:
        return "the fake driver is not installed"


def plugin(name: str, backend: Any, *, extra: str | None = None) -> object:
    class Plugin:
        @hookimpl
        def futurekit_device_backends(self) -> Iterator[BackendSpec]:
            yield BackendSpec(
                name=name, device_type=backend.device_type, load=lambda: backend, extra=extra
            )

    return Plugin()


# -- --version, --help, no command -----------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--version"], capsys)
    assert code == 0
    assert out.startswith(f"futurekit {futurekit.__version__} (Python ")


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    for command in ("backends", "doctor", "bench"):
        assert command in out


@pytest.mark.parametrize("command", ["backends", "doctor", "bench"])
def test_command_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([command, "--help"], capsys)
    assert code == 0
    assert f"usage: futurekit {command}" in out


def test_no_command_prints_help_and_backend_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([], capsys)
    assert code == 0
    assert "usage: futurekit" in out
    assert "Backends on this machine" in out
    summary = out.split("Backends on this machine", 1)[1]
    assert "cpu" in summary and "available" in summary


# -- bad arguments ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["--nope"], "unrecognized arguments: --nope"),
        (["backends", "--table"], "unrecognized arguments: --table"),
        (["doctor", "--timeout", "soon"], "expected a number of seconds, got 'soon'"),
        (["doctor", "--timeout", "0"], "expected a positive number of seconds"),
        (["bench", "--json"], "expected one argument"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(argv, capsys)
    assert code == 2
    assert message in err
    assert "usage: futurekit" in err


def test_argv_must_be_a_sequence_of_strings() -> None:
    with pytest.raises(TypeError, match="argv must be a sequence"):
        cli.main("backends")  # type: ignore[arg-type]


# -- backends ----------------------------------------------------------------------------


def test_backends_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["backends"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "NAME",
        "TYPE",
        "PRIORITY",
        "DEVICES",
        "PROVIDED",
        "BY",
        "AVAILABLE",
    ]
    cpu = next(line for line in lines if line.startswith("cpu "))
    assert cpu.split()[:4] == ["cpu", "cpu", "0", "1"]
    assert f"futurekit {futurekit.__version__}" in cpu and cpu.rstrip().endswith("yes")
    assert any(line.startswith("sim (testing)") for line in lines)


def test_backends_json_matches_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["backends", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["futurekit"] == futurekit.__version__
    names = {b["name"]: b for b in data["backends"]}
    assert names["cpu"]["available"] is True and names["cpu"]["device_count"] == 1
    assert names["sim"]["testing"] is True
    expected = {"name", "device_type", "priority", "available", "reason", "device_count"}
    assert expected | {"distribution", "version", "extra"} <= set(names["cpu"])
    for b in data["backends"]:
        assert b["available"] or b["reason"], b
    assert data["failures"] == [] and data["disabled"] == []


def test_backends_shows_unavailable_reason_and_extra(capsys: pytest.CaptureFixture[str]) -> None:
    register(plugin("fake-off", Unavailable(), extra="fakeextra"), name="fake-off-plugin")
    code, out, _ = run(["backends"], capsys)
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("fake-off"))
    assert "no: the fake driver is not installed [extra: futurekit[fakeextra]]" in line


def test_backends_lists_failed_and_disabled_plugins(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUTUREKIT_DISABLE_PLUGINS", "sim")
    _registry.reset()

    class Broken:
        @hookimpl
        def futurekit_device_backends(self) -> Iterator[BackendSpec]:
            raise ImportError("the broken plugin's library is missing")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _registry.PluginLoadWarning)
        register(Broken(), name="broken-plugin")
        code, out, _ = run(["backends"], capsys)
    assert code == 0
    assert "Plugins that failed to load:" in out
    assert "broken-plugin" in out and "the broken plugin's library is missing" in out
    assert "Disabled by FUTUREKIT_DISABLE_PLUGINS: sim" in out
    assert not any(line.startswith("sim ") for line in out.splitlines())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _registry.PluginLoadWarning)
        code, out, _ = run(["backends", "--json"], capsys)
    data = json.loads(out)
    assert data["disabled"] == ["sim"]
    assert [f["name"] for f in data["failures"]] == ["broken-plugin"]


# -- doctor ------------------------------------------------------------------------------


def test_doctor_passes_on_cpu_and_sim(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["doctor"], capsys)
    assert code == 0, out
    assert "[PASS] cpu (cpu)" in out
    assert "[PASS] sim (sim)" in out
    assert "sim:0: ok" in out and "value held a Buffer" in out
    assert "checking sim (sim)" in err  # progress goes to stderr
    assert "0 failed" in out


def test_doctor_lists_unavailable_backends_with_their_extra(
    capsys: pytest.CaptureFixture[str],
) -> None:
    register(plugin("fake-off", Unavailable(), extra="fakeextra"), name="fake-off-plugin")
    code, out, _ = run(["doctor"], capsys)
    assert code == 0  # unavailable is not a failure
    assert (
        "[----] fake-off (fake): the fake driver is not installed; to use it: "
        "pip install 'futurekit[fakeextra]'" in out
    )


def test_doctor_fails_on_a_broken_backend(capsys: pytest.CaptureFixture[str]) -> None:
    register(plugin("fake-broken", FakeBackend("broken")), name="fake-broken-plugin")
    code, out, _ = run(["doctor"], capsys)
    assert code == 1
    assert "[FAIL] fake-broken (fake): 0/2 devices passed" in out
    assert "fake:0: FAILED: RuntimeError: record_event exploded" in out
    assert "[PASS] sim (sim)" in out


def test_doctor_passes_a_working_custom_backend(capsys: pytest.CaptureFixture[str]) -> None:
    register(plugin("fake-ok", FakeBackend()), name="fake-ok-plugin")
    code, out, _ = run(["doctor", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["ok"] is True
    report = next(b for b in data["backends"] if b["name"] == "fake-ok")
    assert report["verdict"] == "pass"
    assert [d["device"] for d in report["devices"]] == ["fake:0", "fake:1"]
    assert all(d["ok"] and d["buffer"] is None for d in report["devices"])


def test_doctor_times_out_on_a_hung_backend(capsys: pytest.CaptureFixture[str]) -> None:
    backend = FakeBackend("hang")
    register(plugin("fake-hang", backend), name="fake-hang-plugin")
    try:
        code, out, _ = run(["doctor", "--timeout", "0.2", "--json"], capsys)
    finally:
        backend.release.set()
    assert code == 1
    data = json.loads(out)
    assert data["ok"] is False
    report = next(b for b in data["backends"] if b["name"] == "fake-hang")
    assert report["verdict"] == "fail"
    assert "timed out after 0.2 s" in report["devices"][0]["detail"]


# -- bench -------------------------------------------------------------------------------


def test_bench_delegates_to_bench_module(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bool, str | None]] = []

    def run_cli(quick: bool, json_path: str | None) -> int:
        calls.append((quick, json_path))
        print("benchmark table")
        return 0

    fake = types.ModuleType("futurekit._bench")
    fake.run_cli = run_cli  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "futurekit._bench", fake)
    monkeypatch.setattr(futurekit, "_bench", fake, raising=False)
    code, out, _ = run(["bench", "--quick", "--json", "out.json"], capsys)
    assert code == 0 and "benchmark table" in out
    code, _, _ = run(["bench"], capsys)
    assert code == 0
    assert calls == [(True, "out.json"), (False, None)]


def test_bench_without_bench_module_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "futurekit._bench", None)  # import raises ImportError
    monkeypatch.delattr(futurekit, "_bench", raising=False)
    code, _, err = run(["bench", "--quick"], capsys)
    assert code == 2
    assert "benchmark module could not be imported" in err
    assert "futurekit[bench]" in err


# -- python -m futurekit -----------------------------------------------------------------


def test_python_dash_m_futurekit() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run(
        [sys.executable, "-m", "futurekit", "backends", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "cpu" in {b["name"] for b in json.loads(proc.stdout)["backends"]}
    proc = subprocess.run(
        [sys.executable, "-m", "futurekit", "nonsense"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr
