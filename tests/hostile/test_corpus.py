"""The invalid corpus (tests/hostile/corpus.py) against a real node, over the HTTP API and over the peer protocol.

Each case runs on a fresh node (a copy of one prepared SQLite chain, served by
waitress on a free loopback port) so that no case can hide behind another's
leftovers. Over HTTP the answer is 400 with the case's reason code. Over P2P a
scripted peer (a real HTTP server) handshakes, announces the object by inventory
and serves it when the node asks: the node logs the reason code, the peer ends
with exactly the case's misbehaviour score (100: banned). Either way the node's
tip, UTXO set and mempool are exactly what they were, and the stored UTXO set
still matches one recomputed from the blocks.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from chain.errors import ValidationError
from chain.hashes import hash_to_hex
from chain.transaction import COIN
from devnet.process import free_port, wait_until
from node.config import NodeConfig
from node.service import Node
from tests.hostile.corpus import CASES, Base, Case, make_base, signed_by_thief, tx_payload
from tests.hostile.harness import HostilePeer, Served, node_log, served_node


@pytest.fixture(scope="module")
def base() -> Base:
    return make_base()


@pytest.fixture(scope="module")
def template(base: Base, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A datadir holding the base chain (closed cleanly, so the SQLite file alone is the whole state)."""
    datadir = tmp_path_factory.mktemp("template")
    node = Node(NodeConfig(network="regtest", datadir=datadir, port=free_port(), synchronous="OFF"))
    for block in base.blocks[1:]:
        node.submit_block(block)
    node.stop()
    return datadir / "chain.sqlite"


@contextmanager
def node_for(case: Case, base: Base, template: Path, tmp_path: Path) -> Iterator[Served]:
    """A node on the base chain with the pooled transaction, given the case's setup blocks."""
    datadir = tmp_path / "data"
    datadir.mkdir()
    shutil.copy(template, datadir / "chain.sqlite")
    with served_node(datadir) as served:
        served.node.submit_transaction(base.pool_tx)
        base.parent = None
        setup = case.setup(base)
        for block in setup:
            with contextlib.suppress(ValidationError):  # an invalid parent, given on purpose
                served.node.submit_block(block)
        if setup:
            base.parent = setup[-1]
        yield served


def snapshot(node: Node) -> tuple[Any, ...]:
    chain = node.chain
    return chain.tip.hash, chain.height, chain.store.all_coins(), {e.txid for e in node.mempool.entries()}


def ids(case: Case) -> str:
    return case.name


def test_corpus_covers_the_issue_categories():
    reasons = {case.reason for case in CASES}
    expected = {
        "high-hash",  # bad proof of work
        "bad-diffbits",  # wrong bits
        "time-too-old",  # at or below median time past
        "time-too-new",  # too far ahead
        "bad-txnmrklroot",
        "bad-txns-duplicate",  # merkle mutation
        "bad-cb-missing",  # missing or misplaced coinbase
        "bad-cb-multiple",
        "bad-cb-amount",
        "bad-cb-height",
        "bad-txns-premature-spend-of-coinbase",
        "bad-txns-inputs-missingorspent",  # missing, spent, double spent in one block and across two
        "bad-txns-inputs-duplicate",
        "bad-txns-vout-toolarge",
        "bad-txns-txouttotal-toolarge",
        "bad-txns-vout-negative",
        "bad-txns-vin-empty",
        "bad-txns-vout-empty",
        "bad-sig-high-s",
        "bad-txns-pubkey-mismatch",
        "bad-sig",  # wrong key, and signature hash over other data
        "bad-blk-length",  # oversize block (and an empty one)
        "bad-encoding",  # truncated, trailing garbage, non-canonical
        "bad-prevblk",  # a valid block on an invalid parent
    }
    assert expected <= reasons
    assert len({case.name for case in CASES}) == len(CASES)
    assert len(CASES) >= 50


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_refused_over_http(case: Case, base: Base, template: Path, tmp_path: Path) -> None:
    with node_for(case, base, template, tmp_path) as served:
        payload = case.make(base)
        before = snapshot(served.node)
        path = "/api/blocks" if case.kind == "block" else "/api/transactions"
        answer = served.post(path, json={"hex": payload.raw.hex()})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == case.reason
        assert snapshot(served.node) == before
        assert served.node.chain.check_utxo_set().ok


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_refused_over_p2p(case: Case, base: Base, template: Path, tmp_path: Path) -> None:
    hostile = HostilePeer()
    try:
        with node_for(case, base, template, tmp_path) as served, node_log() as log:
            node = served.node
            payload = case.make(base)
            before = snapshot(node)
            assert hostile.handshake_with(served.url).status_code == 200
            sender = node.peers.get(hostile.url)
            assert sender is not None
            # the handshake makes the node sync from its new peer: let that (empty) round answer first
            wait_until(lambda: any(r.startswith("GET /p2p/headers") for r in hostile.requests), 30, "first sync")
            if case.kind == "block":
                assert payload.header is not None
                hostile.blocks[payload.announced_hex] = payload.raw
                hostile.headers = [payload.header]
                answer = hostile.announce(served.url, blocks=[payload.announced_hex])
            else:
                hostile.transactions[payload.announced_hex] = payload.raw
                answer = hostile.announce(served.url, transactions=[payload.announced_hex])
            assert answer.status_code == 200, answer.text
            if case.p2p_points:
                needles = [case.reason, f"peer {sender.id} ", "misbehaved"]
            else:
                needles = [case.reason, f"peer {sender.id} "]
            wait_until(lambda: log.matching(*needles), 30, f"the node to log {needles}")
            assert sender.score == case.p2p_points
            if case.p2p_points >= 100:  # the ban is recorded just after the "misbehaved" line is logged
                wait_until(lambda: node.peers.is_banned(hostile.url), 10, f"{hostile.url} to be banned")
            else:
                assert not node.peers.is_banned(hostile.url)
            fetched = f"GET /p2p/{'blocks' if case.kind == 'block' else 'transactions'}/{payload.announced_hex}"
            if case.header_rule:
                assert fetched not in hostile.requests, "blocks with bad headers are not fetched"
            else:  # the peer records a request once its reply is written, which may trail the node's log line
                wait_until(lambda: fetched in hostile.requests, 10, f"the peer to record {fetched}")
            assert snapshot(node) == before
            assert node.chain.check_utxo_set().ok
            if node.peers.is_banned(hostile.url):
                refused = hostile.handshake_with(served.url)
                assert refused.status_code == 403 and refused.json()["error"]["code"] == "banned"
    finally:
        hostile.close()


