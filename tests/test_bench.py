"""The benchmark runs end to end and reports every measurement; nothing here judges speed.

``python -m bench core --quick --json FILE`` runs once, as a real process from the
repository root; the tests read its exit status, its output and its JSON. Speed
targets are the benchmark's business (a MISS still exits 0), never a test's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.report import INFO, MISS, PASS, Result, Target, Timing, clean_runs, exit_status, format_table, interleaved
from tests.conftest import REPO

EXPECTED = {
    "header validation": ("headers/s", True),
    "block connect": ("sigs/s", True),
    "block accept (SQLite)": ("sigs/s", False),
    "signature cache": ("sigs/s", True),
    "reorg depth 10": ("s", True),
    "memory: peak RSS growth": ("bytes", False),
    "memory: Python heap peak": ("bytes", False),
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench") / "out.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "core", "--quick", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,  # only so a hung run fails instead of blocking the suite; no assertion on speed
        check=False,
    )
    assert done.returncode == 0, f"bench exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done, json.loads(out.read_text())


def by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {result["name"]: result for result in document["results"]}


def test_quick_run_reports_every_measurement_once(quick_run: tuple[Any, dict[str, Any]]) -> None:
    _, document = quick_run
    names = [result["name"] for result in document["results"]]
    assert sorted(names) == sorted(EXPECTED)
    assert document["suites"] == ["core"]
    assert document["quick"] is True
    assert [line.split(":")[0] for line in document["machine"]] == ["start", "end"]


def test_every_result_has_positive_figures_and_their_ratio(quick_run: tuple[Any, dict[str, Any]]) -> None:
    _, document = quick_run
    for name, result in by_name(document).items():
        unit, has_target = EXPECTED[name]
        assert result["suite"] == "core"
        assert result["unit"] == unit, name
        assert result["value"] > 0, name
        assert result["baseline"] > 0, name
        assert result["ratio"] > 0, name
        assert result["ratio"] == pytest.approx(result["value"] / result["baseline"]), name
        assert result["measures"] and result["baseline_measures"], name
        if unit == "bytes":  # not a timing
            assert result["cpu_ratio"] is None, name
        else:
            assert result["cpu_value"] > 0 and result["cpu_baseline"] > 0, name
            assert result["cpu_ratio"] == pytest.approx(result["cpu_value"] / result["cpu_baseline"]), name
        if has_target:
            target = Target(result["target"]["op"], result["target"]["bound"])
            assert result["status"] == (PASS if target.met(result["ratio"]) else MISS), name
        else:
            assert result["target"] is None, name
            assert result["status"] == INFO, name


def test_targets_are_the_ones_asked_for(quick_run: tuple[Any, dict[str, Any]]) -> None:
    _, document = quick_run
    targets = {name: r["target"] for name, r in by_name(document).items() if r["target"] is not None}
    assert targets == {
        "header validation": {"op": ">=", "bound": 0.5},
        "block connect": {"op": ">=", "bound": 0.8},
        "signature cache": {"op": ">=", "bound": 5},
        "reorg depth 10": {"op": "<=", "bound": 1.5},
    }


def test_quick_sizes_are_recorded(quick_run: tuple[Any, dict[str, Any]]) -> None:
    _, document = quick_run
    results = by_name(document)
    assert results["header validation"]["details"]["headers"] == 1_000
    assert results["block connect"]["details"]["signatures"] == 1_500
    assert results["block connect"]["details"]["coincurve_preparsed_keys_sigs_per_s"] > 0
    assert results["signature cache"]["details"]["signatures"] == 1_500
    assert results["reorg depth 10"]["details"]["median_long_s"] > 0
    for name in ("header validation", "block connect", "signature cache", "reorg depth 10"):
        details = results[name]["details"]
        assert details["rounds"] >= 3, name  # --quick still repeats every timing
        clean = [value for key, value in details.items() if key.startswith("clean_runs_")]
        assert len(clean) >= 2 and all(0 <= n <= details["rounds"] for n in clean), name
    for name in ("memory: peak RSS growth", "memory: Python heap peak"):
        details = results[name]["details"]
        assert details["height"] == 2_000
        assert details["bytes_per_block"] == pytest.approx(results[name]["value"] / 2_000)
    assert results["memory: Python heap peak"]["details"]["heap_peak"] == results["memory: Python heap peak"]["value"]


def test_progress_and_table_are_printed(quick_run: tuple[Any, dict[str, Any]]) -> None:
    done, document = quick_run
    lines = done.stdout.splitlines()
    for result in document["results"]:
        name = result["name"]
        assert f"[core] >> {name}" in lines
        assert any(line.startswith(f"[core] << {name}: ") for line in lines)
        row = [line for line in lines if line.startswith(name + "  ")]
        assert len(row) == 1, name
        assert row[0].split()[-2] == result["status"]
    assert f"wrote {Path(done.args[-1]).resolve()}" in lines


def test_an_unknown_suite_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "nosuch"], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 2
    assert "unknown suite nosuch" in done.stderr


def result(ratio: float, target: Target | None) -> Result:
    return Result("t", "x", value=ratio, baseline=1.0, unit="s", measures="m", baseline_measures="b", target=target)


def test_a_miss_exits_1_only_under_check() -> None:
    missed = [result(2.0, Target("<=", 1.5)), result(1.0, None)]
    passed = [result(1.0, Target("<=", 1.5)), result(9.0, None)]
    assert [r.status for r in missed] == [MISS, INFO]
    assert [r.status for r in passed] == [PASS, INFO]
    assert exit_status(missed, check=False) == 0
    assert exit_status(missed, check=True) == 1
    assert exit_status(passed, check=True) == 0


def test_target_bounds_are_inclusive() -> None:
    assert Target(">=", 0.5).met(0.5)
    assert not Target(">=", 0.5).met(0.49)
    assert Target("<=", 1.5).met(1.5)
    assert not Target("<=", 1.5).met(1.51)
    with pytest.raises(ValueError):
        Target("==", 1.0)


def test_a_result_refuses_non_positive_or_half_given_figures() -> None:
    with pytest.raises(ValueError):
        result(0.0, None)
    with pytest.raises(ValueError):
        Result("t", "x", value=1.0, baseline=-1.0, unit="s", measures="m", baseline_measures="b")
    with pytest.raises(ValueError):
        Result("t", "x", 1.0, 1.0, "s", "m", "b", cpu_value=1.0)
    with pytest.raises(ValueError):
        Result("t", "x", 1.0, 1.0, "s", "m", "b", cpu_value=1.0, cpu_baseline=0.0)


def test_table_shows_each_row_and_its_legend() -> None:
    timed = Result("t", "x", 2.0, 1.0, "s", "m", "b", Target("<=", 1.5), cpu_value=3.0, cpu_baseline=2.0)
    table = format_table([timed, result(0.5, None)]).splitlines()
    assert table[0].split() == ["benchmark", "measured", "baseline", "ratio", "target", "status", "CPU-time", "ratio"]
    assert table[2].split() == ["x", "2,000.00", "ms", "1,000.00", "ms", "2", "<=", "1.5", "MISS", "1.5"]
    assert table[3].split() == ["x", "500.00", "ms", "1,000.00", "ms", "0.5", "-", "INFO", "-"]
    assert "x: measured = m; baseline = b" in table


def test_rounds_go_on_until_every_trial_had_a_clean_run() -> None:
    calls = {"a": 0, "b": 0}

    def trial(name: str, clean_from: int) -> Callable[[], Timing]:
        def run() -> Timing:
            calls[name] += 1
            return Timing(wall=1.0, cpu=1.0 if calls[name] >= clean_from else 0.5)

        return run

    samples = interleaved(1, {"a": trial("a", 1), "b": trial("b", 3)}, until_clean=True)
    assert calls == {"a": 3, "b": 3}  # turns are taken: b's third run was its first clean one
    assert [clean_runs(samples[name]) for name in ("a", "b")] == [3, 1]
    assert interleaved(2, {"a": trial("a", 99)}) == {"a": [Timing(1.0, 0.5)] * 2}  # without until_clean: 2 rounds
