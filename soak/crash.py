"""SIGKILL real ``cairn-node`` processes at random moments during mining, sync and reorgs; lose and corrupt nothing.

Three regtest nodes on loopback, each peered with the others. Every round one node
is killed with SIGKILL (no chance to clean up, as in a power cut) at a random moment
of one of three scenarios:

- ``mining``: the victim is mining blocks (``POST /api/mining/generate``) and admitting
  transactions (``POST /api/transactions``);
- ``sync``: the victim was down while the others mined 10 to 60 blocks and has just been
  restarted, so it is downloading them from its peers;
- ``reorg``: the victim is being fed a competing branch, built here on an ancestor 1 to
  4 blocks below its tip and one to three blocks longer, then keeps mining.

What each node's API reported is recorded as it is reported: every block hash a
``generate`` or ``POST /api/blocks`` answer named, and every tip (with its chainwork)
a ``GET /api/status`` answer named (a watcher thread polls every node every 20 ms).
After each kill, while the node is down, its datadir is opened with ``ChainState``
and checked: the stored UTXO set equals one recomputed from the active chain's blocks
(``check_utxo_set``), every block the node had reported is stored with its data, and
the tip has at least the chainwork the node last reported. The node is restarted and
``GET /api/admin/utxo-check`` must agree. At the end all nodes must converge on one
tip and pass the same checks once more.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from chain.address import encode_address
from chain.block import Block
from chain.builder import Key, Spendable
from chain.chainstate import ChainState, Status
from chain.hashes import hex_to_hash
from chain.mining import build_block, solve_block
from chain.params import REGTEST
from devnet.process import NodeProcess, burn_address, sync_blocks, wait_until
from netlab.coins import fetch_block, fund, pay

log = logging.getLogger("soak")

SCENARIOS = ("mining", "sync", "reorg")
POLL = 0.02  # seconds between status polls of the watcher


@dataclass
class Reported:
    """What one node's API reported as accepted: block hashes and the most chainwork of a tip it named."""

    blocks: set[str] = field(default_factory=set)
    chainwork: int = 0
    height: int = 0
    tip: str = ""


@dataclass
class Check:
    """One examination of a node's store."""

    node: str
    where: str  # "offline" (datadir opened with ChainState) or "api" (GET /api/admin/utxo-check)
    utxo_ok: bool
    coins: int
    lost_blocks: list[str] = field(default_factory=list)
    chainwork_ok: bool = True
    height: int = -1

    @property
    def ok(self) -> bool:
        return self.utxo_ok and not self.lost_blocks and self.chainwork_ok


@dataclass
class Kill:
    round: int
    node: str
    scenario: str
    delay: float  # seconds from the start of the scenario to the SIGKILL
    height_before: int  # the last height its API reported
    behind: bool  # for sync: it had not yet reported the height its peers were at


