"""Load: many wallet-like clients submitting valid transactions to several nodes at once, for a bounded time.

Three regtest ``cairn-node`` processes on loopback, each peered with the others. A key
is funded with many confirmed outputs (``netlab.coins.fund``); each client thread gets a
few of them and a node (clients are spread over the nodes round-robin), and for the
given time spends them like a wallet: pay a small amount to someone else, keep the
change, spend the change next (``POST /api/transactions`` over a keep-alive
``requests.Session``). Meanwhile a block is mined on node0 every ``block_interval``
seconds, as a network would. A rejected transaction leaves its coin to the client; a
request that fails leaves it aside (its fate is unknown).

Then blocks are mined until every mempool is empty, and every accepted transaction must
be confirmed on every node: each node's active chain since the start is read block by
block (``GET /api/blocks/<hash>``) and must hold every accepted txid. Any miss raises,
so the suite fails rather than report a figure for a run that lost a transaction.

1. accepted transactions per second, all clients together, vs an in-process
   ``Mempool.add`` loop on the same kind of transactions (``bench.node``'s funded chain):
   what HTTP, JSON, threads and three nodes relaying to each other cost.
2. p50 and 3. p99 of the ``POST /api/transactions`` latency seen by the clients under
   load, vs the same percentile for one client posting alone to an idle node
   (measured first, in the same run).

No targets: the figures depend on the clients the machine can drive; they are reported.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench.node import _funded_chain, time_mempool_adds
from bench.report import Progress, Result
from chain.builder import Key, Spendable
from chain.params import REGTEST
from devnet.process import NodeProcess, burn_address, start_all, sync_blocks, wait_until
from netlab.coins import fund, pay

SUITE = "load"
PAYMENT = 1_000  # smallest units paid per transaction: coins last thousands of spends


@dataclass(frozen=True)
class Sizes:
    nodes: int
    clients: int
    seconds: float
    coins_per_client: int
    block_interval: float
    idle_requests: int  # the unloaded latency baseline
    baseline_txs: int  # the in-process Mempool.add baseline


FULL = Sizes(
    nodes=3, clients=24, seconds=30.0, coins_per_client=4, block_interval=2.0, idle_requests=100, baseline_txs=400
)
QUICK = Sizes(
    nodes=3, clients=6, seconds=4.0, coins_per_client=2, block_interval=1.0, idle_requests=20, baseline_txs=60
)


@dataclass
class ClientStats:
    accepted: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    failed: int = 0


def post_transactions(
    url: str, coins: list[Spendable], payee: bytes, deadline: float, stats: ClientStats, limit: int | None = None
) -> None:
    """One wallet-like client: spend coins and their change round-robin until ``deadline`` (or ``limit`` posts)."""
    session = requests.Session()
    ring = deque(coins)
    try:
        while ring and time.perf_counter() < deadline and (limit is None or len(stats.latencies) < limit):
            coin = ring.popleft()
            tx, change = pay(coin, payee, REGTEST, PAYMENT)
            started = time.perf_counter()
            try:
                answer = session.post(url + "/api/transactions", json={"hex": tx.serialized.hex()}, timeout=60)
            except requests.RequestException:
                stats.failed += 1  # accepted or not, nobody knows: leave the coin alone
                continue
            stats.latencies.append(time.perf_counter() - started)
            if answer.status_code == 200:
                stats.accepted.append(answer.json()["txid"])
                ring.append(change)
            else:
                stats.rejected[_code(answer)] += 1
                ring.append(coin)
    finally:
        session.close()


def _code(answer: requests.Response) -> str:
    try:
        return str(answer.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return f"http-{answer.status_code}"


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` fall (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def confirmed_txids(node: NodeProcess, since: int) -> set[str]:
    """Txids of every block of ``node``'s active chain above height ``since``."""
    found: set[str] = set()
    for height in range(since + 1, node.height() + 1):
        block_hash = node.api("GET", f"/api/heights/{height}")["hash"]
        found.update(tx["txid"] for tx in node.api("GET", f"/api/blocks/{block_hash}")["transactions"])
    return found


def mempool_baseline(sizes: Sizes, workdir: Path) -> float:
    """Transactions per second admitted by ``Mempool.add`` in this process (same validation, no HTTP)."""
    blocks, spends = _funded_chain(sizes.baseline_txs)
    timing = time_mempool_adds(blocks, spends, workdir / "baseline.sqlite")
    return len(spends) / timing.wall


def main(quick: bool) -> list[Result]:
    sizes = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="cairn-bench-load-") as tmp:
        return run_load(sizes, Path(tmp), Progress(SUITE))


