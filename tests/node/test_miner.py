"""Block templates, the nonce search (in-thread and in worker processes) and the miner thread, on a real node."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from chain.block import BlockHeader
from chain.builder import ChainBuilder, Key
from chain.hashes import ZERO_HASH
from chain.mining import with_extra_nonce
from chain.params import REGTEST
from chain.pow import check_proof_of_work
from chain.transaction import COIN
from chain.validation import check_block_structure
from devnet.process import free_port, wait_until
from node.config import NodeConfig
from node.miner import Solver, block_template, generate
from node.service import Node

MINER = Key()
PAYEE = Key()
UNSOLVABLE_BITS = 0x1B0404CB  # a real Bitcoin difficulty: no test machine finds a nonce for it


@pytest.fixture
def node(tmp_path):
    node = Node(NodeConfig(network="regtest", datadir=tmp_path / "data", port=free_port(), synchronous="OFF"))
    yield node
    node.stop()


@pytest.fixture
def funded(node):
    """12 blocks whose coinbases pay ``builder.miner``; the first two are mature."""
    builder = ChainBuilder(REGTEST)
    blocks = builder.add_chain(12)
    for block in blocks:
        node.submit_block(block)
    return builder, blocks


def test_template_takes_transactions_by_fee_rate_and_pays_subsidy_plus_fees(node, funded):
    builder, blocks = funded
    cheap = builder.spend([builder.coinbase_spendable(blocks[0])], to=PAYEE.pubkey_hash, amount=COIN, fee=1_000)
    rich = builder.spend([builder.coinbase_spendable(blocks[1])], to=PAYEE.pubkey_hash, amount=COIN, fee=70_000)
    node.submit_transaction(cheap)
    node.submit_transaction(rich)
    template = block_template(node, MINER.pubkey_hash)
    assert template.header.prev_hash == blocks[-1].hash
    assert template.header.bits == node.chain.next_bits(node.chain.tip)
    assert template.header.time > node.chain.median_time_past(node.chain.tip)
    assert [tx.txid for tx in template.transactions[1:]] == [rich.txid, cheap.txid]
    coinbase = template.transactions[0]
    assert coinbase.coinbase_height == 13
    assert [(o.amount, o.pubkey_hash) for o in coinbase.outputs] == [(50 * COIN + 71_000, MINER.pubkey_hash)]
    solved = Solver(0).solve_block(template, lambda: False)
    assert solved is not None
    result = node.submit_block(solved)
    assert result.status == "active" and node.chain.height == 13
    assert len(node.mempool) == 0


def test_generate_mines_blocks_on_the_tip(node):
    blocks = generate(node, MINER.pubkey_hash, 3, lambda: False)
    assert node.chain.height == 3
    assert node.chain.tip.hash == blocks[-1].hash
    assert all(b.transactions[0].outputs[0].pubkey_hash == MINER.pubkey_hash for b in blocks)


def test_extra_nonce_changes_the_merkle_root_and_keeps_the_block_well_formed(node):
    template = block_template(node, MINER.pubkey_hash)
    bumped = with_extra_nonce(template, 7)
    assert bumped.header.merkle_root != template.header.merkle_root
    assert bumped.transactions[0].inputs[0].signature[4:12] == (7).to_bytes(8, "little")
    assert bumped.transactions[0].coinbase_height == template.transactions[0].coinbase_height
    check_block_structure(bumped.header, bumped.transactions)


@pytest.mark.slow
def test_worker_processes_find_a_real_devnet_nonce():
    header = BlockHeader(1, ZERO_HASH, b"\x07" * 32, 1795564801, 0x1F00FFFF, 0)  # about 65,536 hashes
    solver = Solver(2)
    try:
        solved = solver.solve_header(header, lambda: False)
    finally:
        solver.close()
    assert solved is not None and solved.nonce != 0
    check_proof_of_work(solved.hash, solved.bits, 1 << 256)


@pytest.mark.parametrize("processes", [0, 2], ids=["in-thread", "two-processes"])
def test_search_stops_when_told_the_tip_moved(processes):
    header = BlockHeader(1, ZERO_HASH, b"\x09" * 32, 1795564801, UNSOLVABLE_BITS, 0)
    solver = Solver(processes)
    tip_moved = threading.Event()
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(solver.solve_header(header, tip_moved.is_set)))
    try:
        thread.start()
        tip_moved.set()
        thread.join(120)  # a failsafe for a hung search, not a speed check
        assert not thread.is_alive()
        assert result == [None]
    finally:
        solver.close()


def test_miner_thread_mines_to_its_address_and_stops(node):
    node.miner.start(MINER.pubkey_hash)
    wait_until(lambda: node.chain.height >= 3, 60, "the miner to find 3 regtest blocks")
    node.miner.stop()
    assert not node.miner.running
    height = node.chain.height
    assert node.miner.blocks_found == height
    for h in range(1, height + 1):
        block = node.chain.get_block(node.hash_at(h))
        assert block is not None and block.transactions[0].outputs[0].pubkey_hash == MINER.pubkey_hash


def test_miner_abandons_a_template_when_another_block_arrives(node, funded):
    builder, _ = funded
    template = block_template(node, MINER.pubkey_hash)
    hard = replace(template, header=replace(template.header, bits=UNSOLVABLE_BITS))
    outcome: list[object] = []

    def stale() -> bool:
        return node.chain.tip.hash != template.header.prev_hash

    thread = threading.Thread(target=lambda: outcome.append(Solver(0).solve_block(hard, stale)))
    thread.start()
    node.submit_block(builder.add_block())  # a peer's block moves the tip
    thread.join(120)
    assert not thread.is_alive() and outcome == [None]
