"""The block tree: fork choice by most cumulative work, reorgs, invalid branches, storage and reopening."""

from __future__ import annotations

import os
import sqlite3
import stat
from dataclasses import replace

import pytest

from chain.block import Block
from chain.builder import ChainBuilder, Key, Spendable
from chain.chainstate import ChainState, Status
from chain.errors import BlockError, DecodeError, StorageError, ValidationError
from chain.mining import solve_block
from chain.params import DEVNET, REGTEST
from chain.pow import block_work
from chain.transaction import COIN, OutPoint, TxOut
from chain.utxo import Coin, parse_undo, serialize_undo

KEY = Key(bytes(31) + b"\x09")


@pytest.fixture
def builder() -> ChainBuilder:
    return ChainBuilder(REGTEST, miner=KEY)


@pytest.fixture
def state(tmp_path) -> ChainState:
    cs = ChainState(REGTEST, tmp_path / "chain.sqlite", synchronous="NORMAL")
    yield cs
    cs.close()


def feed(state: ChainState, blocks: list[Block]) -> None:
    for block in blocks:
        state.accept_block(block)


def test_genesis_only(state: ChainState) -> None:
    assert state.height == 0
    assert state.tip.hash == REGTEST.genesis_hash
    assert state.tip.chainwork == block_work(REGTEST.genesis_header.bits)
    assert state.store.all_coins() == {}  # the genesis output is unspendable, as in Bitcoin


def test_chainwork_accumulates(state: ChainState, builder: ChainBuilder) -> None:
    feed(state, builder.add_chain(5))
    assert state.tip.chainwork == 6 * block_work(0x207FFFFF)


def test_equal_work_first_seen_wins(state: ChainState, builder: ChainBuilder) -> None:
    a = builder.add_chain(2)
    b = builder.add_chain(2, parent=builder.genesis)
    feed(state, a + b)
    assert state.tip.hash == a[-1].hash
    # b's branch arrives first on another node: that node keeps b
    other = ChainState(REGTEST, ":memory:")
    feed(other, b + a)
    assert other.tip.hash == b[-1].hash


def test_reorg_reports_connected_and_disconnected_in_order(state: ChainState, builder: ChainBuilder) -> None:
    common = builder.add_chain(3)
    a = builder.add_chain(2, parent=common[-1])
    b = builder.add_chain(3, parent=common[-1])
    feed(state, common + a + b[:2])
    assert state.tip.hash == a[-1].hash
    update = state.accept_block(b[2])
    assert [blk.hash for blk in update.disconnected] == [a[1].hash, a[0].hash]
    assert [blk.hash for blk in update.connected] == [blk.hash for blk in b]
    assert update.reorg_depth == 2
    assert state.tip.hash == b[-1].hash
    assert state.check_utxo_set().ok


def test_most_work_beats_most_blocks(tmp_path) -> None:
    """A shorter branch whose difficulty rose outweighs a longer one at the easiest difficulty."""
    params = replace(REGTEST, retarget_interval=4, target_timespan=40, target_spacing=10)
    builder = ChainBuilder(params, miner=KEY)
    genesis = builder.genesis
    fast = []  # one second apart: at height 4 the target drops to a quarter
    parent = genesis
    for _ in range(4):
        parent = builder.add_block(parent, time=parent.header.time + 1)
        fast.append(parent)
    slow = []  # ten minutes apart: difficulty stays at the limit
    parent = genesis
    for _ in range(6):
        parent = builder.add_block(parent, time=parent.header.time + 600)
        slow.append(parent)
    assert fast[-1].header.bits != genesis.header.bits
    cs = ChainState(params, tmp_path / "work.sqlite", clock=lambda: genesis.header.time + 10_000)
    feed(cs, slow + fast)
    assert cs.height == 4
    assert cs.tip.hash == fast[-1].hash
    fast_work = sum(block_work(b.header.bits) for b in fast)
    slow_work = sum(block_work(b.header.bits) for b in slow)
    assert fast_work > slow_work
    cs.close()


def test_out_of_order_blocks_after_headers(state: ChainState, builder: ChainBuilder) -> None:
    blocks = builder.add_chain(6)
    state.accept_headers([b.header for b in blocks])
    assert state.height == 0
    for block in reversed(blocks[1:]):
        assert state.accept_block(block).connected == ()
    update = state.accept_block(blocks[0])
    assert [b.hash for b in update.connected] == [b.hash for b in blocks]


