"""Numbers from a run: backbone properties, propagation, stale blocks, reorgs, and the papers' closed forms.

Everything here is a pure function of data the runner collected, so it is unit-tested
on hand-made block trees. The block tree is a mapping ``hash -> BlockInfo`` (parent,
height, miner); a node's chain is named by its tip hash.

- Common prefix (Garay, Kiayias, Leonardos, "The Bitcoin Backbone Protocol"): chains C1
  and C2 of honest nodes satisfy it with parameter k when C1 with its last k blocks cut
  off is a prefix of C2. ``common_prefix_k`` is the smallest such k over every pair.
- Chain growth: blocks added to the honest chain per second (overall and worst window).
- Chain quality: the share of honest blocks in any window of ``window`` consecutive
  blocks of an honest node's chain (its minimum over windows).
- ``nakamoto_attack_probability``: section 11 of the Bitcoin paper.
- ``selfish_revenue``: Eyal and Sirer, "Majority is not Enough", equation (8).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BlockInfo:
    """One block of the run's block tree: its parent, height and the node that mined it ("" if unknown)."""

    hash: str
    parent: str
    height: int
    miner: str = ""


Tree = Mapping[str, BlockInfo]


def chain_of(tree: Tree, tip: str) -> list[str]:
    """The hashes from the lowest known ancestor up to ``tip``, oldest first."""
    chain = []
    current: str | None = tip
    while current is not None and current in tree:
        chain.append(current)
        current = tree[current].parent
    chain.reverse()
    return chain


def fork_point(tree: Tree, a: str, b: str) -> int:
    """Height of the last common ancestor of tips ``a`` and ``b`` (-1 if the tree does not connect them)."""
    ancestors_a = set(chain_of(tree, a))
    for block_hash in reversed(chain_of(tree, b)):
        if block_hash in ancestors_a:
            return tree[block_hash].height
    return -1


def common_prefix_k(tree: Tree, tips: Iterable[str]) -> int:
    """The smallest k such that for any two chains, each minus its last k blocks is a prefix of the other.

    A chain that is a prefix of another (a node one block behind) is no violation: it
    is the older view of the same chain, as in the backbone paper's C1 <= C2 for C1 earlier.
    """
    tips = list(tips)
    k = 0
    for a in tips:
        for b in tips:
            fork = fork_point(tree, a, b)
            if a != b and fork < min(tree[a].height, tree[b].height):
                k = max(k, tree[a].height - fork)
    return k


def chain_quality(tree: Tree, tip: str, honest: set[str], window: int, start_height: int = 0) -> float:
    """Minimum share of blocks mined by ``honest`` miners over windows of ``window`` blocks above ``start_height``."""
    miners = [tree[h].miner for h in chain_of(tree, tip) if tree[h].height > start_height]
    if not miners:
        return 1.0
    window = min(window, len(miners))
    best = 1.0
    for first in range(len(miners) - window + 1):
        part = miners[first : first + window]
        best = min(best, sum(1 for m in part if m in honest) / window)
    return best


def chain_growth(samples: Sequence[tuple[float, int]], window: float) -> tuple[float, float]:
    """``(overall, worst)`` blocks per second from ``(time, height)`` samples; worst over spans of ``window`` s."""
    if len(samples) < 2 or samples[-1][0] <= samples[0][0]:
        return 0.0, 0.0
    overall = (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0])
    worst = overall
    for i, (t0, h0) in enumerate(samples):
        for t1, h1 in samples[i + 1 :]:
            if t1 - t0 >= window:
                worst = min(worst, (h1 - h0) / (t1 - t0))
                break
    return overall, worst


def stale_rate(mined: Iterable[str], final_chain: Iterable[str]) -> float:
    """Share of the blocks mined during the run that did not end up on the final chain."""
    mined = list(mined)
    if not mined:
        return 0.0
    kept = set(final_chain)
    return sum(1 for h in mined if h not in kept) / len(mined)