def test_invalid_transactions_add_up_to_a_ban(base: Base, template: Path, tmp_path: Path) -> None:
    """Ten points per invalid transaction: the tenth bans the peer, and the eleventh is never fetched."""
    case = next(c for c in CASES if c.name == "tx-signature-by-wrong-key")  # for its (empty) setup
    hostile = HostilePeer()
    try:
        with node_for(case, base, template, tmp_path) as served, node_log() as log:
            node = served.node
            payloads = [tx_payload(signed_by_thief(base, base.mature[0], COIN + n)) for n in range(11)]
            assert len({p.announced for p in payloads}) == 11
            for payload in payloads:
                hostile.transactions[payload.announced_hex] = payload.raw
            assert hostile.handshake_with(served.url).status_code == 200
            sender = node.peers.get(hostile.url)
            assert sender is not None
            for number, payload in enumerate(payloads[:10], start=1):
                hostile.announce(served.url, transactions=[payload.announced_hex])
                wait_until(lambda n=number: sender.score == 10 * n, 30, f"score {10 * number}")
            wait_until(lambda: node.peers.is_banned(hostile.url), 10, "the ban at 100 points")
            assert len(log.matching("bad-sig", "misbehaved")) == 10
            answer = hostile.announce(served.url, transactions=[payloads[10].announced_hex])
            assert answer.status_code == 403 and answer.json()["error"]["code"] == "banned"
            assert f"GET /p2p/transactions/{payloads[10].announced_hex}" not in hostile.requests
            assert {e.txid for e in node.mempool.entries()} == {base.pool_tx.txid}
    finally:
        hostile.close()


def test_a_banned_peer_cannot_come_back_under_its_url(base: Base, template: Path, tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name == "block-coinbase-pays-too-much")
    hostile = HostilePeer()
    try:
        with node_for(case, base, template, tmp_path) as served:
            payload = case.make(base)
            assert payload.header is not None
            hostile.headers = [payload.header]
            hostile.blocks[payload.announced_hex] = payload.raw
            assert hostile.handshake_with(served.url).status_code == 200
            wait_until(lambda: served.node.peers.is_banned(hostile.url), 30, "the ban")
            for answer in (
                hostile.handshake_with(served.url),
                hostile.announce(served.url, blocks=[payload.announced_hex]),
                served.get("/p2p/headers", headers={"X-Cairn-Peer": hostile.url}),
            ):
                assert answer.status_code == 403 and answer.json()["error"]["code"] == "banned"
            assert hash_to_hex(served.node.chain.tip.hash) == base.tip.hash_hex
    finally:
        hostile.close()


def test_a_mutated_block_does_not_stall_the_honest_block_of_its_height(
    base: Base, template: Path, tmp_path: Path
) -> None:
    """A mutated block leaves its (valid) header as the best one; sync must still fetch the honest block beside it.

    Regression: sync used to download only the best header's chain, and the honest block's equal
    work never displaced the mutated header, so nothing moved until a block with more work came.
    """
    case = next(c for c in CASES if c.name == "block-bad-merkle-root")
    honest_peer = HostilePeer()  # serving an honest chain, this time
    try:
        with node_for(case, base, template, tmp_path) as served:
            mutated = case.make(base)
            answer = served.post("/api/blocks", json={"hex": mutated.raw.hex()})
            assert answer.json()["error"]["code"] == "bad-txnmrklroot"
            assert served.node.best_header().hash == mutated.announced, "the mutated block's header is kept"
            honest = base.next()
            honest_peer.headers = [honest.header]
            honest_peer.blocks[honest.hash_hex] = honest.serialized
            assert honest_peer.handshake_with(served.url).status_code == 200
            wait_until(lambda: served.node.chain.tip.hash == honest.hash, 30, "the honest block to become the tip")
            assert not served.node.syncing
            assert f"GET /p2p/blocks/{mutated.announced_hex}" not in honest_peer.requests
    finally:
        honest_peer.close()
