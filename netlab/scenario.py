"""The partition scenario, run inside the lab's control namespace (``python -m netlab.scenario CONFIG``).

``netlab.lab`` builds the namespaces and hands this process the TAP descriptors; this
process runs the switch (``netlab.switch``) in a thread, starts one ``cairn-node`` per
node namespace (``ip netns exec``), and talks to the nodes' APIs over the control port,
which the switch never delays, drops or cuts. Steps, each checked:

1. all nodes up and peered with each other (full mesh) across the delayed, lossy links;
2. a key funded with confirmed coins, on every node;
3. partition into halves A and B; for ``partition_seconds`` A mines a block every tick and
   B every other tick (so A ends with more work), and each tick both sides receive signed
   transactions spending coins reserved for that side; the sides must diverge, and no
   node of B may know A's tip;
4. heal; every node must reach the tip of the side with the most work (A, unless chance had A's
   blocks go stale) -- timed;
5. every transaction accepted on either side must, on every node, be confirmed or in its
   mempool; then blocks are mined until the mempools are empty and every one of them
   must be confirmed on every node.

The figures go to ``config["result"]`` as JSON; the exit status is 0 only if all held.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
from pathlib import Path
from typing import Any

from chain.address import encode_address
from chain.builder import Key, Spendable
from chain.params import REGTEST
from devnet.process import NodeAPIError, NodeProcess, burn_address, start_all, sync_blocks, wait_until
from netlab.coins import fund, pay
from netlab.switch import Switch

log = logging.getLogger("netlab")

PORT = 8701


class NamespaceNode(NodeProcess):
    """A ``cairn-node`` in its own network namespace, listening on its namespace's address only."""

    def __init__(self, directory: Path, name: str, namespace: str, address: str) -> None:
        super().__init__(directory, name=name, network="regtest", port=PORT, log_level="INFO")
        self.namespace = namespace
        self.address = address
        self.url = f"http://{address}:{PORT}"

    def command(self) -> list[str]:
        args = super().command()
        args[args.index("--host") + 1] = self.address
        return ["ip", "netns", "exec", self.namespace, *args]


def confirmed(node: NodeProcess, txid: str) -> bool:
    try:
        return int(node.api("GET", f"/api/transactions/{txid}")["confirmations"]) > 0
    except NodeAPIError as exc:
        if exc.status == 404:
            return False
        raise


