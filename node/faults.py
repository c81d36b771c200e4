"""Fault injection: make one node misbehave on purpose, to watch the network cope (``/api/admin/faults``).

Four faults, each set by an admin ``POST /api/admin/faults`` and cleared by ``DELETE``:

- ``blocked_peers``: URLs this node neither sends to nor accepts p2p requests from (a partition).
  Outbound requests to them fail as if the network were down; inbound p2p requests naming
  them in ``X-Cairn-Peer`` are answered ``503 partitioned``, which the caller treats as an
  unreachable peer (it retries with backoff, it does not forget or ban us). When a URL is
  unblocked the peer is retried at once.
- ``delay_ms``: latency added before every outbound p2p request and every inbound one.
- ``clock_skew``: seconds added to this node's clock: mining timestamps, the future-time rule
  (``ChainState``'s clock) and ``/api/status``'s ``time``.
- ``byzantine``: a thread mines blocks whose coinbase pays one coin more than allowed
  (``bad-cb-amount``) on this node's tip, about once a second, announces them and serves their
  headers and data over p2p. Honest peers download one, fail to connect it and ban us.

Counters (requests blocked or delayed, milliseconds slept, bad blocks made) only grow; ``DELETE``
resets the faults, not the counters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from chain.block import Block, BlockHeader
from chain.mining import build_block, solve_block
from chain.transaction import COIN
from node.errors import BadRequest, NodeError, PeerError
from node.peers import normalize_url

if TYPE_CHECKING:
    from node.service import Node

log = logging.getLogger(__name__)

MAX_DELAY_MS = 10_000
MAX_SKEW = 7 * 24 * 60 * 60
MAX_BLOCKED = 100
BYZANTINE_INTERVAL = 1.0  # seconds between two invalid blocks
BAD_BLOCKS_KEPT = 16
FIELDS = ("blocked_peers", "delay_ms", "clock_skew", "byzantine")


class Partitioned(NodeError):
    """A p2p request from a peer this node is partitioned from: to the caller, an unreachable node."""

    status = 503
    code = "partitioned"


class Faults:
    """The fault state of one node, and the hooks the peers, the API and the chain call."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._lock = threading.Lock()
        self.blocked_peers: frozenset[str] = frozenset()
        self.delay_ms = 0
        self.clock_skew = 0
        self.byzantine = False
        self.counters = {
            "blocked_in": 0,
            "blocked_out": 0,
            "delayed_in": 0,
            "delayed_out": 0,
            "delayed_ms": 0,
            "bad_blocks": 0,
        }
        self._bad_blocks: OrderedDict[bytes, Block] = OrderedDict()
        self._byzantine_stop = threading.Event()
        self._byzantine_thread: threading.Thread | None = None

    # ------------------------------------------------------------ state

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "blocked_peers": sorted(self.blocked_peers),
                "delay_ms": self.delay_ms,
                "clock_skew": self.clock_skew,
                "byzantine": self.byzantine,
                "counters": dict(self.counters),
            }

    def update(self, body: dict[str, Any]) -> dict[str, Any]:
        """Set the faults named in ``body`` (the others stay as they are); BadRequest on anything malformed."""
        unknown = sorted(set(body) - set(FIELDS))
        if unknown:
            raise BadRequest(f"unknown fault {unknown[0]!r:.40}; the faults are {', '.join(FIELDS)}", "unknown-fault")
        blocked = self.blocked_peers
        if "blocked_peers" in body:
            urls = body["blocked_peers"]
            if not isinstance(urls, list) or len(urls) > MAX_BLOCKED:
                raise BadRequest(f"blocked_peers must be a list of at most {MAX_BLOCKED} peer URLs")
            blocked = frozenset(normalize_url(url) for url in urls)
        delay = self._int(body, "delay_ms", 0, MAX_DELAY_MS, self.delay_ms)
        skew = self._int(body, "clock_skew", -MAX_SKEW, MAX_SKEW, self.clock_skew)
        byzantine = body.get("byzantine", self.byzantine)
        if not isinstance(byzantine, bool):
            raise BadRequest("byzantine must be true or false")
        self._apply(blocked, delay, skew, byzantine)
        return self.to_json()

    def reset(self) -> dict[str, Any]:
        self._apply(frozenset(), 0, 0, False)
        return self.to_json()

    @staticmethod
    def _int(body: dict[str, Any], name: str, low: int, high: int, current: int) -> int:
        value = body.get(name, current)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise BadRequest(f"{name} must be an integer from {low} to {high}")
        return value

    def _apply(self, blocked: frozenset[str], delay: int, skew: int, byzantine: bool) -> None:
        with self._lock:
            unblocked = self.blocked_peers - blocked
            changed = (blocked, delay, skew, byzantine) != (
                self.blocked_peers,
                self.delay_ms,
                self.clock_skew,
                self.byzantine,
            )
            self.blocked_peers, self.delay_ms, self.clock_skew, self.byzantine = blocked, delay, skew, byzantine
        if changed:
            log.warning(
                "faults: blocked peers %s, delay %d ms, clock skew %+d s, byzantine %s",
                ", ".join(sorted(blocked)) or "none",
                delay,
                skew,
                "on" if byzantine else "off",
            )
        for url in unblocked:  # heal: try the peer again now rather than after its backoff
            if self.node.peers.get(url) is not None:
                try:
                    self.node.peers.add(url)
                except NodeError as exc:  # banned meanwhile, say: it stays out
                    log.info("not retrying %s after the partition: %s", url, exc.message)
        if byzantine:
            self._start_byzantine()
        else:
            self._stop_byzantine()

    # ------------------------------------------------------------ clock

    def now(self) -> float:
        """This node's clock: the system clock shifted by ``clock_skew`` seconds."""
        return time.time() + self.clock_skew

    # ------------------------------------------------------------ p2p hooks

    def _delay(self, direction: str) -> None:
        delay = self.delay_ms
        if delay <= 0:
            return
        with self._lock:
            self.counters[f"delayed_{direction}"] += 1
            self.counters["delayed_ms"] += delay
        time.sleep(delay / 1000)

    def before_outbound(self, url: str) -> None:
        """Called before every request to a peer: PeerError when partitioned from it, else sleep ``delay_ms``."""
        if url in self.blocked_peers:
            with self._lock:
                self.counters["blocked_out"] += 1
            raise PeerError(f"{url} is unreachable: partitioned by fault injection")
        self._delay("out")

    def before_inbound(self, url: str | None) -> None:
        """Called before every p2p request served: Partitioned when it comes from a blocked peer, else sleep."""
        if url is not None and self.blocked_peers:
            try:
                sender = normalize_url(url)
            except BadRequest:
                sender = url
            if sender in self.blocked_peers:
                with self._lock:
                    self.counters["blocked_in"] += 1
                raise Partitioned(f"this node is partitioned from {sender}")
        self._delay("in")

    # ------------------------------------------------------------ byzantine

    def headers_answer(self, headers: list[BlockHeader]) -> list[BlockHeader]:
        """The p2p headers answer, with the newest invalid block appended when the answer reaches our tip."""
        if not self.byzantine:
            return headers
        tip = self.node.chain.tip.hash
        if headers and headers[-1].hash != tip:
            return headers
        with self._lock:
            bad = [b.header for b in self._bad_blocks.values() if b.header.prev_hash == tip]
        return headers + bad[-1:]

    def bad_block(self, block_hash: bytes) -> Block | None:
        with self._lock:
            return self._bad_blocks.get(block_hash)

    def _start_byzantine(self) -> None:
        if self._byzantine_thread is not None and self._byzantine_thread.is_alive():
            return
        self._byzantine_stop.clear()
        self._byzantine_thread = threading.Thread(target=self._byzantine_loop, name="byzantine", daemon=True)
        self._byzantine_thread.start()

    def _stop_byzantine(self) -> None:
        self._byzantine_stop.set()
        thread = self._byzantine_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self._byzantine_thread = None

    def stop(self) -> None:
        self._stop_byzantine()

    def make_bad_block(self) -> Block:
        """A block on our tip with valid proof of work whose coinbase pays one coin too many (``bad-cb-amount``)."""
        node = self.node
        chain, params = node.chain, node.params
        with node.lock:
            tip = chain.tip
            height = tip.height + 1
            timestamp = max(int(self.now()), chain.median_time_past(tip) + 1)
            bits = chain.next_bits(tip)
        reward_to = bytes([0xBA]) * 20
        template = build_block(
            tip.hash, height, timestamp, bits, reward_to, params.block_subsidy(height) + COIN, tag=b"cairn-byzantine"
        )
        return solve_block(template)

    def _byzantine_loop(self) -> None:
        log.warning("byzantine: mining and announcing invalid blocks")
        while not self._byzantine_stop.is_set() and not self.node.stopping:
            try:
                block = self.make_bad_block()
            except Exception:
                log.exception("byzantine: could not make a block")
                self._byzantine_stop.wait(BYZANTINE_INTERVAL)
                continue
            with self._lock:
                self._bad_blocks[block.hash] = block
                while len(self._bad_blocks) > BAD_BLOCKS_KEPT:
                    self._bad_blocks.popitem(last=False)
                self.counters["bad_blocks"] += 1
            sent = self.node.peers.announce("blocks", block.hash)
            log.warning("byzantine: announced invalid block %s to %d peers", block.hash_hex, sent)
            self._byzantine_stop.wait(BYZANTINE_INTERVAL)
        log.warning("byzantine: stopped")