def test_block_with_unknown_parent_is_refused_until_the_parent_arrives(state: ChainState, builder) -> None:
    blocks = builder.add_chain(2)
    with pytest.raises(ValidationError) as exc:
        state.accept_block(blocks[1])
    assert exc.value.reason == "prev-blk-not-found"
    feed(state, blocks)
    assert state.height == 2


def test_known_block_is_reported_as_not_new(state: ChainState, builder: ChainBuilder) -> None:
    block = builder.add_block()
    assert state.accept_block(block).is_new
    assert not state.accept_block(block).is_new


def spend_coinbase(builder: ChainBuilder, block: Block, to: bytes, amount: int) -> object:
    return builder.spend([builder.coinbase_spendable(block)], to, amount)


def test_block_invalid_in_context_is_marked_with_its_descendants(state: ChainState, builder: ChainBuilder) -> None:
    """Branch b outgrows a, but its third block spends a coin that only exists on branch a."""
    common = builder.add_chain(11)
    a = builder.add_chain(2, parent=common[-1])
    only_on_a = builder.spend([builder.coinbase_spendable(a[0])], KEY.pubkey_hash, COIN)
    b1 = builder.add_block(common[-1])
    b2 = builder.add_block(b1)
    b3 = builder.add_block(b2, transactions=[only_on_a])  # passes check_block; fails on b's chain
    b4 = builder.add_block(b3)
    feed(state, [*common, *a, b1, b2])
    assert state.tip.hash == a[-1].hash  # equal work: first seen stays
    with pytest.raises(ValidationError) as exc:
        state.accept_block(b3)
    assert exc.value.reason == "bad-txns-inputs-missingorspent"
    assert state.tip.hash == a[-1].hash  # b1, b2 have no more work than a
    assert state.get_index(b3.hash).status & Status.FAILED
    with pytest.raises(ValidationError) as exc:
        state.accept_block(b4)
    assert exc.value.reason == "bad-prevblk"
    assert state.check_utxo_set().ok


def test_fallback_to_a_valid_ancestor_with_more_work(state: ChainState, builder: ChainBuilder) -> None:
    """The best candidate fails while connecting; its valid parent still outworks the tip and becomes it."""
    common = builder.add_chain(11)
    a = builder.add_chain(1, parent=common[-1])
    only_on_a = builder.spend([builder.coinbase_spendable(a[0])], KEY.pubkey_hash, COIN)
    b = builder.add_chain(2, parent=common[-1])
    bad = builder.add_block(b[-1], transactions=[only_on_a])
    feed(state, [*common, *a])
    state.accept_headers([b[0].header, b[1].header, bad.header])
    feed(state, [b[0], bad])  # bad waits for b[1]'s data
    assert state.tip.hash == a[0].hash
    update = state.accept_block(b[1])  # b[1] is valid: no error, though bad failed on the way
    assert [blk.hash for blk in update.connected] == [b[0].hash, b[1].hash]
    assert [blk.hash for blk in update.disconnected] == [a[0].hash]
    assert [(h, e.reason) for h, e in update.invalid] == [(bad.hash, "bad-txns-inputs-missingorspent")]
    assert state.tip.hash == b[1].hash
    assert state.get_index(bad.hash).status & Status.FAILED
    assert state.check_utxo_set().ok


def test_invalid_extension_of_the_tip_leaves_the_tip(state: ChainState, builder: ChainBuilder) -> None:
    common = builder.add_chain(11)
    ghost = Spendable(OutPoint(b"\x42" * 32, 0), TxOut(COIN, KEY.pubkey_hash), KEY)
    bad = builder.next_block(common[-1], transactions=[builder.spend([ghost], KEY.pubkey_hash, COIN)])
    feed(state, common)
    with pytest.raises(ValidationError) as exc:
        state.accept_block(bad)
    assert exc.value.reason == "bad-txns-inputs-missingorspent"
    assert exc.value.chain_update is not None and exc.value.chain_update.connected == ()
    assert state.tip.hash == common[-1].hash


def test_transactions_of_disconnected_blocks_are_reported(state: ChainState, builder: ChainBuilder) -> None:
    common = builder.add_chain(11)
    payee = Key()
    tx = builder.spend([builder.coinbase_spendable(common[0])], payee.pubkey_hash, COIN)
    a = builder.add_block(common[-1], transactions=[tx])
    feed(state, [*common, a])
    assert state.find_transaction(tx.txid) is not None
    assert [t for t, _ in state.address_history(payee.pubkey_hash)] == [tx.txid]
    b = builder.add_chain(2, parent=common[-1])
    feed(state, b[:1])
    update = state.accept_block(b[1])
    assert tx in update.disconnected[0].transactions
    assert state.find_transaction(tx.txid) is None  # indexes follow the active chain
    assert state.address_history(payee.pubkey_hash) == []
    assert state.get_coin(OutPoint(tx.txid, 0)) is None
    assert state.get_coin(builder.coinbase_spendable(common[0]).outpoint) is not None


