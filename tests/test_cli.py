"""The ``futurekit`` command line: backends, doctor, bench, help, bad arguments, pipes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import futurekit
from futurekit import Future
from futurekit import _cli as cli
from futurekit._cli.bench import Row, harness, suite
from futurekit._cli.main import EXIT_BROKEN_PIPE
from futurekit.backends import BackendBase, BackendSpec, Device, _registry, hookimpl, register
from futurekit.backends._contract import contract

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


def test_backends_shows_unavailable_reason_and_extra_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    register(plugin("fake-off", Unavailable(), extra="fakeextra"), name="fake-off-plugin")
    register(plugin("fake-off2", Unavailable(), extra="fakeextra"), name="fake-off2-plugin")
    code, out, _ = run(["backends"], capsys)
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("fake-off "))
    assert line.rstrip().endswith("no: the fake driver is not installed")
    # the hint is said once, below the table, for every backend of the extra
    assert out.count("fakeextra") == 1  # not repeated in each row
    assert "  fakeextra: fake-off, fake-off2" in out
    assert "pip install 'futurekit[EXTRA]'" in out


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
    [line] = [x for x in out.splitlines() if x.startswith("[----] fake-off (fake):")]
    assert line.startswith("[----] fake-off (fake): the fake driver is not installed; ")
    assert "futurekit[fakeextra]" in line  # the missing extra, once
    assert "pip install '.[fakeextra]'" in line  # from a checkout: not on PyPI yet


def test_doctor_gives_an_install_hint_once_when_the_reason_has_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from futurekit.backends._spec import install_hint

    class NotInstalled(FakeBackend):  # as torch's: "torch is not installed: install ..."
        def unavailable_reason(self) -> str | None:
            return f"fakelib is not installed: {install_hint('fakeextra')}"

    register(plugin("fake-off", NotInstalled(), extra="fakeextra"), name="fake-off-plugin")
    code, out, _ = run(["doctor"], capsys)
    assert code == 0
    [line] = [x for x in out.splitlines() if x.startswith("[----] fake-off (fake):")]
    assert line.startswith("[----] fake-off (fake): fakelib is not installed: install the ")
    assert line.count("futurekit[fakeextra]") == 1, line
    assert line.count("pip install '.[fakeextra]'") == 1, line


def test_doctor_counts_a_plugin_that_failed_to_load_as_a_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Broken:
        @hookimpl
        def futurekit_device_backends(self) -> Iterator[BackendSpec]:
            raise ImportError("the broken plugin's library is missing")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _registry.PluginLoadWarning)
        register(Broken(), name="broken-plugin")
        code, out, _ = run(["doctor"], capsys)
        assert code == 1
        assert "[FAIL] plugin broken-plugin" in out
        assert "the broken plugin's library is missing" in out
        assert "1 plugin(s) failed to load" in out
        assert "[PASS] sim (sim)" in out  # the working backends are still checked

        code, out, _ = run(["doctor", "--json"], capsys)
    assert code == 1
    data = json.loads(out)
    assert data["ok"] is False
    assert [f["name"] for f in data["failures"]] == ["broken-plugin"]
    assert "library is missing" in data["failures"][0]["error"]
    assert all(b["verdict"] != "fail" for b in data["backends"])


def test_doctor_json_lists_no_failures_when_all_plugins_load(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(["doctor", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["ok"] is True and data["failures"] == []


def test_doctor_fails_on_a_broken_backend(capsys: pytest.CaptureFixture[str]) -> None:
    register(plugin("fake-broken", FakeBackend("broken")), name="fake-broken-plugin")
    code, out, _ = run(["doctor"], capsys)
    assert code == 1
    assert (
        "[FAIL] fake-broken (fake): backend 'fake-broken' (plugin 'fake-broken-plugin'): "
        "conformance failed, 2/2 devices passed"
    ) in out
    assert (
        "conformance: FAILED: check 'events' failed: record_event() raised RuntimeError: "
        "record_event exploded; record_event(stream) must enqueue a new event"
    ) in out
    # a plain value records no event: the round trips pass, the kit does not
    assert "fake:0: ok: " in out and "give the BackendSpec a make_buffer" in out
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


class SetUpPerThread(FakeBackend):
    """Works only in threads where it was set up (cuda-python's first bug, in small)."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()
        self.local.ready = True  # set up in the thread that loads the backend

    def current_stream(self, device: Device) -> str:
        if not getattr(self.local, "ready", False):
            raise RuntimeError(f"Device {device.index} is not yet initialized")
        return super().current_stream(device)


def test_doctor_fails_a_backend_set_up_only_in_the_thread_that_loaded_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    backend = SetUpPerThread()
    register(plugin("fake-local", backend), name="fake-local-plugin")
    Future(devices=["fake:0"], backend="fake-local").set_result(1)  # fine in this thread
    code, out, _ = run(["doctor"], capsys)
    assert code == 1
    who = "backend 'fake-local' (plugin 'fake-local-plugin')"
    assert f"[FAIL] fake-local (fake): {who}: conformance failed, 0/2 devices passed" in out
    fix = contract("current_stream")
    assert (
        "fake:0: FAILED: in a new threading.Thread, Future.wait() on the then() child raised "
        "RuntimeError: Device 0 is not yet initialized (from the backend's current_stream()); "
        f"{fix}"
    ) in out


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
    assert report["conformance"] == (
        "check 'events' failed: synchronize_event() did not finish within 0.2 s (a hang?); "
        + contract("synchronize_event")
    )


# -- bench -------------------------------------------------------------------------------


def _row(case: str, note: str = "") -> Row:
    return Row(case, 1.0, 3.0, None, 3.0, None, "\u2265 2\u00d7", True, note,
               target_kind="speedup", target_value=2.0)  # fmt: skip


@pytest.fixture
def fake_suite(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, bool]]:
    """Replace the suite by two fixed rows; records the (quick, tiny) of each run."""
    calls: list[tuple[bool, bool]] = []

    def fake_run(quick: bool = False, progress: Any = None, *, tiny: bool = False) -> list[Row]:
        calls.append((quick, tiny))
        progress("[1/1] fake case")
        return [_row("fake case"), _row("other case")]

    monkeypatch.setattr(suite, "run", fake_run)
    return calls


