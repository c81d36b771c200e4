"""Run a ``network`` scenario against real nodes and measure it.

1. Start one ``cairn-node`` per scenario node (``--fork-choice`` as the scenario says),
   connect the topology, mine ``prefix_blocks`` to the lab wallet and wait for every node
   to have them (the coins the payments spend).
2. Play the schedule in real time: blocks of the lab-driven miner (``POST
   /api/mining/generate`` on the node the schedule picked), faults through
   ``/api/admin/faults``, crashes (SIGKILL) and restarts, payments. Between steps the lab
   samples every node's tip.
3. Settle: clear every fault, wait for the honest nodes to agree, mine ``settle_blocks``
   blocks so transactions returned to mempools by reorgs are confirmed again, wait again.
4. Collect each node's ``/metrics``, the block tree of every block mined, the final
   chains and the payments' fate; compute the properties (``lab.analysis``).
"""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.address import encode_address
from chain.params import get_network
from devnet.process import NodeAPIError, NodeProcessError
from lab import analysis
from lab.cluster import Cluster, LabError
from lab.scenario import Scenario, Step, schedule
from lab.wallet import Wallet, lab_key, txid_hex

log = logging.getLogger(__name__)

SAMPLE_INTERVAL = 0.5


@dataclass
class Record:
    """What happened during a run, in the order it happened (times in seconds from the start)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    mined: list[dict[str, Any]] = field(default_factory=list)
    payments: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def event(self, t: float, action: str, node: str = "", detail: str = "") -> None:
        self.events.append({"time": round(t, 3), "action": action, "node": node, "detail": detail})


class NetworkRun:
    """One run of a ``network`` scenario; ``run()`` returns the summary (also written to ``out/summary.json``)."""

    def __init__(self, scenario: Scenario, seed: int, out: Path) -> None:
        self.scenario = scenario
        self.seed = seed
        self.out = out
        self.params = get_network(scenario.network)
        self.steps = schedule(scenario, seed)
        self.record = Record()
        self.wallet = Wallet(self.params, lab_key(seed, "wallet"), [])
        self.reward = {n.name: encode_address(lab_key(seed, n.name).pubkey_hash, self.params) for n in scenario.nodes}
        self.blocked: dict[str, set[str]] = {}
        self.start = 0.0
        self.cluster = Cluster(out / "nodes", scenario.network)

    def now(self) -> float:
        return time.monotonic() - self.start

    # ------------------------------------------------------------ setup

    def _setup(self) -> None:
        for spec in self.scenario.nodes:
            args = ["--fork-choice", spec.fork_choice] if spec.fork_choice != "work" else []
            self.cluster.add(spec.name, args)
        self.cluster.start_all()
        for a, b in self.scenario.link_pairs():
            self.cluster.connect(a, b)
        first = self.cluster[self.scenario.honest[0]]
        prefix_skew = self.scenario.measure_value("prefix_skew", 0)
        if prefix_skew:
            first.faults(clock_skew=prefix_skew)
        for block_hash in (
            first.generate(self.scenario.prefix_blocks, self.wallet.address) if self.scenario.prefix_blocks else []
        ):
            self.wallet.add_coinbase(first.block(block_hash))
        maturity = self.params.coinbase_maturity
        self.wallet.coins = self.wallet.coins[: max(0, self.scenario.prefix_blocks - maturity + 1)]
        self.cluster.same_tip([n.name for n in self.cluster], 60)

    # ------------------------------------------------------------ steps

    def _wait_until(self, at: float) -> None:
        while True:
            remaining = at - self.now()
            if remaining <= 0:
                return
            last = self.record.samples[-1]["time"] if self.record.samples else -1.0
            if self.now() - last >= SAMPLE_INTERVAL:
                self._sample()
            time.sleep(min(remaining, 0.05))

    def _sample(self) -> None:
        tips = {}
        for node in self.cluster:
            if node.running:
                try:
                    status = node.status()
                    tips[node.name] = {"tip": status["tip"], "height": status["height"]}
                except Exception:  # a node busy restarting: no sample from it this time
                    continue
        self.record.samples.append({"time": round(self.now(), 3), "tips": tips})

    def _urls(self, names: list[str]) -> list[str]:
        return [self.cluster[n].url for n in names]

    def _set_blocked(self, name: str, blocked: set[str]) -> None:
        self.blocked[name] = blocked
        node = self.cluster[name]
        if node.running:
            node.faults(blocked_peers=sorted(self._urls(sorted(blocked))))

    def _do(self, step: Step) -> None:
        t = self.now()
        cluster, names = self.cluster, [n.name for n in self.scenario.nodes]
        targets = [step.node] if step.node else names
        if step.action == "mine":
            node = cluster[step.node]
            if not node.running:
                self.record.event(t, "mine-skipped", step.node, "node is down")
                return
            try:
                mined = node.generate(int(step.arg("blocks", 1)), self.reward[step.node])
            except NodeAPIError as exc:  # e.g. a node whose clock is behind refuses its own block: time-too-new
                self.record.event(t, "mine-refused", step.node, exc.code or str(exc))
                return
            for block_hash in mined:
                self.record.mined.append({"hash": block_hash, "miner": step.node, "time": round(self.now(), 3)})
            self.record.event(t, "mine", step.node, str(step.arg("blocks", 1)))
        elif step.action == "partition":
            groups = [list(g) for g in step.arg("groups")]
            for group in groups:
                others = {m for g in groups if g is not group for m in g}
                for member in group:
                    self._set_blocked(member, others)
            self.record.event(t, "partition", "", " | ".join(",".join(g) for g in groups))
        elif step.action == "heal":
            for name in names:
                self._set_blocked(name, set())
            self.record.event(t, "heal")
        elif step.action == "delay":
            for name in targets:
                cluster[name].faults(delay_ms=int(step.arg("ms")))
            self.record.event(t, "delay", step.node, f"{step.arg('ms')} ms")
        elif step.action == "skew":
            for name in targets:
                cluster[name].faults(clock_skew=int(step.arg("seconds")))
            self.record.event(t, "skew", step.node, f"{step.arg('seconds')} s")
        elif step.action in ("byzantine", "honest"):
            cluster[step.node].faults(byzantine=step.action == "byzantine")
            self.record.event(t, step.action, step.node)
        elif step.action == "crash":
            cluster[step.node].kill()
            self.record.event(t, "crash", step.node)
        elif step.action == "restart":
            self._restart(step.node)
            self.record.event(t, "restart", step.node)
        elif step.action == "pay":
            self._pay(step)
        elif step.action == "sync":  # wait until the named nodes (all by default) have the same tip
            targets = list(step.arg("nodes", ())) or targets
            cluster.same_tip([n for n in targets if cluster[n].running], float(step.arg("timeout", 60)))
            self.record.event(t, "sync", ",".join(targets))
        else:
            raise LabError(f"unknown step {step.action}")

    def _restart(self, name: str) -> None:
        node = self.cluster[name]
        node.start()
        node.wait_ready()
        if self.blocked.get(name):
            node.faults(blocked_peers=sorted(self._urls(sorted(self.blocked[name]))))
        for a, b in self.scenario.link_pairs():
            if name in (a, b):
                other = self.cluster[b if a == name else a]
                if other.running:
                    node.connect(other)

    def _pay(self, step: Step) -> None:
        t = self.now()
        node = self.cluster[step.node]
        payee = lab_key(self.seed, f"payee/{step.arg('to', 'merchant')}").pubkey_hash
        coin = self.wallet.take()
        tx = self.wallet.pay(coin, payee, int(step.arg("amount", 100_000_000)))
        try:
            node.send_transaction(tx.serialized.hex())
            accepted, detail = True, ""
        except NodeAPIError as exc:
            accepted, detail = False, exc.code or str(exc)
        self.record.payments.append(
            {"txid": txid_hex(tx), "node": step.node, "time": round(t, 3), "accepted": accepted, "error": detail}
        )
        self.record.event(t, "pay", step.node, txid_hex(tx) if accepted else f"refused: {detail}")

    # ------------------------------------------------------------ settle and collect

    def _settle(self) -> bool:
        t = self.now()
        for node in self.cluster:
            if not node.running:
                self._restart(node.name)
            node.clear_faults()
        self.blocked.clear()
        self.record.event(t, "settle")
        honest = [n for n in self.scenario.honest if self.cluster[n].running]
        converged = True
        try:
            self.cluster.same_tip(honest, self.scenario.settle)
            for _ in range(int(self.scenario.measure_value("settle_blocks", 1))):
                self._do(Step(self.now(), "mine", honest[0]))
                self.cluster.same_tip(honest, self.scenario.settle)
        except NodeProcessError as exc:
            log.warning("honest nodes did not converge: %s", exc)
            converged = False
        self._sample()
        return converged

    def _tree(self, chains: dict[str, list[str]]) -> dict[str, analysis.BlockInfo]:
        miners = {m["hash"]: m["miner"] for m in self.record.mined}
        tree: dict[str, analysis.BlockInfo] = {}
        for chain in chains.values():
            for height, block_hash in enumerate(chain):
                parent = chain[height - 1] if height else ""
                tree[block_hash] = analysis.BlockInfo(block_hash, parent, height, miners.get(block_hash, ""))
        wanted = set(miners) | {tip["tip"] for s in self.record.samples for tip in s["tips"].values()}
        for block_hash in sorted(wanted - set(tree)):
            self._fetch_branch(block_hash, tree, miners)
        return tree

    def _fetch_branch(self, block_hash: str, tree: dict[str, analysis.BlockInfo], miners: dict[str, str]) -> None:
        """Add ``block_hash`` and its ancestors missing from ``tree``, asking any node that has them."""
        current = block_hash
        while current and current not in tree:
            found = None
            for node in self.cluster:
                try:
                    found = node.block(current)
                    break
                except NodeAPIError:
                    continue
            if found is None:
                return  # a block no node kept (mined by a node that crashed before it was relayed)
            tree[current] = analysis.BlockInfo(current, found["prev_hash"], found["height"], miners.get(current, ""))
            current = found["prev_hash"]

    def run(self) -> dict[str, Any]:
        self.out.mkdir(parents=True, exist_ok=True)
        with self.cluster:
            self._setup()
            self.start = time.monotonic()
            self._sample()
            for step in self.steps:
                self._wait_until(step.at)
                self._do(step)
                if self.now() - self.record.samples[-1]["time"] >= 0.1:  # a long step (many blocks): show its effect
                    self._sample()
            self._wait_until(self.scenario.duration)
            converged = self._settle()
            summary = self._collect(converged)
        write_outputs(self.out, summary, self.record)
        return summary

    def _collect(self, converged: bool) -> dict[str, Any]:
        scenario = self.scenario
        honest = scenario.honest
        chains = {node.name: node.active_chain() for node in self.cluster}
        metrics = {node.name: node.metrics() for node in self.cluster}
        banned = {node.name: sorted(node.banned_urls()) for node in self.cluster}
        tree = self._tree(chains)
        final = chains[honest[0]]
        mined_hashes = [m["hash"] for m in self.record.mined]
        k = int(scenario.measure_value("k", 6))
        window = int(scenario.measure_value("quality_window", 10))
        honest_set = set(honest)
        samples_cp = [
            analysis.common_prefix_k(tree, [tips[n]["tip"] for n in honest if n in tips and tips[n]["tip"] in tree])
            for tips in (s["tips"] for s in self.record.samples)
        ]
        growth_samples = [
            (s["time"], max(s["tips"][n]["height"] for n in honest if n in s["tips"]))
            for s in self.record.samples
            if any(n in s["tips"] for n in honest)
        ]
        overall, worst = analysis.chain_growth(growth_samples, float(scenario.measure_value("growth_window", 5.0)))
        delays = self._propagation(metrics, honest)
        reorgs = _reorg_histogram(metrics, honest)
        payments = []
        for payment in self.record.payments:
            fate = {}
            for name in honest:
                tx = self.cluster[name].transaction(payment["txid"])
                fate[name] = "missing" if tx is None else ("mempool" if tx["in_mempool"] else "confirmed")
            payments.append({**payment, "fate": fate})
        accepted = [p for p in payments if p["accepted"]]
        return {
            "scenario": scenario.name,
            "seed": self.seed,
            "network": scenario.network,
            "nodes": {
                n.name: {
                    "hash_share": n.hash_share,
                    "role": n.role,
                    "fork_choice": n.fork_choice,
                    "url": self.cluster[n.name].url,
                }
                for n in scenario.nodes
            },
            "duration": scenario.duration,
            "converged": converged,
            "tips": {
                name: {
                    "height": len(chain) - 1,
                    "tip": chain[-1],
                    "chainwork": self.cluster[name].status()["chainwork"],
                }
                for name, chain in chains.items()
            },
            "honest_agree": len({chains[n][-1] for n in honest}) == 1,
            "max_lag": self._max_lag(honest),
            "blocks_mined": len(mined_hashes),
            "blocks_mined_by": {
                n.name: sum(1 for m in self.record.mined if m["miner"] == n.name) for n in scenario.nodes
            },
            "blocks_in_final_chain_by": {
                n.name: sum(1 for h in final if tree.get(h) and tree[h].miner == n.name) for n in scenario.nodes
            },
            "stale_rate": analysis.stale_rate(mined_hashes, final),
            "common_prefix": {
                "k": k,
                "final_k": analysis.common_prefix_k(tree, [chains[n][-1] for n in honest]),
                "max_k_during_run": max(samples_cp, default=0),
                "holds_at_end": analysis.common_prefix_k(tree, [chains[n][-1] for n in honest]) <= k,
                "share_of_samples_holding": sum(1 for v in samples_cp if v <= k) / len(samples_cp)
                if samples_cp
                else 1.0,
            },
            "chain_growth": {"blocks_per_second": overall, "worst_window": worst},
            "chain_quality": analysis.chain_quality(tree, final[-1], honest_set, window, scenario.prefix_blocks),
            "propagation_seconds": analysis.percentiles(delays),
            "propagation_samples": len(delays),
            "reorg_depths": reorgs,
            "reorgs": sum(reorgs.values()),
            "rejected": {name: m.get("cairn_blocks_rejected_total", {}) for name, m in metrics.items()},
            "banned": banned,
            "payments": payments,
            "payments_accepted": len(accepted),
            "payments_confirmed_everywhere": sum(1 for p in accepted if set(p["fate"].values()) == {"confirmed"}),
            "events": len(self.record.events),
            "mining_refused": {
                n.name: sum(1 for e in self.record.events if e["action"] == "mine-refused" and e["node"] == n.name)
                for n in scenario.nodes
            },
        }

    def _max_lag(self, honest: list[str]) -> dict[str, int]:
        """Per node: the most blocks it was ever behind the highest honest node in the samples."""
        lag: dict[str, int] = {}
        for sample in self.record.samples:
            tips = sample["tips"]
            top = max((tips[n]["height"] for n in honest if n in tips), default=None)
            if top is None:
                continue
            for name, tip in tips.items():
                lag[name] = max(lag.get(name, 0), top - tip["height"])
        return lag

    def _propagation(self, metrics: dict[str, dict[str, Any]], honest: list[str]) -> list[float]:
        arrivals = {name: m.get("cairn_block_first_seen_timestamp_seconds", {}) for name, m in metrics.items()}
        delays = []
        for mined in self.record.mined:
            origin = arrivals.get(mined["miner"], {}).get(mined["hash"])
            if origin is None:
                continue
            for name in honest:
                seen = arrivals[name].get(mined["hash"])
                if name != mined["miner"] and seen is not None:
                    delays.append(max(0.0, seen - origin))
        return delays


def _reorg_histogram(metrics: dict[str, dict[str, Any]], nodes: list[str]) -> dict[str, int]:
    """Reorg depths over ``nodes`` from the cumulative ``cairn_reorg_depth`` buckets: ``{"1": n, "7-8": n}``."""
    total: dict[str, int] = {}
    for name in nodes:
        buckets = metrics[name].get("cairn_reorg_depth_bucket", {})
        bounds = sorted((float(le), count) for le, count in buckets.items() if le != "+Inf")
        previous_bound, previous_count = 0.0, 0.0
        for bound, count in bounds:
            label = f"{int(bound)}" if bound - previous_bound == 1 else f"{int(previous_bound) + 1}-{int(bound)}"
            if count - previous_count:
                total[label] = total.get(label, 0) + int(count - previous_count)
            previous_bound, previous_count = bound, count
    return dict(sorted(total.items(), key=lambda item: int(item[0].split("-")[0])))  # shallow to deep


def write_outputs(out: Path, summary: dict[str, Any], record: Record) -> None:
    """``summary.json``, ``events.csv`` (events, blocks mined and payments, by time) and ``samples.json``."""
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    rows = [dict(e) for e in record.events]
    with (out / "events.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["time", "action", "node", "detail"])
        writer.writeheader()
        for row in sorted(rows, key=lambda r: r["time"]):
            writer.writerow(row)
    (out / "samples.json").write_text(json.dumps({"samples": record.samples, "mined": record.mined}) + "\n")