def run(config: dict[str, Any]) -> dict[str, Any]:
    rng = random.Random(config["seed"])
    workdir = Path(config["workdir"])
    count = len(config["nodes"])
    switch = Switch(
        config["fds"], range(count), delay=config["delay_ms"] / 1000, loss=config["loss"], seed=config["seed"]
    )
    switch.start()
    nodes = [
        NamespaceNode(workdir / f"node{i}", f"node{i}", spec["namespace"], spec["address"])
        for i, spec in enumerate(config["nodes"])
    ]
    for node in nodes:
        node.peers = [other.url for other in nodes if other is not node]
    result: dict[str, Any] = {"ok": False, "nodes": count, "delay_ms": config["delay_ms"], "loss": config["loss"]}
    result["partition_seconds"] = config["partition_seconds"]
    started = time.monotonic()
    try:
        start_all(nodes, 120, peers=count - 1)
        result["setup_seconds"] = round(time.monotonic() - started, 1)
        log.info("%d nodes up and meshed in %.1fs", count, time.monotonic() - started)

        key = Key()
        per_side = config["transactions_per_side"]
        coins = fund(nodes[0], key, 2 * per_side, REGTEST)
        fork_height = nodes[0].height()
        sync_blocks(nodes, 180)
        half = count // 2
        sides = {"A": nodes[:half], "B": nodes[half:]}
        side_coins: dict[str, list[Spendable]] = {"A": coins[0::2], "B": coins[1::2]}
        payee = Key().pubkey_hash

        switch.partition([range(half), range(half, count)])
        accepted: dict[str, list[str]] = {"A": [], "B": []}
        mined = {"A": 0, "B": 0}
        tick = config["tick_seconds"]
        ticks = max(2, round(config["partition_seconds"] / tick))
        address = encode_address(bytes([0x44]) * 20, REGTEST)
        for number in range(ticks):
            tick_started = time.monotonic()
            for side, members in sides.items():
                if side == "A" or number % 2 == 1:
                    members[0].generate(1, address)  # one miner a side: the side's own forks stay out of the way
                    mined[side] += 1
                for _ in range(per_side // ticks + (1 if number < per_side % ticks else 0)):
                    if not side_coins[side]:
                        break
                    tx, _ = pay(side_coins[side].pop(), payee, REGTEST)
                    try:
                        accepted[side].append(rng.choice(members).send_transaction(tx.serialized.hex()))
                    except NodeAPIError as exc:
                        log.warning("side %s refused a transaction: %s", side, exc.code)
            spent = time.monotonic() - tick_started
            log.info("tick %d: %.2fs (A mined %d, B mined %d)", number + 1, spent, mined["A"], mined["B"])
            time.sleep(max(0.0, tick - spent))
        tips = {side: sync_blocks(members, 180) for side, members in sides.items()}

        def work(side: str) -> int:
            return int(sides[side][0].status()["chainwork"], 16)

        while work("A") == work("B"):  # a tie would leave each side on its own tip: break it
            sides["A"][0].generate(1, address)
            tips["A"] = sync_blocks(sides["A"], 180)
        winner, loser = ("A", "B") if work("A") > work("B") else ("B", "A")
        if tips["A"] == tips["B"]:
            raise AssertionError("the two sides did not diverge: the partition let blocks through")
        for node in sides["B"]:
            try:
                node.api("GET", f"/api/blocks/{tips['A']}")
                raise AssertionError(f"{node.name} (side B) knows side A's tip: the partition leaked")
            except NodeAPIError as exc:
                if exc.status != 404:
                    raise
        heights = {side: members[0].height() for side, members in sides.items()}
        result.update(
            blocks_mined=mined,
            transactions_accepted={side: len(txids) for side, txids in accepted.items()},
            heights_before_heal=heights,
            fork_height=fork_height,
        )
        log.info("partitioned: A at %d, B at %d; healing", heights["A"], heights["B"])

        healed = time.monotonic()
        switch.heal()
        wait_until(lambda: all(n.tip() == tips[winner] for n in nodes), 300, "every node to reach the most-work tip")
        result["heal_to_converged_seconds"] = round(time.monotonic() - healed, 1)
        result["most_work_side"] = winner
        result["reorg_depth_on_losing_side"] = heights[loser] - fork_height
        log.info("converged on %s's tip %s in %.1fs", winner, tips[winner][:16], time.monotonic() - healed)

        everything = accepted["A"] + accepted["B"]

        def accounted() -> dict[str, int] | None:
            counts = {"confirmed": 0, "in_mempool": 0}
            for node in nodes:
                pool = node.mempool()
                for txid in everything:
                    if txid in pool:
                        counts["in_mempool"] += 1
                    elif confirmed(node, txid):
                        counts["confirmed"] += 1
                    else:
                        return None
            return counts

        counts = wait_until(accounted, 180, "every accepted transaction confirmed or in the mempool on every node")
        result["after_heal_per_node"] = {k: v // count for k, v in counts.items()}
        drain = 0
        while any(n.status()["mempool_size"] for n in nodes):
            nodes[0].generate(1, burn_address("regtest"))
            drain += 1
            sync_blocks(nodes, 180)
            if drain > 20:
                raise AssertionError("mempools did not drain in 20 blocks")
        missing = [(n.name, t) for n in nodes for t in everything if not confirmed(n, t)]
        if missing:
            raise AssertionError(f"{len(missing)} accepted transactions are not confirmed: {missing[:5]}")
        result.update(
            blocks_to_drain=drain,
            transactions_confirmed_everywhere=len(everything),
            final_height=nodes[0].height(),
            ok=True,
        )
    finally:
        result["seconds"] = round(time.monotonic() - started, 1)
        for node in nodes:
            node.stop()
        switch.stop()
        result["frames"] = dict(sorted(switch.stats.items()))
    return result


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    config = json.loads(Path(argv[0]).read_text())
    try:
        result = run(config)
    except Exception as exc:
        log.exception("the scenario failed")
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:4000]}
    Path(config["result"]).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
