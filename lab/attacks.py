"""The attacker scenarios: a double spend by a hash-power majority-or-not, and selfish mining.

The attacker is a real node that has no peers: it withholds simply because nobody hears
from it. The lab is its only link. It relays honest blocks to the attacker when the
attacker adopts the public chain, and releases the attacker's secret blocks by posting
them to an honest node (``POST /api/blocks``), which judges them by its own fork choice
and gossips them on. Who finds each next block is drawn from the seed with the
attacker's share (``lab.scenario.race``), and that node mines it for real.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from chain.address import encode_address
from chain.params import get_network
from devnet.process import wait_until
from lab import analysis
from lab.cluster import Cluster, LabError, LabNode
from lab.scenario import Scenario, race
from lab.wallet import Wallet, lab_key, txid_hex

log = logging.getLogger(__name__)


class AttackLab:
    """Nodes ``honest`` (the miners), ``merchant`` (connected to them) and ``attacker`` (isolated)."""

    def __init__(self, scenario: Scenario, seed: int, out: Path) -> None:
        self.scenario = scenario
        self.seed = seed
        self.out = out
        self.params = get_network(scenario.network)
        self.cluster = Cluster(out / "nodes", scenario.network)
        self.wallet = Wallet(self.params, lab_key(seed, "wallet"), [])
        self.address = {
            name: encode_address(lab_key(seed, name).pubkey_hash, self.params)
            for name in ("honest", "merchant", "attacker")
        }
        self.mined_by: dict[str, str] = {}

    @property
    def honest(self) -> LabNode:
        return self.cluster["honest"]

    @property
    def merchant(self) -> LabNode:
        return self.cluster["merchant"]

    @property
    def attacker(self) -> LabNode:
        return self.cluster["attacker"]

    def setup(self, coins: int) -> None:
        for name in ("honest", "merchant", "attacker"):
            self.cluster.add(name, [])
        self.cluster.start_all()
        self.cluster.connect("merchant", "honest")
        prefix = self.params.coinbase_maturity + 1
        for block_hash in self.honest.generate(prefix, self.wallet.address):
            self.wallet.add_coinbase(self.honest.block(block_hash))
        first = self.wallet.coins[:1]
        self.wallet.coins = []
        if coins:
            self.honest.send_transaction(self.wallet.fan_out(first, coins).serialized.hex())
            self.mine("honest")
        self.cluster.same_tip(["honest", "merchant"], 60)
        self.relay(self.honest, self.attacker)

    def mine(self, name: str) -> str:
        block_hash = self.cluster[name].generate(1, self.address[name])[0]
        self.mined_by[block_hash] = name
        return block_hash

    def relay(self, source: LabNode, target: LabNode) -> int:
        """Post to ``target`` the blocks of ``source``'s active chain that ``target`` lacks, oldest first."""
        missing = source.missing_from(target)
        for block_hash in missing:
            target.submit_block(source.raw_block(block_hash))
        return len(missing)

    def release(self, hashes: list[str]) -> None:
        """Publish the attacker's withheld blocks to the honest miner, then wait for the merchant to agree."""
        for block_hash in hashes:
            self.honest.submit_block(self.attacker.raw_block(block_hash))
        self.cluster.same_tip(["honest", "merchant"], 60)


def double_spend(scenario: Scenario, seed: int, out: Path) -> dict[str, Any]:
    """Trials of the attack for each attacker share and confirmation count; success checked on the merchant's node.

    One trial: the attacker pays the merchant (T1, to the public network) and, from the
    same coin, itself (T2, only to its own node), then mines in secret. Blocks are found
    by the attacker with probability q. Once T1 has z confirmations the attacker releases
    its chain as soon as it is longer; it gives up when ``give_up`` blocks behind. The
    trial succeeds when the merchant's node ends with T2 confirmed and T1 gone.
    """
    shares = [float(q) for q in scenario.experiment_value("shares", [0.3])]
    confirmations = [int(z) for z in scenario.experiment_value("confirmations", [1])]
    trials = int(scenario.experiment_value("trials", 3))
    give_up = int(scenario.experiment_value("give_up", 5))
    max_blocks = int(scenario.experiment_value("max_blocks", 400))  # a trial still undecided then counts as failed
    lab = AttackLab(scenario, seed, out)
    results = []
    with lab.cluster:
        lab.setup(coins=len(shares) * len(confirmations) * trials)
        for q in shares:
            for z in confirmations:
                outcomes = []
                for trial in range(trials):
                    outcomes.append(
                        _double_spend_trial(lab, q, z, give_up, race(seed, trial, q, max_blocks, salt=f"z{z}"))
                    )
                wins = sum(1 for o in outcomes if o["success"])
                low, high = analysis.binomial_interval(wins, trials)
                results.append(
                    {
                        "q": q,
                        "z": z,
                        "trials": trials,
                        "successes": wins,
                        "rate": wins / trials,
                        "interval95": [low, high],
                        "nakamoto": analysis.nakamoto_attack_probability(q, z),
                        "lab_rule": analysis.lab_double_spend_probability(q, z, give_up, max_blocks),
                        "outcomes": outcomes,
                    }
                )
                log.info("double spend q=%.2f z=%d: %d/%d succeeded", q, z, wins, trials)
    return {
        "scenario": scenario.name,
        "seed": seed,
        "kind": "double-spend",
        "give_up": give_up,
        "max_blocks": max_blocks,
        "runs": results,
    }