def percentiles(values: Sequence[float], points: Sequence[int] = (50, 90, 99)) -> dict[str, float]:
    """Nearest-rank percentiles (``p50`` ...) of ``values``; empty dict when there are none."""
    if not values:
        return {}
    ordered = sorted(values)
    result = {}
    for p in points:
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        result[f"p{p}"] = ordered[rank - 1]
    return result


def histogram(values: Iterable[int]) -> dict[int, int]:
    """Counts of each value, sorted by value (reorg depths)."""
    return dict(sorted(Counter(values).items()))


def mean_and_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for fewer than two values)."""
    if not values:
        return 0.0, 0.0
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def binomial_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a success probability (95% by default)."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def nakamoto_attack_probability(q: float, z: int) -> float:
    """Probability that an attacker with hash share ``q`` ever catches up from ``z`` blocks behind (Bitcoin paper §11).

    The honest chain's progress while the merchant waits for ``z`` confirmations gives
    the attacker a Poisson number of blocks with mean ``z q / p``; from each deficit
    left the attacker catches up with probability ``(q/p)^deficit``.
    """
    if not 0 <= q <= 1 or z < 0:
        raise ValueError("q is a share in [0, 1] and z a number of blocks >= 0")
    p = 1.0 - q
    if q >= p:
        return 1.0
    lam = z * (q / p)
    total = 1.0
    for k in range(z + 1):
        poisson = math.exp(-lam)
        for i in range(1, k + 1):
            poisson *= lam / i
        total -= poisson * (1 - (q / p) ** (z - k))
    return total


def lab_double_spend_probability(q: float, z: int, give_up: int, max_blocks: int = 400) -> float:
    """Exact success probability of the rule ``lab.attacks`` plays, which Nakamoto's formula only approximates.

    Blocks are the attacker's with probability ``q``. The attack succeeds when, with at
    least ``z`` honest blocks found, the secret chain is strictly longer (a tie keeps the
    first-seen chain); it fails when the honest chain (z or more blocks) leads by
    ``give_up + max(0, z - secret)``, or after ``max_blocks`` blocks. Dynamic programming
    over the states (secret blocks capped at z, honest blocks capped at z, honest lead).
    """
    if not 0 <= q <= 1 or z < 0 or give_up < 0:
        raise ValueError("q is a share in [0, 1]; z and give_up are numbers of blocks >= 0")
    states = {(0, 0, 0): 1.0}
    success = 0.0
    for _ in range(max_blocks):
        following: dict[tuple[int, int, int], float] = {}
        for (secret, honest, lead), chance in states.items():
            for found_by_attacker, weight in ((True, q), (False, 1 - q)):
                if not weight:
                    continue
                if found_by_attacker:
                    state = (min(secret + 1, z), honest, lead - 1)
                else:
                    state = (secret, min(honest + 1, z), lead + 1)
                if state[1] >= z and state[2] < 0:
                    success += chance * weight
                elif not (state[1] >= z and state[2] >= give_up + z - state[0]):
                    following[state] = following.get(state, 0.0) + chance * weight
        states = following
    return success


def selfish_revenue(alpha: float, gamma: float) -> float:
    """Relative revenue of a selfish pool with hash share ``alpha`` (Eyal and Sirer 2014, equation 8).

    ``gamma`` is the share of honest miners that mine on the pool's block during a tie.
    Honest mining earns ``alpha``; selfish mining earns more above the threshold
    ``(1 - gamma) / (3 - 2 gamma)``.
    """
    if not 0 <= alpha < 0.5 or not 0 <= gamma <= 1:
        raise ValueError("alpha is in [0, 0.5) and gamma in [0, 1]")
    numerator = alpha * (1 - alpha) ** 2 * (4 * alpha + gamma * (1 - 2 * alpha)) - alpha**3
    denominator = 1 - alpha * (1 + (2 - alpha) * alpha)
    return numerator / denominator


def selfish_threshold(gamma: float) -> float:
    """The hash share above which selfish mining pays (Eyal and Sirer: (1 - gamma) / (3 - 2 gamma))."""
    return (1 - gamma) / (3 - 2 * gamma)