def run_load(sizes: Sizes, workdir: Path, progress: Progress) -> list[Result]:
    name = f"load: accepted txs, {sizes.clients} clients x {sizes.nodes} nodes"
    progress.start(name)
    baseline_rate = mempool_baseline(sizes, workdir)
    progress.note(f"in-process Mempool.add: {baseline_rate:,.0f} txs/s")
    nodes = [
        NodeProcess(workdir / f"node{i}", name=f"node{i}", network="regtest", log_level="INFO")
        for i in range(sizes.nodes)
    ]
    for node in nodes:
        node.peers = [other.url for other in nodes if other is not node]
    try:
        start_all(nodes, 120, peers=len(nodes) - 1)
        owner = Key()
        coins = fund(nodes[0], owner, sizes.clients * sizes.coins_per_client + sizes.idle_requests, REGTEST)
        sync_blocks(nodes, 120)
        start_height = nodes[0].height()
        payee = Key().pubkey_hash
        progress.note(f"{len(coins)} coins funded and confirmed at height {start_height}")

        idle = ClientStats()
        post_transactions(nodes[0].url, coins[: sizes.idle_requests], payee, float("inf"), idle, sizes.idle_requests)
        client_coins = coins[sizes.idle_requests :]
        stats = [ClientStats() for _ in range(sizes.clients)]
        deadline = time.perf_counter() + sizes.seconds
        clients = [
            threading.Thread(
                target=post_transactions,
                args=(
                    nodes[i % len(nodes)].url,
                    client_coins[i * sizes.coins_per_client : (i + 1) * sizes.coins_per_client],
                    payee,
                    deadline,
                    stats[i],
                ),
                name=f"client-{i}",
            )
            for i in range(sizes.clients)
        ]
        started = time.perf_counter()
        for thread in clients:
            thread.start()
        blocks_during = 0
        while time.perf_counter() < deadline:
            time.sleep(min(sizes.block_interval, max(0.0, deadline - time.perf_counter())))
            if time.perf_counter() < deadline:
                nodes[0].generate(1, burn_address("regtest"))
                blocks_during += 1
        for thread in clients:
            thread.join()
        elapsed = time.perf_counter() - started

        accepted = [txid for s in stats for txid in s.accepted] + idle.accepted
        latencies = [x for s in stats for x in s.latencies]
        rejected = sum((s.rejected for s in stats), Counter()) + idle.rejected
        failed = sum(s.failed for s in stats) + idle.failed
        progress.note(f"{len(accepted)} accepted, {sum(rejected.values())} rejected {dict(rejected)}, {failed} failed")

        drain_started = time.perf_counter()
        drain_blocks = 0

        def drained() -> bool:
            nonlocal drain_blocks
            if all(node.status()["mempool_size"] == 0 for node in nodes):
                return True
            nodes[0].generate(1, burn_address("regtest"))
            drain_blocks += 1
            sync_blocks(nodes, 120)
            return False

        wait_until(drained, 300, "every mempool to drain into blocks")
        tip = sync_blocks(nodes, 120)
        drain_seconds = time.perf_counter() - drain_started
        wanted = set(accepted)
        for node in nodes:
            missing = wanted - confirmed_txids(node, start_height)
            if missing:
                raise RuntimeError(
                    f"{len(missing)} accepted transactions are not confirmed on {node.name}: {sorted(missing)[:5]}"
                )
        if failed or rejected:
            raise RuntimeError(f"valid transactions were refused: {dict(rejected)}, {failed} requests failed")
        progress.note(f"all {len(wanted)} accepted transactions confirmed on all {len(nodes)} nodes at tip {tip[:16]}")
    finally:
        for node in nodes:
            node.stop()

    details = {
        "clients": sizes.clients,
        "nodes": sizes.nodes,
        "seconds": round(elapsed, 2),
        "accepted": len(accepted),
        "confirmed_on_every_node": len(wanted),
        "blocks_during_load": blocks_during,
        "blocks_to_drain": drain_blocks,
        "drain_seconds": round(drain_seconds, 2),
        "requests": len(latencies),
        "idle_requests": len(idle.latencies),
    }
    results = [
        progress.done(
            Result(
                SUITE,
                name,
                len(accepted) / elapsed,
                baseline_rate,
                "txs/s",
                f"valid transactions accepted per second from {sizes.clients} HTTP clients spread over "
                f"{sizes.nodes} peered nodes, every one then confirmed on every node",
                "the same kind of transactions admitted by Mempool.add in this process (no HTTP, one node)",
                None,
                details,
            )
        )
    ]
    for label, fraction in (("p50", 0.5), ("p99", 0.99)):
        percentile_name = f"load: POST /api/transactions latency {label}"
        progress.start(percentile_name)
        results.append(
            progress.done(
                Result(
                    SUITE,
                    percentile_name,
                    percentile(latencies, fraction),
                    percentile(idle.latencies, fraction),
                    "s",
                    f"{label} of the latency seen by the clients under load ({len(latencies)} requests)",
                    f"{label} for one client posting alone to an idle node ({len(idle.latencies)} requests)",
                    None,
                    {"mean_under_load": statistics.fmean(latencies), "mean_idle": statistics.fmean(idle.latencies)},
                )
            )
        )
    return results
