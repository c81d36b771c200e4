"""An announcement that never arrived must not count as delivered: the peer gets the transaction once it is back.

Found by ``scripts/netlab``: during a partition a node queued announcements to peers on
the other side; the sends failed, but the transactions stayed marked as known to those
peers, so after the heal they were never announced again (not on reconnection, not when
a reorg put them back in the mempool) and the other side never saw them.
"""

from __future__ import annotations

import pytest

from chain.address import encode_address
from chain.builder import Key, Spendable, sign_transaction
from chain.params import REGTEST
from chain.transaction import OutPoint, TxOut
from devnet.process import sync_blocks, wait_until
from netlab.coins import fetch_block


@pytest.mark.slow
def test_a_peer_that_was_down_gets_the_transaction_announced_while_it_was(node_factory) -> None:
    node0 = node_factory()
    node1 = node_factory(peers=[node0])
    wait_until(lambda: node0.peer_urls() == [node1.url], 30, "node0 to list node1 as connected")
    key = Key()
    mined = node0.generate(REGTEST.coinbase_maturity + 1, encode_address(key.pubkey_hash, REGTEST))
    sync_blocks([node0, node1])
    coinbase = fetch_block(node0, mined[0]).transactions[0]
    spend = Spendable(OutPoint(coinbase.txid, 0), coinbase.outputs[0], key)
    tx = sign_transaction(1, [spend], [TxOut(coinbase.outputs[0].amount - 1_000, key.pubkey_hash)], REGTEST)

    node1.stop()
    txid = node0.send_transaction(tx.serialized.hex())  # its announcement to node1 fails: node1 is down
    wait_until(lambda: node1.url in node0.peer_urls("unreachable"), 30, "node0 to find node1 unreachable")
    node1.start().wait_ready()
    wait_until(lambda: node1.url in node0.peer_urls(), 60, "node0 to reconnect to node1")
    wait_until(lambda: txid in node1.mempool(), 30, "node1 to receive the transaction announced while it was down")