def _double_spend_trial(lab: AttackLab, q: float, z: int, give_up: int, finders: list[bool]) -> dict[str, Any]:
    coin = lab.wallet.take()
    merchant_key = lab_key(lab.seed, "merchant").pubkey_hash
    pay = lab.wallet.pay(coin, merchant_key, coin.txout.amount // 2)
    steal = lab.wallet.pay(coin, lab.wallet.key.pubkey_hash, coin.txout.amount // 2)
    lab.merchant.send_transaction(pay.serialized.hex())
    lab.attacker.send_transaction(steal.serialized.hex())
    lab.cluster.same_tip(["honest", "merchant"], 60)
    wait_until(lambda: lab.honest.transaction(txid_hex(pay)), 30, "the payment to reach the honest miner")
    honest_blocks = 0
    secret: list[str] = []
    released = False
    blocks = 0
    for attacker_finds in finders:
        blocks += 1
        if attacker_finds:
            secret.append(lab.mine("attacker"))
        else:
            lab.mine("honest")
            honest_blocks += 1
        if honest_blocks >= z and len(secret) > honest_blocks:
            lab.release(secret)
            released = True
            break
        if honest_blocks - len(secret) >= give_up + max(0, z - len(secret)) and honest_blocks >= z:
            break
    lab.cluster.same_tip(["honest", "merchant"], 60)
    paid = lab.merchant.transaction(txid_hex(pay))
    stolen = lab.merchant.transaction(txid_hex(steal))
    success = stolen is not None and not stolen["in_mempool"] and (paid is None or paid["confirmations"] <= 0)
    if released != success:
        raise LabError(f"the attack was {'released' if released else 'abandoned'} but success is {success}")
    if not success:
        lab.relay(lab.merchant, lab.attacker)  # the attacker gives up and adopts the public chain
    else:
        lab.cluster.same_tip(["honest", "merchant", "attacker"], 60)
    return {
        "success": success,
        "blocks": blocks,
        "secret_blocks": len(secret),
        "honest_blocks": honest_blocks,
        "merchant_confirmations_of_payment": paid["confirmations"] if paid else 0,
    }


def selfish_mining(scenario: Scenario, seed: int, out: Path) -> dict[str, Any]:
    """Eyal and Sirer's selfish strategy against one honest miner; revenue share measured on the final chain.

    The honest node keeps the first block it saw at equal length, so gamma = 0 here.
    """
    shares = [float(a) for a in scenario.experiment_value("shares", [0.35])]
    runs = int(scenario.experiment_value("runs", 1))
    blocks = int(scenario.experiment_value("blocks", 40))
    lab = AttackLab(scenario, seed, out)
    results = []
    with lab.cluster:
        lab.setup(coins=0)
        for alpha in shares:
            revenues = []
            for run in range(runs):
                revenues.append(_selfish_run(lab, race(seed, run, alpha, blocks)))
            mean, spread = analysis.mean_and_spread(revenues)
            results.append(
                {
                    "alpha": alpha,
                    "runs": runs,
                    "blocks": blocks,
                    "revenues": revenues,
                    "mean": mean,
                    "stdev": spread,
                    "eyal_sirer_gamma0": analysis.selfish_revenue(alpha, 0.0),
                }
            )
            log.info("selfish alpha=%.2f: revenue %.3f +- %.3f over %d runs", alpha, mean, spread, runs)
    return {"scenario": scenario.name, "seed": seed, "kind": "selfish", "gamma": 0.0, "runs": results}


def _selfish_run(lab: AttackLab, finders: list[bool]) -> float:
    start = lab.honest.status()["height"]
    secret: list[str] = []  # the attacker's blocks since the fork point, published or not
    published = 0
    honest_blocks = 0  # the honest branch's blocks since the fork point
    tie = False

    def reset() -> None:
        nonlocal secret, published, honest_blocks, tie
        secret, published, honest_blocks, tie = [], 0, 0, False

    for attacker_finds in finders:
        if attacker_finds:
            secret.append(lab.mine("attacker"))
            if tie:  # the attacker extends its branch of the tie and publishes: it wins both blocks
                lab.release(secret[published:])
                reset()
            continue
        lead = len(secret) - honest_blocks
        lab.mine("honest")
        honest_blocks += 1
        if lead <= 0:  # nothing withheld (or a lost tie): adopt the public chain
            lab.relay(lab.honest, lab.attacker)
            reset()
        elif lead == 1:  # publish the one withheld block: a tie, the honest node keeps its own (gamma = 0)
            lab.release(secret[published:])
            published = len(secret)
            tie = True
        elif lead == 2:  # publish everything: one block longer, the honest node reorgs
            lab.release(secret[published:])
            reset()
        else:  # publish as many as the honest branch has
            lab.release(secret[published:honest_blocks])
            published = honest_blocks
    if len(secret) > honest_blocks:
        lab.release(secret[published:])
    elif secret or honest_blocks:
        lab.relay(lab.honest, lab.attacker)
    lab.cluster.same_tip(["honest", "merchant"], 60)
    lab.relay(lab.honest, lab.attacker)
    final = lab.honest.chain_above(start)
    ours = sum(1 for h in final if lab.mined_by.get(h) == "attacker")
    return ours / len(final) if final else 0.0
