"""``GET /metrics`` of a real node: Prometheus text that counts blocks, reorgs, rejections and transactions."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from chain.builder import ChainBuilder, Key
from chain.errors import ValidationError
from chain.params import REGTEST
from chain.transaction import COIN
from node.app import create_app
from node.config import NodeConfig
from node.service import Node


def samples(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.content_type.startswith("text/plain")
    result = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            key = sample.name + "".join(f"[{v}]" for _, v in sorted(sample.labels.items()))
            result[key] = sample.value
    return result


def test_metrics_count_blocks_reorgs_rejections_and_transactions(tmp_path):
    node = Node(NodeConfig(network="regtest", datadir=tmp_path, synchronous="OFF"))
    client = create_app(node).test_client()
    try:
        builder = ChainBuilder(REGTEST)
        main = builder.add_chain(11)
        for block in main:
            node.submit_block(block)
        side = builder.add_chain(3, parent=main[8])  # forks below the tip: 9, 10, 11 on the side, then 12
        for block in side:
            node.submit_block(block)
        tx = builder.spend([builder.coinbase_spendable(main[0])], Key().pubkey_hash, COIN, 1000)
        node.submit_transaction(tx)
        bad = builder.next_block(side[-1], time=side[-1].header.time + 1)
        bad = type(bad)(bad.header, bad.transactions)  # a valid block, submitted twice: a duplicate, not an error
        node.submit_block(bad)
        node.submit_block(bad)
        metrics = samples(client)
    finally:
        node.stop()
    assert metrics["cairn_blocks_received_total[local]"] == 11 + 3 + 1
    assert metrics["cairn_reorgs_total"] == 1
    assert metrics["cairn_reorg_depth_bucket[2.0]"] == 1  # main[9], main[10] disconnected
    assert metrics["cairn_reorg_depth_count"] == 1
    assert metrics["cairn_blocks_disconnected_total"] == 2
    assert metrics["cairn_stale_blocks_total"] == 2 + 2  # side[0], side[1] stored off the chain, then 2 disconnected
    assert metrics["cairn_transactions_accepted_total"] == 1
    assert metrics["cairn_chain_height"] == 13
    assert metrics["cairn_mempool_transactions"] == 1
    assert metrics[f"cairn_block_first_seen_timestamp_seconds[{main[0].hash_hex}]"] > 1.7e9


def test_metrics_count_rejections_by_reason(tmp_path):
    node = Node(NodeConfig(network="regtest", datadir=tmp_path, synchronous="OFF"))
    client = create_app(node).test_client()
    try:
        builder = ChainBuilder(REGTEST)
        block = builder.next_block(builder.genesis)
        broken = type(block)(block.header, block.transactions + block.transactions[:1])  # merkle root now wrong
        try:
            node.submit_block(broken)
        except ValidationError as exc:
            reason = exc.reason
        metrics = samples(client)
    finally:
        node.stop()
    assert metrics[f"cairn_blocks_rejected_total[{reason}]"] == 1
