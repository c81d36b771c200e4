"""Prometheus counters of one node, served as text at ``GET /metrics`` (``prometheus_client``).

Each ``Node`` has its own ``CollectorRegistry`` (several nodes can live in one test
process). The ``Node`` calls ``on_block``, ``on_rejected`` and ``on_transaction`` as
things happen, and its ``PeerManager`` calls ``on_transaction_fetch`` and
``on_transactions_fetched`` around each request for announced transactions; gauges
(height, mempool, peers, bans) are read from the node when scraped.

``cairn_block_first_seen_timestamp_seconds{block=...}`` gives, for the last
``ARRIVALS_KEPT`` blocks, the wall-clock time (``time.time()``, never the fault-injected
skewed clock) when this node first stored the block's data. The experiment lab
subtracts the miner's time from every other node's to get propagation delays.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from chain.block import Block
from chain.chainstate import ChainUpdate

if TYPE_CHECKING:
    from node.service import Node

ARRIVALS_KEPT = 1000
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REORG_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 50, 100)


class NodeMetrics:
    """The counters of one node and the collector reading its current state."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.registry = CollectorRegistry(auto_describe=True)
        self.blocks_received = Counter(
            "cairn_blocks_received",
            "New blocks stored, by where they came from (peer, or local: API and miner)",
            ["source"],
            registry=self.registry,
        )
        self.blocks_connected = Counter(
            "cairn_blocks_connected", "Blocks connected to the active chain", registry=self.registry
        )
        self.blocks_disconnected = Counter(
            "cairn_blocks_disconnected", "Blocks disconnected by reorgs (they became stale)", registry=self.registry
        )
        self.stale_blocks = Counter(
            "cairn_stale_blocks",
            "New blocks stored off the active chain, plus blocks disconnected by reorgs",
            registry=self.registry,
        )
        self.reorgs = Counter("cairn_reorgs", "Chain reorganizations", registry=self.registry)
        self.reorg_depth = Histogram(
            "cairn_reorg_depth", "Blocks disconnected per reorganization", buckets=REORG_BUCKETS, registry=self.registry
        )
        self.blocks_rejected = Counter(
            "cairn_blocks_rejected", "Blocks refused, by reason code", ["reason"], registry=self.registry
        )
        self.transactions_accepted = Counter(
            "cairn_transactions_accepted", "Transactions admitted to the mempool", registry=self.registry
        )
        self.transaction_fetches = Counter(
            "cairn_p2p_transaction_fetches",
            "Requests to peers for announced transactions, by kind: one (GET /p2p/transactions/<txid>) "
            "or batch (POST /p2p/transactions, several txids)",
            ["kind"],
            registry=self.registry,
        )
        for kind in ("one", "batch"):
            self.transaction_fetches.labels(kind)  # both kinds are scraped from the start, at 0
        self.transactions_fetched = Counter(
            "cairn_p2p_transactions_fetched",
            "Transactions received from peers in answer to those requests",
            registry=self.registry,
        )
        self._lock = threading.Lock()
        self._arrivals: OrderedDict[str, float] = OrderedDict()
        self.registry.register(_StateCollector(self))

    # ------------------------------------------------------------ events

    def on_block(self, block: Block, update: ChainUpdate, from_peer: bool, active: bool) -> None:
        """A block went through ``accept_block``: count it, its arrival time, and any reorg it caused."""
        if update.is_new:
            self.blocks_received.labels("peer" if from_peer else "local").inc()
            with self._lock:
                self._arrivals[block.hash_hex] = time.time()
                while len(self._arrivals) > ARRIVALS_KEPT:
                    self._arrivals.popitem(last=False)
            if not active:
                self.stale_blocks.inc()
        if update.connected:
            self.blocks_connected.inc(len(update.connected))
        if update.disconnected:
            self.reorgs.inc()
            self.reorg_depth.observe(update.reorg_depth)
            self.blocks_disconnected.inc(len(update.disconnected))
            self.stale_blocks.inc(len(update.disconnected))

    def on_rejected(self, reason: str) -> None:
        self.blocks_rejected.labels(reason).inc()

    def on_transaction(self) -> None:
        self.transactions_accepted.inc()

    def on_transaction_fetch(self, kind: str) -> None:
        """A request for announced transactions is about to go to a peer: ``one`` txid or a ``batch``."""
        self.transaction_fetches.labels(kind).inc()

    def on_transactions_fetched(self, count: int) -> None:
        self.transactions_fetched.inc(count)

    def arrivals(self) -> dict[str, float]:
        with self._lock:
            return dict(self._arrivals)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """Gauges read from the node at scrape time."""

    def __init__(self, metrics: NodeMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # collected fresh on every scrape

    def collect(self) -> Iterator[Metric]:
        node = self.metrics.node
        yield GaugeMetricFamily("cairn_chain_height", "Height of the active chain tip", value=node.chain.height)
        yield GaugeMetricFamily("cairn_mempool_transactions", "Transactions in the mempool", value=len(node.mempool))
        yield GaugeMetricFamily(
            "cairn_peers_connected", "Peers in the connected state", value=len(node.peers.connected())
        )
        yield GaugeMetricFamily("cairn_peers_banned", "Peer URLs banned now", value=len(node.peers.bans()))
        arrivals = GaugeMetricFamily(
            "cairn_block_first_seen_timestamp_seconds",
            "Wall-clock time this node first stored each recent block",
            labels=["block"],
        )
        for block_hash, seen in self.metrics.arrivals().items():
            arrivals.add_metric([block_hash], seen)
        yield arrivals
