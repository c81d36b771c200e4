"""A peer serving invalid blocks is banned; the honest nodes keep going.

The dishonest peer is a real HTTP server in this process speaking Cairn's p2p
protocol (handshake, addresses, headers, blocks) and serving a block whose coinbase
pays more than subsidy + fees (``bad-cb-amount``) on top of the honest tip.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import requests

from chain.block import Block
from chain.builder import ChainBuilder
from chain.params import REGTEST
from devnet.process import NodeAPIError, connect, sync_blocks, wait_until
from tests.stub_peer import NOT_FOUND, Reply, StubPeer, json_reply, raw_reply

log = logging.getLogger(__name__)


class EvilPeer(StubPeer):
    """A p2p server that claims more work than anyone and serves ``block`` for it."""

    version = "evil"
    claimed_work = "ffffffff"

    def __init__(self, block: Block, height: int) -> None:
        self.block = block
        self.claimed_height = height
        self.claimed_tip = block.hash_hex
        self.requests: list[str] = []
        super().__init__()

    def get(self, path: str) -> Reply:
        self.requests.append(f"GET {path}")
        if path.startswith("/p2p/headers"):
            return json_reply({"headers": [self.block.header.serialized.hex()]})
        if path == f"/p2p/blocks/{self.block.hash_hex}":
            return raw_reply(self.block.serialized)
        if path == "/p2p/addresses":
            return json_reply({"peers": []})
        return NOT_FOUND

    def post(self, path: str, body: bytes) -> Reply:
        self.requests.append(f"POST {path}")
        return super().post(path, body)

    def __enter__(self) -> EvilPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def honest_chain() -> Iterator[tuple[ChainBuilder, list[Block]]]:
    builder = ChainBuilder(REGTEST)
    yield builder, builder.add_chain(3)


@pytest.mark.slow
def test_peer_serving_an_invalid_block_is_banned_and_honest_nodes_go_on(node_factory, honest_chain):
    builder, blocks = honest_chain
    # node0 <-- node1, and node0 --> evil
    node0 = node_factory()
    node1 = node_factory(peers=[node0])
    for block in blocks:
        node0.submit_block(block.serialized.hex())
    sync_blocks([node0, node1])
    bad = builder.next_block(parent=blocks[-1], fees=1)  # claims one unit of fees that no transaction pays
    with EvilPeer(bad, height=4) as evil:
        log.info("node0 connects to the dishonest peer, syncs from it, and bans it")
        node0.admin("POST", "/api/peers", {"url": evil.url})
        banned = wait_until(
            lambda: [b for b in node0.api("GET", "/api/peers")["banned"] if b["url"] == evil.url],
            describe="the dishonest peer to be banned",
        )
        assert "bad-cb-amount" in banned[0]["reason"]
        assert f"GET /p2p/blocks/{bad.hash_hex}" in evil.requests
        assert evil.url not in node0.peer_urls()
        log.info("the ban holds: its handshake is refused by code, and so is an admin reconnect")
        answer = requests.post(f"{node0.url}/p2p/handshake", json=evil.hello(), timeout=10)
        assert answer.status_code == 403 and answer.json()["error"]["code"] == "banned"
        with pytest.raises(NodeAPIError) as exc:
            node0.admin("POST", "/api/peers", {"url": evil.url})
        assert exc.value.status == 403 and exc.value.code == "banned"
        log.info("the bad block never became anyone's tip, and the honest nodes keep mining and syncing")
        assert node0.tip() == node1.tip() == blocks[-1].hash_hex
        with pytest.raises(NodeAPIError) as exc:
            node0.submit_block(bad.serialized.hex())
        assert exc.value.code == "duplicate-invalid"
        mined = node1.generate(2)
        assert sync_blocks([node0, node1]) == mined[-1]
        assert node1.url in node0.peer_urls()
    log.info("bans survive a restart")
    node0.stop()
    node0.start().wait_ready()
    assert [b["url"] for b in node0.api("GET", "/api/peers")["banned"]] == [evil.url]
    connect(node1, node0)
