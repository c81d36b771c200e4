"""Scenario files: every shipped one loads, the schedule is a pure function of scenario and seed, bad files fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.scenario import ScenarioError, load_scenario, parse_scenario, race, schedule

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
SHIPPED = [
    "partition-heal",
    "latency-forks",
    "clock-skew",
    "double-spend-51",
    "selfish-mining",
    "byzantine-peer",
    "fork-choice-by-length",
]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_scenario_loads_in_both_forms_with_an_explanation(name):
    for quick in (False, True):
        scenario = load_scenario(SCENARIOS / f"{name}.toml", quick=quick)
        assert scenario.name == name
        assert len(scenario.description) > 200


def test_same_scenario_and_seed_give_the_same_schedule_and_another_seed_another():
    scenario = load_scenario(SCENARIOS / "partition-heal.toml")
    first = schedule(scenario, 42)
    assert first == schedule(load_scenario(SCENARIOS / "partition-heal.toml"), 42)
    assert first != schedule(scenario, 43)
    assert schedule(scenario) == schedule(scenario, scenario.seed)
    assert [s.at for s in first] == sorted(s.at for s in first)
    mined = [s for s in first if s.action == "mine"]
    assert len(mined) > 10 and all(0 < s.at < scenario.duration for s in mined)
    pays = [s for s in first if s.action == "pay"]
    assert [s.at for s in pays if s.node == "a1"] == [9, 13, 17, 21, 25]  # every = 4 until 28


def test_hash_shares_decide_who_mines():
    data = {
        "name": "shares",
        "duration": 20000,
        "block_interval": 1,
        "nodes": [{"name": "big", "hash": 0.75}, {"name": "small", "hash": 0.25}],
    }
    steps = schedule(parse_scenario(data), 1)
    big = sum(1 for s in steps if s.node == "big") / len(steps)
    assert 0.72 < big < 0.78
    assert 0.9 < len(steps) / 20000 < 1.1  # exponential gaps of mean block_interval


def test_race_is_reproducible_per_trial():
    assert race(1, 0, 0.3, 50) == race(1, 0, 0.3, 50)
    assert race(1, 0, 0.3, 50) != race(1, 1, 0.3, 50)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"nodes": [{"name": "a"}]}, "at least two nodes"),
        ({"network": "bitcoin"}, "devnet or regtest"),
        ({"events": [{"at": 1, "action": "explode"}]}, "not one of"),
        ({"events": [{"at": 1, "action": "crash", "node": "zz"}]}, "unknown node"),
        ({"network": "regtest", "nodes": [{"name": "a", "fork_choice": "length"}, {"name": "b"}]}, "devnet-only"),
        ({"duration": -1}, "duration must be"),
    ],
)
def test_bad_scenarios_are_refused(change, message):
    data = {"name": "bad", "nodes": [{"name": "a"}, {"name": "b"}], **change}
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(data)


def test_race_draws_the_attacker_with_its_share():
    draws = race(5, 0, 0.3, 20000, salt="z1")
    assert 0.28 < sum(draws) / len(draws) < 0.32
    with pytest.raises(ValueError):
        race(5, 0, 31.0, 10)
