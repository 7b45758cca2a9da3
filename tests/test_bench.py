"""The benchmark suite runs and produces well-formed rows (no timing is asserted)."""

from __future__ import annotations

import json
import math
from dataclasses import fields
from typing import Any

import pytest

from futurekit import _bench
from futurekit._bench import Row

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def tiny_run() -> tuple[list[Row], list[str]]:
    messages: list[str] = []
    rows = _bench.run(quick=True, progress=messages.append, tiny=True)
    return rows, messages


def _number_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isfinite(value) and value >= 0)


def test_rows_are_well_formed(tiny_run: tuple[list[Row], list[str]]) -> None:
    rows, messages = tiny_run
    assert len(rows) == 12
    assert all(isinstance(r, Row) for r in rows)
    assert len({r.case for r in rows}) == len(rows)
    errors = [r for r in rows if r.note.startswith("error:")]
    assert not errors, errors
    for r in rows:
        assert r.case and r.target and r.unit
        for name in ("futurekit_us", "torch_us", "concurrent_us"):
            assert _number_or_none(getattr(r, name)), (r.case, name)
        assert r.met is None or isinstance(r.met, bool)
        assert r.target_kind in ("", "speedup", "max")
        if r.target_kind:
            assert r.target_value is not None and r.target_value > 0
        for other, speedup in ((r.torch_us, r.speedup_vs_torch),
                               (r.concurrent_us, r.speedup_vs_concurrent)):  # fmt: skip
            if other is None or r.futurekit_us is None:
                assert speedup is None
            else:
                assert speedup == pytest.approx(other / r.futurekit_us)
    assert messages and all(isinstance(m, str) for m in messages)


def test_every_case_is_present(tiny_run: tuple[list[Row], list[str]]) -> None:
    rows, _ = tiny_run
    text = " / ".join(r.case for r in rows)
    for needle in ("create + set_result + wait", "add_done_callback", "then chain",
                   "then on a completed future", "collect_all", "wait_all", "cross-thread",
                   "import futurekit", "memory per pending future", "-link chain",
                   "device path (sim)", "value walk vs pickling"):  # fmt: skip
        assert needle in text
    by_case = {r.case: r for r in rows}
    assert by_case["import futurekit"].unit == "ms"
    assert "none of torch, cuda, pluggy" in by_case["import futurekit"].note
    memory = by_case["memory per pending future with one callback"]
    assert memory.unit == "B" and memory.futurekit_us is not None and memory.futurekit_us > 0
    # the futurekit column is filled on every timed row
    for r in rows:
        if r.target_kind == "speedup" or r.unit in ("ms", "B", "s"):
            assert r.futurekit_us is not None, r.case


def test_table_and_json(tiny_run: tuple[list[Row], list[str]]) -> None:
    rows, _ = tiny_run
    table = _bench.format_table(rows)
    lines = table.splitlines()
    assert len(lines) == len(rows) + 2
    for r in rows:
        assert r.case in table
    data = json.loads(json.dumps(_bench.to_json(rows)))
    assert data["fields"] == [f.name for f in fields(Row)]
    assert len(data["rows"]) == len(rows)
    for key in ("cpu", "python", "torch", "date", "futurekit"):
        assert key in data["machine"]


def test_run_cli_prints_and_writes_json(
    tiny_run: tuple[list[Row], list[str]],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows, _ = tiny_run
    seen: list[bool] = []

    def fake_run(quick: bool = False, progress: Any = None, *, tiny: bool = False) -> list[Row]:
        seen.append(quick)
        if progress is not None:
            progress("running")
        return rows

    monkeypatch.setattr(_bench, "run", fake_run)
    path = tmp_path / "out" / "bench.json"
    assert _bench.run_cli(True, str(path)) == 0
    assert seen == [True]
    out, err = capsys.readouterr()
    assert "create + set_result + wait" in out
    assert "running" in err
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["quick"] is True
    assert len(data["rows"]) == len(rows)


def test_run_cli_reports_failed_case(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = _bench._error_row("case", RuntimeError("boom"))
    monkeypatch.setattr(_bench, "run", lambda quick=False, progress=None: [broken])
    assert _bench.run_cli(False, None) == 1
    assert "boom" in capsys.readouterr().out


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(TypeError, match="progress"):
        _bench.run(quick=True, progress=42, tiny=True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="quick"):
        _bench.run(quick="yes", tiny=True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="rows"):
        _bench.format_table("not rows")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Row"):
        _bench.to_json([1, 2])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="json_path"):
        _bench.run_cli(True, 3)  # type: ignore[arg-type]
