"""The benchmark suite runs and produces well-formed rows (no timing is asserted)."""

from __future__ import annotations

import gc
import json
import math
from dataclasses import fields
from typing import Any

import pytest

from futurekit._cli import bench as _bench
from futurekit._cli.bench import Row, cases, suite
from futurekit._cli.bench.report import check_rows

pytestmark = pytest.mark.timeout(240)


FROZEN: dict[str, int] = {}


@pytest.fixture(scope="module")
def tiny_run() -> tuple[list[Row], list[str]]:
    messages: list[str] = []
    refreeze = gc.get_freeze_count() > 0  # tests/conftest.py froze the heap: give it back
    gc.unfreeze()
    try:
        rows = _bench.run(quick=True, progress=messages.append, tiny=True)
        FROZEN["after"] = gc.get_freeze_count()
    finally:
        if refreeze:
            gc.freeze()
    return rows, messages


def test_the_run_leaves_the_collector_as_it_found_it(
    tiny_run: tuple[list[Row], list[str]],
) -> None:
    # the run freezes the heap it found (so that its gc.collect() calls are cheap) and
    # gives it back: nothing of the caller's stays out of the collector's sight
    assert FROZEN["after"] == 0


def _number_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isfinite(value) and value >= 0)


def test_rows_are_well_formed(tiny_run: tuple[list[Row], list[str]]) -> None:
    rows, messages = tiny_run
    assert len(rows) == 16
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
                   "device path (sim)", "value walk vs pickling", "1 buffer: create",
                   "each further buffer", "then() + set_result + wait",
                   "collect_all of 100 + set_result each + wait (CPU proxy)"):  # fmt: skip
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


def test_targets_are_in_the_case_definitions() -> None:
    targets = {c.name: c.target for c in suite.SPEED_CASES}
    assert targets == {
        "create + set_result + wait": 6,
        "add_done_callback, per callback": 3.5,
        "then chain, per link ({chain_links:,} links)": 4,
        "then on a completed future": 6,
        "collect_all over pending futures, per future": 3,
        "wait_all over completed futures, per future": 12,
        "cross-thread round trip": 1.0,
    }
    assert [c.name for c in suite.SPEED_CASES if c.load_dependent] == ["cross-thread round trip"]
    assert suite.IMPORT_MS == 15
    assert suite.CHAIN_PEAK_MB_PER_MILLION_LINKS == 200


def test_rows_carry_their_targets(tiny_run: tuple[list[Row], list[str]]) -> None:
    rows, _ = tiny_run
    by_case = {r.case: r for r in rows}
    assert by_case["create + set_result + wait"].target == "\u2265 6\u00d7"
    cross = by_case["cross-thread round trip"]
    assert "load-dependent" in cross.target and "depends on machine load" in cross.note
    assert by_case["import futurekit"].target.startswith("< 15 ms")
    chain = next(r for r in rows if r.case.endswith("-link chain, peak memory"))
    assert chain.unit == "MB" and chain.target_kind == "max"
    # tiny run: 2,000 links get 200 MB per 10**6 links, i.e. 0.4 MB
    assert chain.target_value == pytest.approx(0.4)
    # without torch the torch columns are empty, but no row's note says so
    assert not any("torch unavailable" in r.note for r in rows)


def test_torch_missing_is_a_reason_or_none() -> None:
    missing = cases.torch_missing()
    assert missing is None or ("Error" in missing)


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(TypeError, match="progress"):
        _bench.run(quick=True, progress=42, tiny=True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="quick"):
        _bench.run(quick="yes", tiny=True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="rows"):
        _bench.format_table("not rows")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Row"):
        _bench.to_json([1, 2])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="Row"):
        check_rows([_bench.Row("x", None, None, None, None, None, "", None), 3])


def test_the_import_row_is_the_best_of_its_fresh_interpreters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from futurekit._cli.bench import probes

    imports = iter([0.050, 0.030, 0.010, 0.020])  # the warm-up child, then three
    bares = iter([0.009, 0.007, 0.008])
    children: list[str] = []

    def child(code: str, env: dict[str, str]) -> tuple[float, str]:
        children.append(code)
        if code == "pass":
            return next(bares), ""
        seconds = next(imports)
        return seconds + 0.01, f"{seconds!r}\n\n"

    monkeypatch.setattr(probes, "_python", child)
    res = probes.import_cost(3, with_torch=False)
    assert len(children) == 7  # a warm-up, then three bare and three importing children
    assert res.reps == 3
    assert res.in_process_s == pytest.approx(0.010)
    assert res.import_wall_s == pytest.approx(0.020)
    assert res.bare_wall_s == pytest.approx(0.007)
    assert suite.PLANS["quick"].import_reps == 5  # futurekit bench --quick: best of 5
