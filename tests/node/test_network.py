"""Multi-process tests: real cairn-node processes gossiping and syncing over loopback HTTP."""

from __future__ import annotations

import logging

import pytest

from chain.builder import ChainBuilder, Key
from chain.chainstate import ChainState
from chain.hashes import hash_to_hex
from chain.params import DEVNET, REGTEST
from chain.transaction import COIN
from devnet.process import NodeAPIError, burn_address, connect, sync_blocks, sync_mempools, wait_until

log = logging.getLogger(__name__)

pytestmark = pytest.mark.slow


def test_three_nodes_in_a_line_converge(node_factory):
    # node0 <-- node1 <-- node2
    node0 = node_factory()
    node1 = node_factory(peers=[node0])
    node2 = node_factory(peers=[node1])
    log.info("mine on one end: every node follows")
    mined = node0.generate(3)
    assert sync_blocks([node0, node1, node2]) == mined[-1]
    assert node2.height() == 3
    log.info("mine on the other end: the announcement travels back")
    mined = node2.generate(2)
    assert sync_blocks([node0, node1, node2]) == mined[-1]
    assert {n.height() for n in (node0, node1, node2)} == {5}
    log.info("every node stops cleanly on SIGTERM")
    for node in (node2, node1, node0):
        assert node.stop() == 0
        assert "node stopped" in node.log_path.read_text()


def _post_chain(node, blocks):
    for block in blocks:
        assert node.submit_block(block.serialized.hex())["status"] in ("active", "duplicate")


def test_competing_groups_join_on_most_work_and_lose_no_transaction(node_factory):
    builder = ChainBuilder(REGTEST)
    prefix = builder.add_chain(12)  # coinbases of blocks 1..3 are mature from height 11 on
    payee = Key()
    # group A: node0 <-- node1      group B: node2 (isolated)
    node0 = node_factory()
    node1 = node_factory(peers=[node0])
    node2 = node_factory()
    log.info("both groups share a 12-block history")
    _post_chain(node0, prefix)
    _post_chain(node2, prefix)
    sync_blocks([node0, node1])
    assert node2.tip() == node0.tip() == prefix[-1].hash_hex

    log.info("group B confirms t1 and its own spend of coin 3; group A confirms t2 and a rival spend of coin 3")
    t1 = builder.spend([builder.coinbase_spendable(prefix[0])], to=payee.pubkey_hash, amount=10 * COIN, fee=1000)
    t2 = builder.spend([builder.coinbase_spendable(prefix[1])], to=payee.pubkey_hash, amount=20 * COIN, fee=1000)
    coin3 = builder.coinbase_spendable(prefix[2])
    t3_b = builder.spend([coin3], to=payee.pubkey_hash, amount=1 * COIN, fee=1000)
    t3_a = builder.spend([coin3], to=payee.pubkey_hash, amount=2 * COIN, fee=1000)
    for tx in (t1, t3_b):
        node2.send_transaction(tx.serialized.hex())
    (b_tip,) = node2.generate(1)
    for tx in (t2, t3_a):
        node0.send_transaction(tx.serialized.hex())
    wait_until(lambda: node1.mempool() == {hash_to_hex(t2.txid), hash_to_hex(t3_a.txid)}, describe="A's mempool")
    a_tip = node0.generate(3)[-1]
    sync_blocks([node0, node1])
    assert node2.api("GET", f"/api/transactions/{hash_to_hex(t1.txid)}")["block"] == b_tip

    log.info("join the groups: everyone ends on A's branch, which has more work")
    connect(node2, node0)
    assert sync_blocks([node0, node1, node2]) == a_tip
    log.info("t1 comes back from B's disconnected block and spreads; the conflicted t3_b is gone")
    t1_id = hash_to_hex(t1.txid)
    for node in (node0, node1, node2):
        wait_until(lambda node=node: node.mempool() == {t1_id}, describe=f"t1 alone in {node.name}'s mempool")
    assert sync_mempools([node0, node1, node2]) == {t1_id}
    final_tip = node1.generate(1)[0]
    assert sync_blocks([node0, node1, node2]) == final_tip
    for node in (node0, node1, node2):
        assert node.api("GET", f"/api/transactions/{t1_id}")["block"] == final_tip
        assert (
            node.api("GET", f"/api/transactions/{hash_to_hex(t2.txid)}")["confirmations"] == 4
        )  # mined at height 13, tip at 16
        assert (
            node.api("GET", f"/api/transactions/{hash_to_hex(t3_a.txid)}")["confirmations"] == 4
        )  # mined at height 13, tip at 16
        with pytest.raises(NodeAPIError) as exc:
            node.api("GET", f"/api/transactions/{hash_to_hex(t3_b.txid)}")
        assert exc.value.status == 404 and exc.value.code == "not-found"
        assert node.mempool() == set()


def test_late_node_catches_up_from_genesis(node_factory):
    node0 = node_factory()
    node0.generate(40)
    node1 = node_factory(peers=[node0])
    assert node1.height() <= 40
    sync_blocks([node0, node1])
    assert node1.height() == 40
    check = node1.admin("GET", "/api/admin/utxo-check")
    assert check["ok"] and check["expected"] == 40


def test_sigkill_during_mining_leaves_an_intact_chain_that_resyncs(node_factory):
    miner_address = burn_address("devnet")
    node0 = node_factory(network="devnet", mine=True, mine_to=miner_address)
    node1 = node_factory(network="devnet", peers=[node0])
    wait_until(lambda: node0.height() >= 5, 120, "node0 to mine 5 devnet blocks")
    sync_blocks([node0, node1], 120)
    log.info("kill the miner mid-search: no shutdown at all")
    node0.kill()
    chain = ChainState(DEVNET, node0.datadir / "chain.sqlite")
    try:
        killed_height = chain.height
        assert killed_height >= 5
        assert chain.check_utxo_set().ok
    finally:
        chain.close()
    log.info("the network moves on without node0: node1 mines past it (it may have lagged node0 by a few blocks)")
    node1.generate(max(0, killed_height - node1.height()) + 2)
    node0.mine = False
    node0.start().wait_ready()
    assert node0.height() == killed_height, "restarted on the chain it had when killed"
    log.info("node0 rejoins and catches up")
    connect(node0, node1)
    assert sync_blocks([node0, node1], 120) == node1.tip()
    assert node0.height() > killed_height
    assert node0.admin("GET", "/api/admin/utxo-check")["ok"]


def test_orphan_block_is_kept_and_its_missing_chain_fetched(node_factory):
    builder = ChainBuilder(REGTEST)
    blocks = builder.add_chain(4)
    # node0 has blocks 1-3; node1, isolated, is handed block 4 alone
    node0 = node_factory()
    node1 = node_factory()
    _post_chain(node0, blocks[:3])
    assert node1.submit_block(blocks[3].serialized.hex()) == {"hash": blocks[3].hash_hex, "status": "orphan"}
    assert node1.height() == 0
    log.info("once node1 has a peer, it fetches blocks 1-3 and connects the orphan on top; node0 learns block 4")
    connect(node1, node0)
    assert sync_blocks([node0, node1]) == blocks[3].hash_hex
    assert node0.height() == 4