def test_reopen_restores_tree_chain_and_utxo_set(tmp_path, builder: ChainBuilder) -> None:
    path = tmp_path / "chain.sqlite"
    cs = ChainState(REGTEST, path)
    main = builder.add_chain(12)
    stale = builder.add_chain(2, parent=main[5])
    tx = builder.spend([builder.coinbase_spendable(main[0])], Key().pubkey_hash, COIN)
    spent_block = builder.add_block(main[-1], transactions=[tx])
    invalid = builder.next_block(spent_block, fees=1)
    feed(cs, main + stale + [spent_block])
    with pytest.raises(BlockError):
        cs.accept_block(invalid)
    tip, coins, tips = cs.tip.hash, cs.store.all_coins(), {i.hash for i in cs.tips()}
    cs.close()

    reopened = ChainState(REGTEST, path)
    assert reopened.tip.hash == tip
    assert reopened.height == 13
    assert reopened.store.all_coins() == coins
    assert {i.hash for i in reopened.tips()} == tips
    assert reopened.get_index(stale[-1].hash).height == 8
    assert reopened.get_index(invalid.hash).status & Status.FAILED
    with pytest.raises(BlockError) as exc:
        reopened.accept_block(invalid)
    assert exc.value.reason == "duplicate-invalid"
    assert reopened.check_utxo_set().ok
    reopened.close()


def test_reopening_with_another_network_is_refused(tmp_path) -> None:
    ChainState(REGTEST, tmp_path / "c.sqlite").close()
    with pytest.raises(StorageError, match="regtest chain, not devnet"):
        ChainState(DEVNET, tmp_path / "c.sqlite")


def test_check_utxo_set_finds_corruption(tmp_path, builder: ChainBuilder) -> None:
    path = tmp_path / "c.sqlite"
    cs = ChainState(REGTEST, path)
    feed(cs, builder.add_chain(3))
    cs.close()
    db = sqlite3.connect(path)
    victim, changed = db.execute("SELECT txid, vout FROM utxo ORDER BY height LIMIT 2").fetchall()
    db.execute("DELETE FROM utxo WHERE txid = ? AND vout = ?", victim)
    db.execute("UPDATE utxo SET amount = amount + 1 WHERE txid = ? AND vout = ?", changed)
    db.execute("INSERT INTO utxo VALUES (?, 0, 1, ?, 1, 0)", (b"\x07" * 32, bytes(20)))
    db.commit()
    db.close()
    cs = ChainState(REGTEST, path)
    check = cs.check_utxo_set()
    assert not check.ok
    assert check.missing == (OutPoint(victim[0], victim[1]),)
    assert check.differing == (OutPoint(changed[0], changed[1]),)
    assert check.unexpected == (OutPoint(b"\x07" * 32, 0),)
    cs.close()


def test_assume_valid_skips_signatures_of_its_ancestors_only(tmp_path, builder: ChainBuilder) -> None:
    common = builder.add_chain(11)
    good = builder.spend([builder.coinbase_spendable(common[0])], KEY.pubkey_hash, COIN)
    sig = good.inputs[0].signature
    forged_sig = replace(good, inputs=(replace(good.inputs[0], signature=sig[:63] + bytes([sig[63] ^ 1])),))
    bad = builder.add_block(common[-1], transactions=[forged_sig])
    after = builder.add_chain(3, parent=bad)
    blocks = [*common, bad, *after]

    strict = ChainState(REGTEST, tmp_path / "strict.sqlite")
    feed(strict, common)
    with pytest.raises(ValidationError) as exc:
        strict.accept_block(bad)
    assert exc.value.reason == "bad-sig"
    strict.close()

    trusting = ChainState(REGTEST, tmp_path / "trusting.sqlite", assume_valid=after[-1].hash)
    trusting.accept_headers([b.header for b in blocks])
    feed(trusting, blocks)
    assert trusting.tip.hash == after[-1].hash

    # every other rule still holds under assume-valid
    overpaid = builder.next_block(common[-1], fees=1)
    other = ChainState(REGTEST, tmp_path / "other.sqlite", assume_valid=overpaid.hash)
    other.accept_headers([b.header for b in common] + [overpaid.header])
    feed(other, common)
    with pytest.raises(ValidationError) as exc:
        other.accept_block(overpaid)
    assert exc.value.reason == "bad-cb-amount"
    other.close()
    trusting.close()


