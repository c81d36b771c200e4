"""The closed forms against the papers' own numbers, and the backbone properties on hand-made block trees."""

from __future__ import annotations

import pytest

from lab import analysis
from lab.analysis import BlockInfo

# Bitcoin paper, section 11: "Solving for P less than 0.1%" and the two tables of P for given q, z.
NAKAMOTO_TABLE = [
    (0.1, 0, 1.0000000),
    (0.1, 1, 0.2045873),
    (0.1, 2, 0.0509779),
    (0.1, 3, 0.0131722),
    (0.1, 4, 0.0034552),
    (0.1, 5, 0.0009137),
    (0.1, 6, 0.0002428),
    (0.1, 7, 0.0000647),
    (0.1, 8, 0.0000173),
    (0.1, 9, 0.0000046),
    (0.1, 10, 0.0000012),
    (0.3, 0, 1.0000000),
    (0.3, 5, 0.1773523),
    (0.3, 10, 0.0416605),
    (0.3, 15, 0.0101008),
    (0.3, 20, 0.0024804),
    (0.3, 25, 0.0006132),
    (0.3, 30, 0.0001522),
    (0.3, 35, 0.0000379),
    (0.3, 40, 0.0000095),
    (0.3, 45, 0.0000024),
    (0.3, 50, 0.0000006),
]


@pytest.mark.parametrize(("q", "z", "expected"), NAKAMOTO_TABLE)
def test_nakamoto_probability_matches_the_papers_table(q, z, expected):
    assert analysis.nakamoto_attack_probability(q, z) == pytest.approx(expected, abs=5e-8)


@pytest.mark.parametrize(("q", "z"), [(0.10, 5), (0.15, 8), (0.20, 11), (0.25, 15), (0.30, 24), (0.35, 41), (0.40, 89)])
def test_nakamoto_z_for_p_below_one_in_a_thousand(q, z):
    """The paper's last table: the least z with P < 0.001 for each q."""
    assert analysis.nakamoto_attack_probability(q, z) < 0.001
    assert analysis.nakamoto_attack_probability(q, z - 1) >= 0.001


def test_nakamoto_majority_always_wins_and_bad_input_is_refused():
    assert analysis.nakamoto_attack_probability(0.5, 10) == 1.0
    assert analysis.nakamoto_attack_probability(0.6, 3) == 1.0
    with pytest.raises(ValueError):
        analysis.nakamoto_attack_probability(1.5, 1)


@pytest.mark.parametrize(("gamma", "threshold"), [(0.0, 1 / 3), (0.5, 1 / 4), (1.0, 0.0)])
def test_selfish_revenue_equals_share_exactly_at_the_papers_thresholds(gamma, threshold):
    """Eyal and Sirer: selfish mining pays above (1 - gamma) / (3 - 2 gamma): 1/3, 1/4 and 0."""
    assert analysis.selfish_threshold(gamma) == pytest.approx(threshold)
    if threshold > 0:
        assert analysis.selfish_revenue(threshold, gamma) == pytest.approx(threshold)
        assert analysis.selfish_revenue(threshold - 0.02, gamma) < threshold - 0.02
    assert analysis.selfish_revenue(threshold + 0.02, gamma) > threshold + 0.02


def test_selfish_revenue_known_values():
    # equation (8) by hand: alpha = 0.4, gamma = 0: (0.4*0.36*1.6 - 0.064) / (1 - 0.4*1.64) = 0.1664 / 0.344
    assert analysis.selfish_revenue(0.4, 0.0) == pytest.approx(0.1664 / 0.344)
    assert analysis.selfish_revenue(0.0, 0.5) == 0.0
    with pytest.raises(ValueError):
        analysis.selfish_revenue(0.5, 0.0)


def tree_of(*branches: tuple[str, str, str]) -> dict[str, BlockInfo]:
    """Blocks as (hash, parent, miner); heights follow from the parents (genesis 'g' at 0)."""
    tree = {"g": BlockInfo("g", "", 0, "")}
    for block_hash, parent, miner in branches:
        tree[block_hash] = BlockInfo(block_hash, parent, tree[parent].height + 1, miner)
    return tree


# g - a1 - a2 - a3        (honest a)
#       \- b2 - b3 - b4   (b: "x" mined b3)
TREE = tree_of(
    ("a1", "g", "a"), ("a2", "a1", "a"), ("a3", "a2", "a"), ("b2", "a1", "b"), ("b3", "b2", "x"), ("b4", "b3", "b")
)


def test_common_prefix_is_the_deepest_divergence():
    assert analysis.fork_point(TREE, "a3", "b4") == 1
    assert analysis.common_prefix_k(TREE, ["a3", "b4"]) == 3  # b4 (height 4) minus 3 blocks is a prefix of a3
    assert analysis.common_prefix_k(TREE, ["a2", "b2"]) == 1  # a fork one block deep
    assert analysis.common_prefix_k(TREE, ["a2", "a3"]) == 0  # one chain extends the other
    assert analysis.common_prefix_k(TREE, ["b4"]) == 0


def test_chain_quality_is_the_worst_window():
    assert analysis.chain_quality(TREE, "b4", {"a", "b"}, window=2) == 0.5  # (b2, b3) or (b3, b4)
    assert analysis.chain_quality(TREE, "b4", {"a", "b"}, window=4) == 0.75
    assert analysis.chain_quality(TREE, "a3", {"a"}, window=2) == 1.0
    assert analysis.chain_quality(TREE, "b4", {"a", "b"}, window=2, start_height=3) == 1.0  # only b4 counted


def test_chain_growth_overall_and_worst_window():
    samples = [(0.0, 0), (1.0, 2), (2.0, 2), (3.0, 2), (4.0, 8)]
    overall, worst = analysis.chain_growth(samples, window=2.0)
    assert overall == 2.0 and worst == 0.0


def test_stale_rate_percentiles_histogram_spread_interval():
    assert analysis.stale_rate(["a", "b", "c", "d"], ["g", "a", "c"]) == 0.5
    assert analysis.stale_rate([], ["g"]) == 0.0
    assert analysis.percentiles([5, 1, 4, 2, 3]) == {"p50": 3, "p90": 5, "p99": 5}
    assert analysis.histogram([2, 1, 2, 3]) == {1: 1, 2: 2, 3: 1}
    assert analysis.mean_and_spread([1.0, 3.0]) == (2.0, pytest.approx(2**0.5))
    low, high = analysis.binomial_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)


def test_lab_double_spend_probability_known_values() -> None:
    """The exact rule the lab plays: strictly ahead to win, give up a fixed number of blocks behind."""
    # z = 0, no give-up in practice: the gambler's-ruin probability of ever getting strictly ahead, q/p
    assert analysis.lab_double_spend_probability(0.1, 0, 1000) == pytest.approx(0.1 / 0.9, abs=1e-9)
    assert analysis.lab_double_spend_probability(0.0, 3, 6) == 0
    assert analysis.lab_double_spend_probability(0.3, 1, 6) == pytest.approx(0.30686, abs=1e-4)
    # more confirmations never help the attacker
    values = [analysis.lab_double_spend_probability(0.3, z, 6) for z in range(6)]
    assert values == sorted(values, reverse=True)
