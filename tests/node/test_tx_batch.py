"""Batched transaction fetch (Bitcoin's getdata with many items): ``POST /p2p/transactions`` on real nodes.

The endpoint answers a varint count, then the asked transactions the node has in its
mempool, serialized back to back in the order asked. A node that hears many
announcements at once fetches them from the announcing peer with one such request
instead of one ``GET /p2p/transactions/<txid>`` each, and admits them in announcement
order, parents before children.
"""

from __future__ import annotations

import logging

import pytest
import requests

from chain.block import Block
from chain.builder import ChainBuilder, Key
from chain.encoding import Reader
from chain.hashes import hash_to_hex
from chain.params import REGTEST
from chain.transaction import COIN, Transaction
from devnet.process import NodeProcess, connect, wait_until
from node.peers import MAX_GETDATA

log = logging.getLogger(__name__)

pytestmark = pytest.mark.slow

PAYEE = Key()


def post_blocks(node: NodeProcess, blocks: list[Block]) -> None:
    for block in blocks:
        assert node.submit_block(block.serialized.hex())["status"] == "active"


def fetch_batch(node: NodeProcess, body: object) -> requests.Response:
    return requests.post(f"{node.url}/p2p/transactions", json=body, timeout=30)


def decode_answer(data: bytes) -> list[Transaction]:
    """The documented format, read with the consensus decoder: varint count, transactions, nothing after."""
    reader = Reader(data)
    txs = [Transaction.read(reader) for _ in range(reader.varint())]
    reader.finish()
    return txs


def test_batch_endpoint_serves_mempool_transactions_in_the_order_asked(node_factory):
    builder = ChainBuilder(REGTEST)
    blocks = builder.add_chain(13)
    node = node_factory()
    post_blocks(node, blocks)
    parent, child = builder.spend_chain(builder.coinbase_spendable(blocks[0]), PAYEE.pubkey_hash, 2, COIN, fee=1000)
    other = builder.spend([builder.coinbase_spendable(blocks[1])], PAYEE.pubkey_hash, COIN, fee=1000)
    confirmed = builder.spend([builder.coinbase_spendable(blocks[2])], PAYEE.pubkey_hash, COIN, fee=1000)
    node.send_transaction(confirmed.serialized.hex())
    node.generate(1)
    for tx in (parent, child, other):
        node.send_transaction(tx.serialized.hex())
    unknown = "ab" * 32
    ids = {tx: hash_to_hex(tx.txid) for tx in (parent, child, other, confirmed)}

    log.info("known ids come back in the order asked; unknown and confirmed ones are simply absent")
    answer = fetch_batch(node, {"txids": [ids[other], unknown, ids[child], ids[confirmed], ids[parent]]})
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/octet-stream"
    assert decode_answer(answer.content) == [other, child, parent]
    assert answer.content == bytes([3]) + other.serialized + child.serialized + parent.serialized

    log.info("a txid asked twice is served once; nothing known answers a zero count")
    assert decode_answer(fetch_batch(node, {"txids": [ids[parent], ids[parent]]}).content) == [parent]
    assert fetch_batch(node, {"txids": [unknown, ids[confirmed]]}).content == b"\x00"
    assert fetch_batch(node, {"txids": []}).content == b"\x00"
    assert fetch_batch(node, {"txids": [unknown] * MAX_GETDATA}).status_code == 200, "the maximum is allowed"

    log.info("the single fetch still answers one raw transaction")
    single = requests.get(f"{node.url}/p2p/transactions/{ids[child]}", timeout=30)
    assert single.status_code == 200 and single.content == child.serialized


BAD_REQUESTS = [
    ("more than the maximum", {"txids": ["ab" * 32] * (MAX_GETDATA + 1)}, "too-many-txids"),
    ("not hex", {"txids": ["zz" * 32]}, "bad-hash"),
    ("too short", {"txids": ["ab" * 31]}, "bad-hash"),
    ("not a string", {"txids": [12]}, "bad-hash"),
    ("not a list", {"txids": "ab" * 32}, "bad-request"),
    ("missing", {}, "bad-request"),
    ("not an object", ["ab" * 32], "bad-request"),
]


def test_batch_endpoint_refuses_bad_requests_with_a_json_error(node_factory):
    node = node_factory()
    for what, body, code in BAD_REQUESTS:
        answer = fetch_batch(node, body)
        assert answer.status_code == 400, f"{what}: {answer.text}"
        assert answer.json()["error"]["code"] == code, what
    too_many = fetch_batch(node, BAD_REQUESTS[0][1]).json()["error"]["message"]
    assert too_many == f"at most {MAX_GETDATA} txids per request, not {MAX_GETDATA + 1}"


def test_many_announced_transactions_are_fetched_in_a_few_requests(node_factory):
    """Sixty transactions (ten parent -> child chains of five, ten independent ones) reach a peer whole."""
    builder = ChainBuilder(REGTEST)
    blocks = builder.add_chain(30)  # the coinbases of blocks 1..20 are mature
    chains = [
        builder.spend_chain(builder.coinbase_spendable(blocks[i]), PAYEE.pubkey_hash, 5, COIN, fee=1000)
        for i in range(10)
    ]
    singles = [
        builder.spend([builder.coinbase_spendable(blocks[i])], PAYEE.pubkey_hash, COIN, fee=1000) for i in range(10, 20)
    ]
    txs = [tx for chain in chains for tx in chain] + singles
    wanted = {hash_to_hex(tx.txid) for tx in txs}

    # node0 <-- node1, connected once node0's mempool holds every transaction
    node0 = node_factory()
    node1 = node_factory()
    post_blocks(node0, blocks)
    post_blocks(node1, blocks)  # node1 can check every spend the moment it hears of it
    for tx in txs:  # parents before children, as a wallet sends them
        node0.send_transaction(tx.serialized.hex())
    assert node0.mempool() == wanted

    log.info("node1 connects: node0 announces its whole mempool, node1 fetches it in a few batches")
    connect(node1, node0)
    wait_until(lambda: node1.mempool() == wanted, describe="every transaction in node1's mempool")
    metrics = node1.metrics()
    batched = metrics["cairn_p2p_transaction_fetches_total"]["batch"]
    requests_made = metrics["cairn_p2p_transaction_fetches_total"]["one"] + batched
    log.info("node1 made %d fetch requests (%d batched) for %d transactions", requests_made, batched, len(txs))
    assert batched >= 1
    assert requests_made <= len(txs) // 10, f"{requests_made} fetch requests for {len(txs)} transactions"
    assert metrics["cairn_p2p_transactions_fetched_total"] == len(txs)
    assert metrics["cairn_transactions_accepted_total"] == len(txs), "no child was refused for missing inputs"
    refused = [line for line in node1.log_path.read_text().splitlines() if "transaction" in line and "refused" in line]
    assert refused == []
    (peer,) = node1.api("GET", "/api/peers")["peers"]
    assert peer["url"] == node0.url and peer["score"] == 0
    assert node0.metrics()["cairn_p2p_transactions_fetched_total"] == 0