def test_disk_full_is_a_clean_error_and_loses_nothing(tmp_path, builder: ChainBuilder) -> None:
    path = tmp_path / "c.sqlite"
    cs = ChainState(REGTEST, path)
    feed(cs, builder.add_chain(3))
    page_count = cs.store.db.execute("PRAGMA page_count").fetchone()[0]
    cs.store.db.execute(f"PRAGMA max_page_count = {page_count}")  # the disk is now full
    with pytest.raises(StorageError, match="full"):
        for _ in range(200):  # keep writing until a new page is needed
            cs.accept_block(builder.add_block())
    height, tip = cs.height, cs.tip.hash
    assert cs.check_utxo_set().ok
    cs.close()
    reopened = ChainState(REGTEST, path)
    assert (reopened.height, reopened.tip.hash) == (height, tip)
    assert reopened.check_utxo_set().ok
    reopened.close()


def test_read_only_datadir_is_a_clean_error(tmp_path, builder: ChainBuilder) -> None:
    path = tmp_path / "c.sqlite"
    cs = ChainState(REGTEST, path)
    feed(cs, builder.add_chain(2))
    cs.close()
    if os.geteuid() == 0:
        # root ignores file modes: open the database read-only through SQLite's URI instead
        cs = ChainState(REGTEST, f"file:{path}?mode=ro")
    else:
        os.chmod(path, stat.S_IRUSR)
        cs = ChainState(REGTEST, path)
    with pytest.raises(StorageError):
        cs.accept_block(builder.add_block())
    assert cs.height == 2
    cs.close()


def test_locator_and_headers_after(state: ChainState, builder: ChainBuilder) -> None:
    blocks = builder.add_chain(30)
    feed(state, blocks)
    locator = state.locator()
    assert locator[0] == blocks[-1].hash
    assert locator[-1] == REGTEST.genesis_hash
    assert len(locator) < 30
    headers = state.headers_after([blocks[9].hash], 5)
    assert [h.hash for h in headers] == [b.hash for b in blocks[10:15]]
    assert [h.hash for h in state.headers_after([b"\x00" * 32], 2)] == [b.hash for b in blocks[:2]]
    stale = builder.add_block(blocks[4])
    state.accept_block(stale)
    # a locator naming a stale block falls through to the next hash on the active chain
    assert state.headers_after([stale.hash, blocks[3].hash], 1)[0].hash == blocks[4].hash


def test_coins_for_an_address(state: ChainState, builder: ChainBuilder) -> None:
    blocks = builder.add_chain(3)
    feed(state, blocks)
    coins = state.coins_for(KEY.pubkey_hash)
    assert sorted(op.txid for op, _ in coins) == sorted(b.transactions[0].txid for b in blocks)
    assert all(c.is_coinbase and c.amount == 50 * COIN for _, c in coins)
    spendable = Spendable(coins[0][0], TxOut(coins[0][1].amount, KEY.pubkey_hash), KEY)
    assert spendable.txout.amount == 50 * COIN


def test_best_header_leads_the_active_tip_and_skips_invalid_branches(state: ChainState, builder: ChainBuilder) -> None:
    blocks = builder.add_chain(11)
    feed(state, blocks[:3])
    assert state.best_header().hash == blocks[2].hash
    state.accept_headers([b.header for b in blocks])
    assert state.best_header().hash == blocks[-1].hash  # headers-first: sync heads there
    assert state.tip.hash == blocks[2].hash
    fork = builder.add_chain(2, parent=blocks[-1])
    bad = builder.next_block(fork[-1], fees=1)
    state.accept_headers([*(b.header for b in fork), bad.header])
    assert state.best_header().hash == bad.hash
    feed(state, blocks[3:] + fork)
    with pytest.raises(ValidationError):
        state.accept_block(bad)
    assert state.best_header().hash == fork[-1].hash == state.tip.hash


def test_fork_choice_by_length_is_a_devnet_only_teaching_switch(tmp_path) -> None:
    with pytest.raises(ValueError, match="outside devnet"):
        ChainState(REGTEST, tmp_path / "r.sqlite", fork_choice="length")
    with pytest.raises(ValueError, match="'work' or 'length'"):
        ChainState(DEVNET, tmp_path / "d.sqlite", fork_choice="height")


