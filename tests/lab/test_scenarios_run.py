"""Every shipped scenario, shortened (its [quick] table), against real node processes; each asserts its lesson.

Module-free: each test starts its own nodes under tmp_path and the lab stops them all.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.experiments import run_scenario
from lab.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

pytestmark = pytest.mark.slow


def run(name: str, tmp_path: Path) -> dict:
    scenario = load_scenario(SCENARIOS / f"{name}.toml", quick=True)
    summary = run_scenario(scenario, scenario.seed, tmp_path / name)
    for plot in summary["plots"]:
        assert Path(plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / name / "summary.json").exists() and (tmp_path / name / "events.csv").exists()
    return summary


def test_partition_heal_converges_and_loses_no_payment(tmp_path):
    summary = run("partition-heal", tmp_path)
    assert summary["converged"] and summary["honest_agree"]
    assert summary["common_prefix"]["final_k"] == 0
    assert summary["payments_accepted"] == 2
    assert summary["payments_confirmed_everywhere"] == 2  # including the one whose side lost
    assert summary["common_prefix"]["max_k_during_run"] >= 1  # the split really diverged
    assert summary["reorgs"] >= 1 and summary["stale_rate"] > 0


def test_latency_makes_forks_and_they_resolve(tmp_path):
    summary = run("latency-forks", tmp_path)
    assert summary["converged"] and summary["honest_agree"]
    assert summary["propagation_seconds"]["p50"] >= 0.3  # at least one hop of 300 ms delay
    assert summary["propagation_samples"] > 0


def test_clock_skew_ahead_blocks_are_refused_and_behind_falls_back(tmp_path):
    summary = run("clock-skew", tmp_path)
    assert summary["honest_agree"]
    assert summary["blocks_in_final_chain_by"]["ahead"] == 0
    assert summary["blocks_mined_by"]["ahead"] + summary["mining_refused"]["ahead"] > 0
    assert summary["blocks_in_final_chain_by"]["h0"] + summary["blocks_in_final_chain_by"]["h1"] > 0
    assert summary["max_lag"]["behind"] >= 1


def test_byzantine_peer_is_banned_and_honest_nodes_agree(tmp_path):
    summary = run("byzantine-peer", tmp_path)
    evil = summary["nodes"]["evil"]["url"]
    for name in ("h0", "h1", "h2"):
        assert evil in summary["banned"][name]
    assert any(r.get("bad-cb-amount", 0) >= 1 for r in summary["rejected"].values())
    assert summary["honest_agree"] and summary["chain_quality"] == 1.0


def test_fork_choice_by_length_takes_the_less_work_chain(tmp_path):
    summary = run("fork-choice-by-length", tmp_path)
    tips = summary["tips"]
    heavy = tips["heavy"]
    assert tips["obs-work"]["tip"] == heavy["tip"] and tips["light"]["tip"] == heavy["tip"]  # work: everyone
    length = tips["obs-length"]
    assert length["tip"] != heavy["tip"]
    assert length["height"] > heavy["height"]
    assert int(length["chainwork"], 16) < int(heavy["chainwork"], 16)


def test_double_spend_numbers_are_sane(tmp_path):
    summary = run("double-spend-51", tmp_path)
    (row,) = summary["runs"]
    assert row["trials"] == 3 and 0 <= row["successes"] <= 3
    assert row["nakamoto"] == pytest.approx(0.6274, abs=1e-3)  # q = 0.3, z = 1
    assert row["interval95"][0] <= row["rate"] <= row["interval95"][1]
    for outcome in row["outcomes"]:
        assert outcome["honest_blocks"] >= 1


def test_selfish_mining_numbers_are_sane(tmp_path):
    summary = run("selfish-mining", tmp_path)
    (row,) = summary["runs"]
    assert row["runs"] == 1 and 0.0 <= row["mean"] <= 1.0
    assert row["eyal_sirer_gamma0"] == pytest.approx(0.1664 / 0.344)