class Soak:
    """The soak's state: nodes, coins, what was reported, and every check made."""

    def __init__(self, workdir: Path, *, nodes: int = 3, seed: int = 1) -> None:
        self.workdir = Path(workdir)
        self.rng = random.Random(seed)
        self.key = Key(self.rng.randbytes(31).rjust(32, b"\x01"))
        self.address = encode_address(self.key.pubkey_hash, REGTEST)
        self.payee = Key().pubkey_hash
        self.nodes = [
            NodeProcess(
                self.workdir / f"node{i}", name=f"node{i}", network="regtest", extra_args=["--log-level", "INFO"]
            )
            for i in range(nodes)
        ]
        for node in self.nodes:
            node.peers = [other.url for other in self.nodes if other is not node]
        self.reported: dict[str, Reported] = {node.name: Reported() for node in self.nodes}
        self.lock = threading.Lock()
        self.coins: deque[Spendable] = deque()
        self.checks: list[Check] = []
        self.kills: list[Kill] = []
        self.transactions_accepted = 0
        self._watching = threading.Event()
        self._watcher: threading.Thread | None = None

    # ------------------------------------------------------------ reporting

    def note_blocks(self, node: NodeProcess, hashes: list[str]) -> None:
        with self.lock:
            self.reported[node.name].blocks.update(hashes)

    def note_status(self, node: NodeProcess, status: dict[str, Any]) -> None:
        with self.lock:
            record = self.reported[node.name]
            record.blocks.add(status["tip"])
            work = int(status["chainwork"], 16)
            if work >= record.chainwork:
                record.chainwork, record.height, record.tip = work, int(status["height"]), status["tip"]

    def _watch(self) -> None:
        session = requests.Session()
        while not self._watching.wait(POLL):
            for node in self.nodes:
                if not node.running:
                    continue
                try:
                    answer = session.get(node.url + "/api/status", timeout=2)
                    if answer.status_code == 200:
                        self.note_status(node, answer.json())
                except requests.RequestException:
                    session.close()
                    session = requests.Session()
        session.close()

    # ------------------------------------------------------------ node actions

    def admin(self, session: requests.Session, node: NodeProcess, path: str, body: dict[str, Any]) -> Any:
        answer = session.post(node.url + path, json=body, headers={"Authorization": f"Bearer {node.token}"}, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def generate(self, session: requests.Session, node: NodeProcess, count: int) -> None:
        hashes = self.admin(
            session, node, "/api/mining/generate", {"blocks": count, "address": burn_address("regtest")}
        )
        self.note_blocks(node, hashes["blocks"])

    def send_transaction(self, session: requests.Session, node: NodeProcess) -> None:
        with self.lock:
            if not self.coins:
                return
            coin = self.coins.popleft()  # each coin is tried once: if the node dies first, it is left alone
        tx, _ = pay(coin, self.payee, REGTEST)
        answer = session.post(node.url + "/api/transactions", json={"hex": tx.serialized.hex()}, timeout=30)
        if answer.status_code == 200:
            with self.lock:
                self.transactions_accepted += 1

    def build_fork(self, node: NodeProcess) -> list[Block]:
        """A branch on an ancestor 1-4 blocks below ``node``'s tip, 1-3 blocks longer than its chain."""
        status = node.status()
        depth = self.rng.randint(1, min(4, status["height"] - 1))
        fork_height = status["height"] - depth
        parent = fetch_block(node, node.api("GET", f"/api/heights/{fork_height}")["hash"])
        blocks: list[Block] = []
        for offset in range(1, depth + self.rng.randint(1, 3) + 1):
            height = fork_height + offset
            block = build_block(
                parent.hash,
                height,
                parent.header.time + 1,
                parent.header.bits,  # regtest never retargets
                bytes([0x33]) * 20,
                REGTEST.block_subsidy(height),
                tag=f"soak fork {self.rng.getrandbits(32)}".encode(),
            )
            parent = solve_block(block)
            blocks.append(parent)
        return blocks

    def submit_block(self, session: requests.Session, node: NodeProcess, block: Block) -> None:
        answer = session.post(node.url + "/api/blocks", json={"hex": block.serialized.hex()}, timeout=30)
        answer.raise_for_status()
        self.note_blocks(node, [answer.json()["hash"]])

    # ------------------------------------------------------------ checks

    def check_offline(self, node: NodeProcess) -> Check:
        """Open the dead node's datadir with ChainState: UTXO set vs recomputation, reported blocks, chainwork."""
        chain = ChainState(REGTEST, node.datadir / "chain.sqlite")
        try:
            utxo = chain.check_utxo_set()
            with self.lock:
                record = self.reported[node.name]
                wanted = sorted(record.blocks)
                chainwork = record.chainwork
            lost = []
            for block_hash in wanted:
                index = chain.get_index(hex_to_hash(block_hash))
                if index is None or not index.status & Status.HAVE_DATA or index.failed:
                    lost.append(block_hash)
            check = Check(
                node.name, "offline", utxo.ok, utxo.stored, lost, chain.tip.chainwork >= chainwork, chain.height
            )
        finally:
            chain.close()
        self.checks.append(check)
        if not check.ok:
            log.error("%s store check failed: %s", node.name, check)
        return check

    def check_api(self, node: NodeProcess) -> Check:
        answer = node.admin("GET", "/api/admin/utxo-check")
        check = Check(node.name, "api", bool(answer["ok"]), int(answer["stored"]), height=node.height())
        self.checks.append(check)
        if not check.ok:
            log.error("%s utxo-check failed: %s", node.name, answer)
        return check

    # ------------------------------------------------------------ the soak

    def restart(self, node: NodeProcess) -> None:
        node.start().wait_ready(120)
        self.check_api(node)

    def setup(self, coins: int) -> None:
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_ready(120)
        for node in self.nodes:
            wait_until(lambda n=node: len(n.peer_urls()) == len(self.nodes) - 1, 60, f"{node.name} to have its peers")
        self.coins.extend(fund(self.nodes[0], self.key, coins, REGTEST))
        self.nodes[0].generate(5, burn_address("regtest"))  # reorgs of depth <= 4 never undo the funding
        sync_blocks(self.nodes, 120)
        self._watcher = threading.Thread(target=self._watch, name="watcher", daemon=True)
        self._watcher.start()

    def run_round(self, number: int, down: NodeProcess | None) -> NodeProcess:
        """Restart the node killed last round, then kill one at a random moment of a random scenario."""
        session = requests.Session()
        target_height = 0
        if down is not None:
            helper = self.rng.choice([n for n in self.nodes if n is not down])
            self.generate(session, helper, self.rng.randint(10, 60))  # what the restarted node must sync
            target_height = helper.height()
            self.restart(down)
        scenario = self.rng.choice(SCENARIOS if down is not None else ("mining", "reorg"))
        victim = down if scenario == "sync" and down is not None else self.rng.choice(self.nodes)
        fork = self.build_fork(victim) if scenario == "reorg" else []
        stop = threading.Event()

        def activity() -> None:
            own = requests.Session()
            try:
                for block in fork:
                    self.submit_block(own, victim, block)
                while not stop.is_set():
                    if scenario == "sync":  # the others keep mining while the victim catches up
                        self.generate(own, self.rng.choice([n for n in self.nodes if n is not victim]), 1)
                        continue
                    self.send_transaction(own, victim)
                    self.send_transaction(own, victim)
                    self.generate(own, victim, self.rng.randint(1, 3))
            except (requests.RequestException, ValueError):
                pass  # the victim died under us: that is the point
            finally:
                own.close()

        delay = {"mining": 2.5, "sync": 0.6, "reorg": 0.8}[scenario] * self.rng.random()
        thread = threading.Thread(target=activity, name=f"{scenario}-{number}", daemon=True)
        started = time.monotonic()
        thread.start()
        time.sleep(max(0.0, delay - (time.monotonic() - started)))
        victim.kill()
        stop.set()
        thread.join(60)
        session.close()
        with self.lock:
            height_before = self.reported[victim.name].height
        kill = Kill(number, victim.name, scenario, round(delay, 3), height_before, height_before < target_height)
        self.kills.append(kill)
        check = self.check_offline(victim)
        log.info(
            "kill %d: %s during %s after %.2fs at height %d -> store %s (%d coins, %d blocks reported)",
            number + 1,
            victim.name,
            scenario,
            delay,
            height_before,
            "ok" if check.ok else "CORRUPT",
            check.coins,
            len(self.reported[victim.name].blocks),
        )
        return victim

    def finish(self, down: NodeProcess | None) -> str:
        if down is not None:
            self.restart(down)
        # The last blocks may have been mined on two nodes at once: equal work, and each node keeps the one it
        # saw first (as Bitcoin does) until a next block breaks the tie. Let every node catch up, then mine it.
        wait_until(lambda: len({node.height() for node in self.nodes}) == 1, 180, "every node at one height")
        self.nodes[0].generate(1, burn_address("regtest"))
        tip = sync_blocks(self.nodes, 180)
        for node in self.nodes:
            self.check_api(node)
        self._watching.set()
        if self._watcher is not None:
            self._watcher.join()
        for node in self.nodes:
            node.stop()
            self.check_offline(node)
        return tip

    def stop(self) -> None:
        self._watching.set()
        for node in self.nodes:
            node.stop()

    def reorgs_logged(self) -> int:
        pattern = re.compile(r"reorg from \w+ to \w+, depth (\d+)")
        return sum(len(pattern.findall(node.log_path.read_text(errors="replace"))) for node in self.nodes)


def run(workdir: Path, kills: int, seed: int, nodes: int = 3) -> dict[str, Any]:
    """The whole soak; returns its figures (``ok`` is False on any corruption or lost block)."""
    started = time.monotonic()
    soak = Soak(workdir, nodes=nodes, seed=seed)
    try:
        soak.setup(coins=max(50, 8 * kills))
        down: NodeProcess | None = None
        for number in range(kills):
            down = soak.run_round(number, down)
        tip = soak.finish(down)
    finally:
        soak.stop()
    failed = [c for c in soak.checks if not c.ok]
    scenarios = Counter(k.scenario for k in soak.kills)
    return {
        "ok": not failed and len(soak.kills) == kills,
        "kills": len(soak.kills),
        "kills_by_scenario": dict(sorted(scenarios.items())),
        "sync_kills_while_behind": sum(k.behind for k in soak.kills if k.scenario == "sync"),
        "checks": len(soak.checks),
        "offline_checks": sum(c.where == "offline" for c in soak.checks),
        "api_checks": sum(c.where == "api" for c in soak.checks),
        "corruptions": sum(not c.utxo_ok for c in soak.checks),
        "lost_blocks": sum(len(c.lost_blocks) for c in soak.checks),
        "chainwork_regressions": sum(not c.chainwork_ok for c in soak.checks),
        "blocks_reported": sum(len(r.blocks) for r in soak.reported.values()),
        "transactions_accepted": soak.transactions_accepted,
        "reorgs_logged": soak.reorgs_logged(),
        "final_height": max(c.height for c in soak.checks),
        "final_tip": tip,
        "failed_checks": [c.__dict__ for c in failed],
        "seconds": round(time.monotonic() - started, 1),
        "nodes": nodes,
        "seed": seed,
    }
