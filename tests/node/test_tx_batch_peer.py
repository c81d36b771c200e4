"""A scripted peer answering the node's batched transaction fetch (``POST /p2p/transactions``) as it likes.

The node is a real ``Node`` served by waitress in this process (``tests/hostile/harness.py``),
the peer a real HTTP server on loopback (``tests/stub_peer.py``), as in ``test_gossip.py``.
To make the node ask for several transactions in one request, the peer first announces
one transaction and holds the node's ``GET`` for it; while the node's fetch thread
waits, the peer announces the others (they are queued by the time that announcement is
answered), then lets the held answer go: the thread comes back to find them all queued
and asks for them together.

An answer holding anything but distinct asked-for transactions (trailing bytes, a
count above what was asked, a transaction not asked for, one sent twice) costs the
peer 20 misbehaviour points, like an undecodable single transaction, and none of its
transactions is used. A valid answer is admitted in announcement order whatever its own
order; a transaction it lacks is fetched when announced again.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from chain.block import Block
from chain.builder import ChainBuilder, Key
from chain.encoding import varint
from chain.hashes import hash_to_hex
from chain.params import REGTEST
from chain.transaction import COIN, Transaction
from devnet.process import wait_until
from node.peers import Peer
from node.service import Node
from node.sync import FETCH_ATTEMPTS
from tests.hostile.harness import node_log, served_node
from tests.stub_peer import NOT_FOUND, Reply, StubPeer, json_reply, raw_reply

PAYEE = Key()

Answer = Callable[[list[Transaction]], bytes]
"""Builds a batch answer from the transactions the peer holds among those asked, in the order asked."""


def honest(txs: list[Transaction]) -> bytes:
    return varint(len(txs)) + b"".join(tx.serialized for tx in txs)


class BatchPeer(StubPeer):
    """Serves ``transactions`` one at a time (GET) and in batches (POST, answered by ``answer``)."""

    version = "batch"

    def __init__(self) -> None:
        self.transactions: dict[str, Transaction] = {}  # txid hex -> transaction
        self.answer: Answer = honest
        self.arrived: list[str] = []  # requests as they arrive, before they are answered
        self.batches: list[list[str]] = []  # the txids of each batch request, as asked
        self.failing = 0  # how many batch requests to come answer 503 (an overloaded peer, a dropped connection)
        self.held_path = ""  # a GET that waits for ``gate`` before it is answered
        self.gate = threading.Event()
        self.gate.set()
        super().__init__()

    def get(self, path: str) -> Reply:
        self.arrived.append(f"GET {path}")
        if path == "/p2p/addresses":
            return json_reply({"peers": []})
        if path.startswith("/p2p/headers"):
            return json_reply({"headers": []})
        if path == self.held_path:
            self.gate.wait(60)
        if path.startswith("/p2p/transactions/") and path[18:] in self.transactions:
            return raw_reply(self.transactions[path[18:]].serialized)
        return NOT_FOUND

    def post(self, path: str, body: bytes) -> Reply:
        self.arrived.append(f"POST {path}")
        if path != "/p2p/transactions":
            return super().post(path, body)
        asked = json.loads(body)["txids"]
        self.batches.append(asked)
        if self.failing:
            self.failing -= 1
            return json_reply({"error": {"code": "busy", "message": "try again later"}}, 503)
        return raw_reply(self.answer([self.transactions[t] for t in asked if t in self.transactions]))

    def announce(self, node_url: str, txs: list[Transaction]) -> None:
        answer = requests.post(
            f"{node_url}/p2p/inv",
            json={"transactions": [hash_to_hex(tx.txid) for tx in txs]},
            headers={"X-Cairn-Peer": self.url},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text

    def announce_as_one_batch(self, node_url: str, first: Transaction, rest: list[Transaction]) -> None:
        """Announce ``first``, hold the node's fetch of it while announcing ``rest``, then answer that fetch."""
        self.held_path = f"/p2p/transactions/{hash_to_hex(first.txid)}"
        self.gate.clear()
        self.announce(node_url, [first])
        wait_until(lambda: f"GET {self.held_path}" in self.arrived, 30, "the node to ask for the first transaction")
        self.announce(node_url, rest)  # queued behind the held fetch
        self.gate.set()

    def close(self) -> None:
        self.gate.set()
        super().close()


class World:
    """A served regtest node with a connected BatchPeer holding valid transactions for it.

    ``first`` opens the batch (fetched alone); the batch is ``parent -> child -> grandchild``
    (a chain) and ``other``; ``stranger`` is never announced, only sent unasked; ``sentinel``, announced
    after a batch, is fetched once the node is done with that batch (one fetch thread).
    """

    def __init__(self, url: str, node: Node, peer: BatchPeer, builder: ChainBuilder, blocks: list[Block]) -> None:
        self.url, self.node, self.peer = url, node, peer
        coinbases = [builder.coinbase_spendable(block) for block in blocks[:5]]
        self.first = builder.spend([coinbases[0]], PAYEE.pubkey_hash, COIN, fee=1000)
        self.parent, self.child, self.grandchild = builder.spend_chain(
            coinbases[1], PAYEE.pubkey_hash, 3, COIN, fee=1000
        )
        self.other = builder.spend([coinbases[2]], PAYEE.pubkey_hash, COIN, fee=1000)
        self.stranger = builder.spend([coinbases[3]], PAYEE.pubkey_hash, COIN, fee=1000)
        self.sentinel = builder.spend([coinbases[4]], PAYEE.pubkey_hash, COIN, fee=1000)
        for tx in (self.first, self.parent, self.child, self.grandchild, self.other, self.stranger, self.sentinel):
            peer.transactions[hash_to_hex(tx.txid)] = tx
        self.batch = [self.parent, self.child, self.grandchild, self.other]

    @property
    def sender(self) -> Peer:
        sender = self.node.peers.get(self.peer.url)
        assert sender is not None
        return sender

    def pooled(self, txs: list[Transaction]) -> list[bool]:
        return [tx.txid in self.node.mempool for tx in txs]

    def send_batch(self) -> None:
        self.peer.announce_as_one_batch(self.url, self.first, self.batch)
        wait_until(lambda: self.peer.batches, 30, "the node's batch request")
        assert self.peer.batches == [[hash_to_hex(tx.txid) for tx in self.batch]], "one request, announcement order"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    builder = ChainBuilder(REGTEST)
    blocks = builder.add_chain(14)  # the coinbases of blocks 1..5 are mature
    peer = BatchPeer()
    try:
        with served_node(tmp_path / "data") as served:
            for block in blocks:
                served.node.submit_block(block)
            handshake = requests.post(f"{served.url}/p2p/handshake", json=peer.hello(), timeout=30)
            assert handshake.status_code == 200, handshake.text
            yield World(served.url, served.node, peer, builder, blocks)
    finally:
        peer.close()