def test_fork_choice_by_length_picks_the_longer_chain_with_less_work(tmp_path) -> None:
    """The same two branches as test_most_work_beats_most_blocks, on a devnet-like network."""
    params = replace(DEVNET, pow_limit=(1 << 255) - 1, retarget_interval=4, target_timespan=40, target_spacing=10)
    params = replace(params, genesis_header=replace(params.genesis_header, bits=0x207FFFFF, nonce=0))
    genesis = solve_block(Block(params.genesis_header, params.genesis_block.transactions))
    params = replace(params, genesis_header=genesis.header, genesis_block=genesis)
    builder = ChainBuilder(params, miner=KEY)
    fast, slow, parent = [], [], builder.genesis
    for _ in range(4):
        parent = builder.add_block(parent, time=parent.header.time + 1)
        fast.append(parent)
    parent = builder.genesis
    for _ in range(6):
        parent = builder.add_block(parent, time=parent.header.time + 600)
        slow.append(parent)
    clock = lambda: genesis.header.time + 10_000  # noqa: E731
    by_work = ChainState(params, tmp_path / "work.sqlite", clock=clock)
    by_length = ChainState(params, tmp_path / "length.sqlite", clock=clock, fork_choice="length")
    for state in (by_work, by_length):
        feed(state, fast + slow)
    assert by_work.tip.hash == fast[-1].hash
    assert by_length.tip.hash == slow[-1].hash
    assert by_length.tip.chainwork < by_work.tip.chainwork
    # sync heads for the header the fork choice ranks first, so a length-choosing node downloads the longer chain
    assert by_work.best_header().hash == fast[-1].hash
    assert by_length.best_header().hash == slow[-1].hash
    by_work.close()
    by_length.close()


def test_a_store_of_another_schema_version_is_refused(tmp_path) -> None:
    ChainState(REGTEST, tmp_path / "c.sqlite").close()
    db = sqlite3.connect(tmp_path / "c.sqlite")
    db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StorageError, match="storage schema 1"):
        ChainState(REGTEST, tmp_path / "c.sqlite")


def test_reconfirmed_transaction_gets_the_height_of_its_new_block(tmp_path) -> None:
    """Found by the node crash soak: the stored coins kept the old branch's height."""
    builder = ChainBuilder(REGTEST)
    base = builder.add_chain(REGTEST.coinbase_maturity + 1)
    tx = builder.spend([builder.coinbase_spendable(base[0])], to=Key().pubkey_hash, amount=10_000, fee=1_000)
    fork_point = base[-1]
    a_branch = builder.add_block(fork_point, [tx], fees=1_000)  # tx at height 12
    b_empty = builder.add_block(fork_point)
    b_with_tx = builder.add_block(b_empty, [tx], fees=1_000)  # the same tx at height 13
    b_tip = builder.add_block(b_with_tx)

    chain = ChainState(REGTEST, tmp_path / "chain.sqlite")
    try:
        for block in [*base, a_branch]:
            chain.accept_block(block)
        assert chain.get_coin(OutPoint(tx.txid, 0)).height == 12
        assert chain.accept_block(b_empty).reorg_depth == 0  # as much work as a_branch: first seen stays
        assert chain.accept_block(b_with_tx).reorg_depth == 1  # a_branch disconnected, tx confirmed again
        chain.accept_block(b_tip)
        assert chain.tip.hash == b_tip.hash
        assert chain.get_coin(OutPoint(tx.txid, 0)).height == 13
        assert chain.get_coin(OutPoint(tx.txid, 1)).height == 13
        check = chain.check_utxo_set()
        assert check.ok, check
    finally:
        chain.close()
    reopened = ChainState(REGTEST, tmp_path / "chain.sqlite")
    try:
        assert reopened.check_utxo_set().ok
        assert reopened.get_coin(OutPoint(tx.txid, 0)).height == 13
    finally:
        reopened.close()


def test_undo_data_has_one_encoding() -> None:
    record = serialize_undo([(OutPoint(b"\x01" * 32, 0), Coin(5, bytes(20), 3, True))])
    assert parse_undo(record)[0][1].is_coinbase
    with pytest.raises(DecodeError) as exc:
        parse_undo(record[:-1] + b"\x02")  # a coinbase flag of 2 would be a second spelling of "yes"
    assert exc.value.reason == "bad-encoding"
