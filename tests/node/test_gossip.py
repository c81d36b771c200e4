"""Gossip and peer management against a real node on waitress and scripted peers (real HTTP servers).

The scripted peers speak Cairn's p2p protocol from this process, so a test can hold
one of them still, see exactly which announcements it received, and serve exactly
the transactions and addresses it wants.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from waitress import create_server

from chain.builder import ChainBuilder, Key
from chain.hashes import hash_to_hex
from chain.params import REGTEST
from chain.transaction import COIN, Transaction
from devnet.process import free_port, wait_until
from node.app import create_app
from node.config import NodeConfig
from node.service import Node
from tests.hostile.harness import stop_server
from tests.stub_peer import NOT_FOUND, Reply, StubPeer, json_reply, raw_reply

PAYEE = Key()


class ScriptedPeer(StubPeer):
    """A p2p server that records what it is sent and serves what the test gives it."""

    version = "scripted"

    def __init__(self) -> None:
        self.announced: list[str] = []  # txids and block hashes, in the order announcements arrived
        self.handshakes = 0
        self.transactions: dict[str, Transaction] = {}
        self.addresses: list[str] = []
        self.headers_body = b'{"headers": []}'
        self.gate = threading.Event()
        self.gate.set()  # clear it to hold every announcement until set again
        super().__init__()

    def get(self, path: str) -> Reply:
        if path == "/p2p/addresses":
            return json_reply({"peers": self.addresses})
        if path.startswith("/p2p/headers"):
            return Reply(200, self.headers_body)
        if path.startswith("/p2p/transactions/") and path[18:] in self.transactions:
            return raw_reply(self.transactions[path[18:]].serialized)
        return NOT_FOUND

    def post(self, path: str, body: bytes) -> Reply:
        if path == "/p2p/handshake":
            self.handshakes += 1
        elif path == "/p2p/inv":
            self.gate.wait(60)
            sent = json.loads(body or b"{}")
            self.announced += sent.get("blocks", []) + sent.get("transactions", [])
        return super().post(path, body)

    def handshake_with(self, node_url: str) -> None:
        answer = requests.post(f"{node_url}/p2p/handshake", json=self.hello(), timeout=10)
        assert answer.status_code == 200, answer.text

    def announce_to(self, node_url: str, txids: list[str]) -> None:
        answer = requests.post(
            f"{node_url}/p2p/inv", json={"transactions": txids}, headers={"X-Cairn-Peer": self.url}, timeout=10
        )
        assert answer.status_code == 200, answer.text

    def close(self) -> None:
        self.gate.set()
        super().close()


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[Node, str, ChainBuilder, list]]:
    """A started regtest node on waitress with 13 blocks of spendable coinbases."""
    port = free_port()
    node = Node(NodeConfig(network="regtest", datadir=tmp_path, port=port, synchronous="OFF", max_peers=4))
    builder = ChainBuilder(REGTEST)
    blocks = builder.add_chain(13)
    for block in blocks:
        node.submit_block(block)
    wsgi = create_server(create_app(node), host="127.0.0.1", port=port, threads=8)
    thread = threading.Thread(target=wsgi.run, daemon=True)
    node.start()
    thread.start()
    yield node, f"http://127.0.0.1:{port}", builder, blocks
    stop_server(wsgi, thread)
    node.stop()


@pytest.fixture
def scripted() -> Iterator[list[ScriptedPeer]]:
    peers = [ScriptedPeer() for _ in range(3)]
    yield peers
    for peer in peers:
        peer.close()


def test_gossip_never_waits_on_a_slow_peer_and_never_repeats(served, scripted):
    node, url, builder, blocks = served
    slow, other, _ = scripted
    slow.handshake_with(url)
    other.handshake_with(url)
    txs = [builder.spend([builder.coinbase_spendable(blocks[i])], PAYEE.pubkey_hash, COIN, fee=1000) for i in range(3)]
    tx1, tx2, tx3 = (hash_to_hex(tx.txid) for tx in txs)

    slow.gate.clear()  # the slow peer now holds every announcement it gets
    answer = requests.post(f"{url}/api/transactions", json={"hex": txs[0].serialized.hex()}, timeout=30)
    assert answer.status_code == 200, "answered while the slow peer still holds our announcement"
    assert not slow.gate.is_set()
    again = requests.post(f"{url}/api/transactions", json={"hex": txs[0].serialized.hex()}, timeout=30)
    assert again.status_code == 400 and again.json()["error"]["code"] == "txn-already-known"

    other.transactions[tx2] = txs[1]  # `other` announces tx2: the node fetches it, and tells everyone but `other`
    other.announce_to(url, [tx2])
    wait_until(lambda: txs[1].txid in node.mempool, describe="the node to fetch tx2 from the peer announcing it")
    requests.post(f"{url}/api/transactions", json={"hex": txs[2].serialized.hex()}, timeout=30).raise_for_status()
    wait_until(lambda: tx3 in other.announced, describe="tx3 announced to the other peer")
    assert other.announced == [tx1, tx3], "tx1 once, and tx2 never back to where it came from"
    slow.gate.set()
    wait_until(lambda: tx3 in slow.announced, describe="the slow peer to catch up")
    assert slow.announced == [tx1, tx2, tx3]


def test_peers_learnt_from_address_lists_up_to_the_maximum(served, scripted):
    node, url, _, _ = served
    first, second, third = scripted
    first.addresses = [second.url, third.url, url, "not a url"]
    token = node.token
    answer = requests.post(
        f"{url}/api/peers", json={"url": first.url}, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert answer.status_code == 200
    wait_until(lambda: second.handshakes and third.handshakes, describe="handshakes with the peers learnt from first")
    listed = requests.get(f"{url}/api/peers", timeout=10).json()["peers"]
    assert sorted(p["url"] for p in listed) == sorted([first.url, second.url, third.url])
    fourth, fifth = ScriptedPeer(), ScriptedPeer()
    try:
        fourth.handshake_with(url)  # the fourth of max_peers=4
        refused = requests.post(f"{url}/p2p/handshake", json=fifth.hello(), timeout=10)
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "too-many-peers"
    finally:
        fourth.close()
        fifth.close()


def test_unreachable_peer_is_retried_with_growing_delays(served):
    node, url, _, _ = served
    nowhere = f"http://127.0.0.1:{free_port()}"
    headers = {"Authorization": f"Bearer {node.token}"}
    requests.post(f"{url}/api/peers", json={"url": nowhere}, headers=headers, timeout=10).raise_for_status()

    def peer() -> dict[str, Any]:
        return next(p for p in requests.get(f"{url}/api/peers", timeout=10).json()["peers"] if p["url"] == nowhere)

    delays = {}
    while len(delays) < 3:
        current = wait_until(
            lambda: peer()["failures"] not in {0, *delays} and peer(), describe="another failed attempt"
        )
        delays[current["failures"]] = current["retry_delay"]
        assert current["state"] == "unreachable"
    for failures, delay in delays.items():
        expected = 0.5 * 2 ** (failures - 1)
        assert 0.8 * expected <= delay <= 1.2 * expected, (failures, delay)
    assert node.status()["height"] == 13, "the node kept serving"


def test_malformed_headers_cost_points_then_a_ban(served, scripted):
    node, url, _, _ = served
    garbage = scripted[0]
    garbage.headers_body = b'{"headers": ["zz"]}'
    garbage.handshake_with(url)  # the node syncs from a new peer at once: first malformed answer
    peer = node.peers.get(garbage.url)
    assert peer is not None
    wait_until(lambda: peer.score >= 50, describe="misbehaviour points for malformed headers")
    # a block the node lacks: it syncs again, and bans (unless its periodic sync got there first: then 403 banned)
    announced = requests.post(
        f"{url}/p2p/inv", json={"blocks": ["ab" * 32]}, headers={"X-Cairn-Peer": garbage.url}, timeout=10
    )
    assert announced.status_code == 200 or announced.json()["error"]["code"] == "banned"
    wait_until(lambda: node.peers.is_banned(garbage.url), describe="the ban")
    assert "malformed headers" in node.peers.bans()[garbage.url]["reason"]
    assert peer.score == 100, "two malformed answers, 50 points each, and no more after the ban"
    refused = requests.post(f"{url}/p2p/handshake", json=garbage.hello(), timeout=10)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "banned"
    assert node.status()["height"] == 13, "the node kept serving"