def test_a_batch_answer_is_admitted_in_announcement_order_whatever_its_own(world: World) -> None:
    world.peer.answer = lambda txs: honest(txs[::-1])  # children first: the node must reorder them
    world.send_batch()
    wait_until(lambda: all(world.pooled(world.batch)), 30, "the whole batch in the mempool")
    assert world.sender.score == 0
    single = [r for r in world.peer.arrived if r.startswith("GET /p2p/transactions/")]
    assert single == [f"GET {world.peer.held_path}"], "only the first transaction was fetched alone"


def test_transactions_a_batch_answer_lacks_are_fetched_when_announced_again(world: World) -> None:
    world.peer.answer = lambda txs: honest(txs[:2])  # parent and child; grandchild and other "not found"
    world.send_batch()
    wait_until(lambda: all(world.pooled(world.batch[:2])), 30, "parent and child in the mempool")
    world.peer.answer = honest
    rest = world.batch[2:]

    def fetched_again() -> bool:
        if not all(world.pooled(rest)):
            world.peer.announce(world.url, rest)  # refetched only once the node forgot asking for them
        return all(world.pooled(rest))

    wait_until(fetched_again, 30, "the missing transactions fetched after a new announcement")
    assert world.sender.score == 0


def test_a_failed_batch_fetch_is_tried_again(world: World) -> None:
    world.peer.failing = 1
    world.send_batch()
    wait_until(lambda: all(world.pooled(world.batch)), 30, "the whole batch in the mempool after a second try")
    asked = [hash_to_hex(tx.txid) for tx in world.batch]
    assert world.peer.batches == [asked, asked], "asked again, the same transactions in the same order"
    assert world.sender.score == 0, "a failed request is no misbehaviour"


def test_the_node_gives_up_after_three_failed_fetches_until_announced_again(world: World) -> None:
    world.peer.failing = FETCH_ATTEMPTS
    world.send_batch()
    syncer = world.node.syncer
    wait_until(lambda: len(world.peer.batches) == FETCH_ATTEMPTS, 60, f"{FETCH_ATTEMPTS} batch requests")
    wait_until(
        lambda: not any(tx.txid in syncer._tx_requested for tx in world.batch), 30, "the node to forget the batch"
    )
    assert world.pooled(world.batch) == [False] * 4 and syncer._tx_attempts == {}
    world.peer.announce(world.url, world.batch)  # a new announcement starts over
    wait_until(lambda: all(world.pooled(world.batch)), 30, "the batch fetched after a new announcement")
    assert len(world.peer.batches) == FETCH_ATTEMPTS + 1 and world.sender.score == 0


def _trailing(world: World, txs: list[Transaction]) -> bytes:
    return honest(txs) + b"\x00"


def _truncated(world: World, txs: list[Transaction]) -> bytes:
    return honest(txs)[:-1]


def _more_than_asked(world: World, txs: list[Transaction]) -> bytes:
    return honest([*txs, world.stranger])


def _not_asked_for(world: World, txs: list[Transaction]) -> bytes:
    return honest([*txs[:-1], world.stranger])


def _twice(world: World, txs: list[Transaction]) -> bytes:
    return honest([txs[0], txs[1], txs[0]])


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (_trailing, "bad-encoding"),
        (_truncated, "bad-encoding"),
        (_more_than_asked, "too-many-transactions"),
        (_not_asked_for, "unrequested-transaction"),
        (_twice, "duplicate-transaction"),
    ],
    ids=["trailing-bytes", "truncated", "count-above-asked", "not-asked-for", "duplicate"],
)
def test_a_bad_batch_answer_costs_20_points_and_none_of_its_transactions_is_used(
    world: World, answer: Callable[[World, list[Transaction]], bytes], reason: str
) -> None:
    world.peer.answer = lambda txs: answer(world, txs)
    with node_log() as log:
        world.send_batch()
        needles = [reason, f"peer {world.sender.id} ", "misbehaved", "(+20, score 20)"]
        wait_until(lambda: log.matching(*needles), 30, f"the node to log {needles}")
    world.peer.announce(world.url, [world.sentinel])
    wait_until(lambda: world.pooled([world.sentinel]) == [True], 30, "the node to be done with the batch")
    assert world.sender.score == 20
    assert world.pooled([*world.batch, world.stranger]) == [False] * 5, "nothing of a bad answer is used"