def test_bench_prints_the_table_and_writes_json(
    fake_suite: list[tuple[bool, bool]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "out" / "bench.json"
    code, out, err = run(["bench", "--quick", "--json", str(path)], capsys)
    assert code == 0
    assert fake_suite == [(True, False)]
    assert "| fake case | 1.00 µs | 3.00 µs |" in out
    assert "medians of alternating runs (quick mode)." in out
    assert "[1/1] fake case" in err and f"wrote {path}" in err  # progress on stderr
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["quick"] is True
    assert [r["case"] for r in data["rows"]] == ["fake case", "other case"]
    code, _, _ = run(["bench"], capsys)
    assert code == 0 and fake_suite[-1] == (False, False)


def test_bench_says_once_that_torch_is_missing(
    fake_suite: list[tuple[bool, bool]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(harness.cases, "torch_missing", lambda: "ModuleNotFoundError: torch")
    code, out, _ = run(["bench", "--quick"], capsys)
    assert code == 0
    assert out.count("torch columns are empty") == 1
    assert "Without torch (ModuleNotFoundError: torch)" in out


def test_bench_exits_1_when_a_case_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = suite.error_row("case", RuntimeError("boom"))
    monkeypatch.setattr(suite, "run", lambda quick=False, progress=None, tiny=False: [broken])
    code, out, _ = run(["bench"], capsys)
    assert code == 1
    assert "error: RuntimeError: boom" in out


def test_bench_plot_without_matplotlib_exits_2_before_running(
    fake_suite: list[tuple[bool, bool]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real = harness.importlib.util.find_spec
    monkeypatch.setattr(
        harness.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real(name, *a),
    )
    code, _, err = run(["bench", "--plot", str(tmp_path / "p.png")], capsys)
    assert code == 2
    assert "--plot needs matplotlib" in err and "futurekit[bench]" in err
    assert fake_suite == []


def test_benchmarks_run_py_uses_the_same_harness(
    fake_suite: list[tuple[bool, bool]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "benchmarks.md"
    page.write_text("# B\n<!-- bench-table:start -->\nold\n<!-- bench-table:end -->\ntail\n")
    root = tmp_path / "checkout"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "benchmarks.md").write_text(page.read_text())
    code = harness.checkout_main(root, ["--quick", "--no-plot", "--update-docs"])
    out, _ = capsys.readouterr()
    assert code == 0 and "| fake case |" in out
    assert (root / "benchmarks/results/latest.json").exists()  # the checkout's default path
    text = (root / "docs" / "benchmarks.md").read_text()
    assert "old" not in text and "| fake case |" in text and text.endswith("tail\n")
    assert "Measured " in text and "(quick mode)" in text


# -- python -m futurekit -----------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [["--help"], [], ["backends"], ["backends", "--json"], ["doctor"], ["doctor", "--json"],
     ["bench", "--tiny"]],
    ids=" ".join,
)  # fmt: skip
def test_a_closed_pipe_gives_no_traceback(argv: list[str]) -> None:
    """``futurekit ... | head -1``: the reader goes away before the output is written.

    ``doctor`` runs with every plugin, as installed; the other commands without the
    torch and cuda-python plugins, whose availability check imports torch (~2 s a
    process): the pipe is handled in one place, whatever the backends.
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    env.pop("FUTUREKIT_DISABLE_PLUGINS", None)
    if argv != ["doctor"]:
        env["FUTUREKIT_DISABLE_PLUGINS"] = "futurekit.backends.torch,futurekit.backends.cuda"
    # the reader is gone before the command starts (as a `head` that already quit): not
    # closed after the start, which a slow machine could let the command outrun
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "futurekit", *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=env,
        )
    finally:
        os.close(write_end)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    # argparse's --help swallows the write error itself (and exits 0)
    assert code == (0 if argv == ["--help"] else EXIT_BROKEN_PIPE), err


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
