"""Every resource a peer or client can make the node hold is bounded, and each bound is tested by exceeding it.

Request bodies (413), headers per answer (/api/headers and /p2p/headers, and what the
node accepts from a peer), hashes per announcement, orphan blocks held, mempool bytes,
announcements queued per peer, and open HTTP connections (waitress's connection limit).
All against a real node served by waitress on a loopback port.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from chain.builder import ChainBuilder, Key, Spendable
from chain.hashes import hash_to_hex
from chain.params import REGTEST
from chain.transaction import COIN, OutPoint
from devnet.process import wait_until
from node.peers import MAX_HEADERS, MAX_INV, QUEUE_SIZE
from node.service import MAX_ORPHANS
from tests.hostile.harness import HostilePeer, Served, node_log, served_node

PAYEE = Key()


@pytest.fixture(scope="module")
def chain12() -> tuple[ChainBuilder, list]:
    builder = ChainBuilder(REGTEST)
    return builder, builder.add_chain(12)


@pytest.fixture
def served(tmp_path: Path, chain12) -> Iterator[Served]:
    with served_node(tmp_path / "data", max_body_bytes=100_000, mempool_bytes=1000, max_connections=4) as served:
        for block in chain12[1]:
            served.node.submit_block(block)
        yield served


def test_request_body_above_the_limit_is_413(served: Served) -> None:
    limit = served.node.config.max_body_bytes
    just_under = b'{"hex": "' + b"00" * ((limit - 20) // 2) + b'"}'
    assert len(just_under) <= limit
    answer = served.post("/api/transactions", data=just_under, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad-encoding", "read, decoded, refused"
    too_big = b'{"hex": "' + b"00" * limit + b'"}'
    answer = served.post("/api/blocks", data=too_big, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "too-large"


def test_chunked_body_without_length_is_cut_at_the_limit(served: Served) -> None:
    limit = served.node.config.max_body_bytes

    def chunks() -> Iterator[bytes]:  # no Content-Length: requests sends Transfer-Encoding: chunked
        yield b'{"hex": "'
        for _ in range(limit // 10_000 + 2):
            yield b"00" * 5_000
        yield b'"}'

    answer = served.post("/api/blocks", data=chunks(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "too-large"
    assert served.get("/api/status").status_code == 200


def test_headers_answers_are_capped(served: Served) -> None:
    for path in ("/api/headers", "/p2p/headers"):
        answer = served.get(path, params={"limit": MAX_HEADERS + 1})
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad-request"
        locator = ",".join([hash_to_hex(REGTEST.genesis_hash)] * 102)
        answer = served.get(path, params={"locator": locator})
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad-request"
        assert len(served.get(path, params={"limit": 5}).json()["headers"]) == 5


def test_headers_of_a_longer_chain_come_2000_at_a_time(tmp_path: Path) -> None:
    long = ChainBuilder(REGTEST).add_chain(MAX_HEADERS + 5)
    with served_node(tmp_path / "long") as served:
        for block in long:
            served.node.submit_block(block)
        for path in ("/api/headers", "/p2p/headers"):
            first = served.get(path).json()["headers"]
            assert len(first) == MAX_HEADERS
            assert first[-1] == long[MAX_HEADERS - 1].header.serialized.hex()
            rest = served.get(path, params={"locator": long[MAX_HEADERS - 1].hash_hex}).json()["headers"]
            assert [bytes.fromhex(h) for h in rest] == [b.header.serialized for b in long[MAX_HEADERS:]]


def test_a_peer_sending_too_many_headers_is_punished(served: Served, chain12) -> None:
    _, blocks = chain12
    hostile = HostilePeer()
    try:
        with node_log() as log:
            hostile.headers = [blocks[0].header] * (MAX_HEADERS + 1)
            assert hostile.handshake_with(served.url).status_code == 200
            sender = served.node.peers.get(hostile.url)
            assert sender is not None
            wait_until(lambda: log.matching("malformed headers", "at most 2000"), 30, "the oversized answer refused")
            assert sender.score >= 50
    finally:
        hostile.close()


def test_announcements_above_the_inventory_limit_are_refused(served: Served) -> None:
    hostile = HostilePeer()
    try:
        assert hostile.handshake_with(served.url).status_code == 200
        hashes = [os.urandom(32).hex() for _ in range(MAX_INV + 1)]
        answer = hostile.announce(served.url, transactions=hashes)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad-request"
        answer = hostile.announce(served.url, blocks=hashes)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad-request"
    finally:
        hostile.close()


def test_orphan_blocks_held_are_capped(served: Served, chain12) -> None:
    _, blocks = chain12
    side = ChainBuilder(REGTEST)  # a chain the node never saw the start of: every block is an orphan
    fork = side.add_chain(MAX_ORPHANS + 6)
    for block in fork[1:]:
        answer = served.post("/api/blocks", json={"hex": block.serialized.hex()})
        assert answer.status_code == 200 and answer.json()["status"] == "orphan"
    orphans = served.node.orphans
    assert len(orphans) == MAX_ORPHANS
    assert list(orphans) == [b.hash for b in fork[-MAX_ORPHANS:]], "the oldest are dropped first"
    assert served.node.chain.tip.hash == blocks[-1].hash


def test_orphan_bytes_held_are_capped(tmp_path: Path) -> None:
    fork = ChainBuilder(REGTEST).add_chain(21)
    size = fork[1].size
    with served_node(tmp_path / "orphans", max_orphan_bytes=8 * size) as served:
        for block in fork[1:]:
            assert served.post("/api/blocks", json={"hex": block.serialized.hex()}).json()["status"] == "orphan"
        held = served.node.orphans
        assert sum(block.size for block, _ in held.values()) <= 8 * size
        assert list(held) == [b.hash for b in fork[-len(held) :]] and len(held) >= 7, "the newest are kept"


def test_mempool_bytes_are_capped(served: Served, chain12) -> None:
    """A pool of 1000 bytes takes five 195-byte transactions; the sixth is refused unless it pays a better rate."""
    builder, blocks = chain12
    node = served.node
    spend = builder.coinbase_spendable(blocks[0])
    chained = []  # each spends the change of the one before: only one mature coin is needed
    for _ in range(6):
        tx = builder.spend([spend], PAYEE.pubkey_hash, COIN, fee=1000)
        chained.append(tx)
        spend = Spendable(OutPoint(tx.txid, 1), tx.outputs[1], builder.miner)
    assert {tx.size for tx in chained} == {195}
    for tx in chained[:5]:
        assert served.post("/api/transactions", json={"hex": tx.serialized.hex()}).status_code == 200
    assert node.mempool.total_bytes == 975
    answer = served.post("/api/transactions", json={"hex": chained[5].serialized.hex()})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "mempool-full"
    better = builder.spend([builder.coinbase_spendable(blocks[1])], PAYEE.pubkey_hash, COIN, fee=100_000)
    assert served.post("/api/transactions", json={"hex": better.serialized.hex()}).status_code == 200
    assert node.mempool.total_bytes <= node.config.mempool_bytes
    assert better.txid in node.mempool and chained[4].txid not in node.mempool, "the last of the chain made room"
    assert served.get("/api/status").json()["mempool_bytes"] == node.mempool.total_bytes


def test_per_peer_announcement_queue_is_capped(served: Served) -> None:
    hostile = HostilePeer()
    try:
        hostile.hold_announcements()
        assert hostile.handshake_with(served.url).status_code == 200
        peer = served.node.peers.get(hostile.url)
        assert peer is not None
        wait_until(lambda: peer.state == "connected", 30, "the peer connected")
        served.node.peers.announce("transactions", os.urandom(32), only=peer)
        wait_until(lambda: hostile.held, 30, "the node's sender to be stuck in a held announcement")
        for _ in range(QUEUE_SIZE + 500):
            served.node.peers.announce("transactions", os.urandom(32), only=peer)
        assert peer.queue.qsize() == QUEUE_SIZE
        assert peer.dropped == 500
        assert served.get("/api/status").status_code == 200, "the API never waits on a peer's queue"
    finally:
        hostile.release()
        hostile.close()


def read_response(sock: socket.socket) -> bytes:
    """One HTTP/1.1 response from ``sock``: its status line and headers (the body is read and dropped)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    found = re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE)
    assert found is not None, head
    while len(body) < int(found.group(1)):
        body += sock.recv(65536)
    return head


REQUEST = b"GET /api/status HTTP/1.1\r\nHost: node\r\n\r\n"


def test_connections_above_the_limit_wait_until_one_closes(served: Served) -> None:
    limit = served.node.config.max_connections
    address = ("127.0.0.1", int(served.url.rsplit(":", 1)[1]))
    kept = []
    try:
        for _ in range(limit):  # keep-alive connections, each served once and then held open
            sock = socket.create_connection(address, timeout=30)
            sock.sendall(REQUEST)
            assert read_response(sock).startswith(b"HTTP/1.1 200")
            kept.append(sock)
        extra = socket.create_connection(address, timeout=30)  # the kernel's listen backlog takes it
        kept.append(extra)
        extra.sendall(REQUEST)
        extra.settimeout(1.0)
        with pytest.raises(TimeoutError):  # not served while the limit is reached (an absence: cannot flake)
            extra.recv(1)
        kept.pop(0).close()
        extra.settimeout(30)
        assert read_response(extra).startswith(b"HTTP/1.1 200"), "served once a connection closed"
    finally:
        for sock in kept:
            sock.close()
    assert requests.get(served.url + "/api/status", timeout=30).status_code == 200
