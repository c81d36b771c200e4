"""The mempool against a real ChainState on disk: every policy rule, eviction, block and reorg handling."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chain.block import Block
from chain.builder import ChainBuilder, Key, Spendable, sign_transaction
from chain.chainstate import ChainState
from chain.errors import ValidationError
from chain.params import REGTEST
from chain.transaction import COIN, OutPoint, Transaction, TxOut
from node.errors import PolicyError
from node.mempool import Mempool

PAYEE = Key()


@pytest.fixture
def chain(tmp_path):
    chain = ChainState(REGTEST, tmp_path / "chain.sqlite", synchronous="OFF")
    yield chain
    chain.close()


@pytest.fixture
def builder(chain):
    """15 blocks on the chain: coinbases of heights 1..6 are spendable in block 16, 7.. are not yet."""
    builder = ChainBuilder(REGTEST)
    for block in builder.add_chain(15):
        chain.accept_block(block)
    return builder


def coin(builder: ChainBuilder, height: int) -> Spendable:
    return builder.coinbase_spendable(builder_block(builder, height))


def builder_block(builder: ChainBuilder, height: int) -> Block:
    return next(b for h, b in ((builder.heights[k], v) for k, v in builder.blocks.items()) if h == height)


def pay(builder: ChainBuilder, spend: Spendable, fee: int, amount: int = COIN) -> Transaction:
    return builder.spend([spend], to=PAYEE.pubkey_hash, amount=amount, fee=fee)


def reason_of(excinfo: pytest.ExceptionInfo) -> str:
    return excinfo.value.reason


def test_valid_transaction_is_admitted_with_its_fee(chain, builder):
    pool = Mempool(chain)
    tx = pay(builder, coin(builder, 1), fee=5000)
    entry = pool.add(tx)
    assert entry.fee == 5000 and entry.size == tx.size
    assert tx.txid in pool and len(pool) == 1 and pool.total_bytes == tx.size
    assert entry.fee_rate == 5000 * 1000 // tx.size
    assert pool.spender_of(tx.inputs[0].prevout) == tx.txid


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda b: b.blocks[b.tip.hash].transactions[0], "coinbase"),
        (lambda b: pay(b, coin(b, 7), fee=0), "bad-txns-premature-spend-of-coinbase"),
        (lambda b: pay(b, coin(b, 1), fee=0, amount=51 * COIN), "bad-txns-in-belowout"),
        (
            lambda b: pay(b, Spendable(OutPoint(b"\x42" * 32, 0), TxOut(COIN, b.miner.pubkey_hash), b.miner), fee=0),
            "bad-txns-inputs-missingorspent",
        ),
        (lambda b: pay(b, replace(coin(b, 1), key=Key()), fee=0), "bad-txns-pubkey-mismatch"),
        (
            lambda b: replace(pay(b, coin(b, 1), fee=0), outputs=(TxOut(-1, PAYEE.pubkey_hash),)),
            "bad-txns-vout-negative",
        ),
    ],
    ids=["coinbase", "immature", "in-below-out", "missing", "wrong-key", "negative"],
)
def test_invalid_transactions_are_refused_by_reason(chain, builder, make, reason):
    pool = Mempool(chain)
    with pytest.raises((ValidationError, PolicyError)) as excinfo:
        pool.add(make(builder))
    assert reason_of(excinfo) == reason
    assert len(pool) == 0


def test_signature_over_other_outputs_is_bad_sig(chain, builder):
    tx = pay(builder, coin(builder, 1), fee=100)
    forged = replace(tx, outputs=(TxOut(tx.outputs[0].amount + 1, PAYEE.pubkey_hash), *tx.outputs[1:]))
    with pytest.raises(ValidationError) as excinfo:
        Mempool(chain).add(forged)
    assert excinfo.value.reason == "bad-sig"


def test_coinbase_maturity_is_judged_at_the_next_height(chain, builder):
    pool = Mempool(chain)
    pool.add(pay(builder, coin(builder, 6), fee=0))  # 16 - 6 = 10 confirmations: exactly mature
    with pytest.raises(ValidationError) as excinfo:
        pool.add(pay(builder, coin(builder, 7), fee=0))
    assert excinfo.value.reason == "bad-txns-premature-spend-of-coinbase"


def test_already_known_in_pool_or_on_chain(chain, builder):
    pool = Mempool(chain)
    tx = pay(builder, coin(builder, 1), fee=0)
    pool.add(tx)
    with pytest.raises(PolicyError) as excinfo:
        pool.add(tx)
    assert excinfo.value.reason == "txn-already-known"
    confirmed = pay(builder, coin(builder, 2), fee=0)
    update = chain.accept_block(builder.add_block(transactions=[confirmed]))
    pool.update(update)
    with pytest.raises(PolicyError) as excinfo:
        pool.add(confirmed)
    assert excinfo.value.reason == "txn-already-known"


def test_first_seen_wins_a_double_spend(chain, builder):
    pool = Mempool(chain)
    first = pay(builder, coin(builder, 1), fee=1000)
    second = pay(builder, coin(builder, 1), fee=90_000)  # pays more: no replace-by-fee here
    pool.add(first)
    with pytest.raises(PolicyError) as excinfo:
        pool.add(second)
    assert excinfo.value.reason == "txn-mempool-conflict"
    assert first.txid in pool and second.txid not in pool


def test_unconfirmed_parent_outputs_can_be_spent(chain, builder):
    pool = Mempool(chain)
    parent = builder.spend([coin(builder, 1)], to=PAYEE.pubkey_hash, amount=10 * COIN, fee=1000)
    child = builder.spend(
        [Spendable(OutPoint(parent.txid, 0), parent.outputs[0], PAYEE)], to=PAYEE.pubkey_hash, amount=COIN, fee=500
    )
    with pytest.raises(ValidationError) as excinfo:
        pool.add(child)
    assert excinfo.value.reason == "bad-txns-inputs-missingorspent"
    pool.add(parent)
    entry = pool.add(child)
    assert entry.parents == frozenset({parent.txid}) and entry.fee == 500
    assert pool.descendants(parent.txid) == [parent.txid, child.txid]


def test_full_pool_evicts_the_lowest_fee_rate_with_descendants(chain, builder):
    cheap = pay(builder, coin(builder, 1), fee=100)
    cheap_child = builder.spend(
        [Spendable(OutPoint(cheap.txid, 0), cheap.outputs[0], PAYEE)], to=PAYEE.pubkey_hash, amount=COIN // 2, fee=3000
    )
    middle = pay(builder, coin(builder, 2), fee=5_000)
    rich = pay(builder, coin(builder, 3), fee=50_000)
    poor = pay(builder, coin(builder, 4), fee=50)
    pool = Mempool(chain, max_bytes=cheap.size + cheap_child.size + middle.size)
    for tx in (cheap, cheap_child, middle):
        pool.add(tx)
    with pytest.raises(PolicyError) as excinfo:
        pool.add(poor)
    assert excinfo.value.reason == "mempool-full"
    pool.add(rich)
    assert cheap.txid not in pool and cheap_child.txid not in pool, "the parent went and took its child along"
    assert {e.txid for e in pool.entries()} == {middle.txid, rich.txid}
    assert pool.total_bytes == middle.size + rich.size <= pool.max_bytes


def test_block_removes_confirmed_and_conflicted_transactions(chain, builder):
    pool = Mempool(chain)
    confirmed = pay(builder, coin(builder, 1), fee=1000)
    ours = pay(builder, coin(builder, 2), fee=1000)
    ours_child = builder.spend(
        [Spendable(OutPoint(ours.txid, 0), ours.outputs[0], PAYEE)], to=PAYEE.pubkey_hash, amount=COIN // 2, fee=10
    )
    theirs = pay(builder, coin(builder, 2), fee=2000)  # the same coin, mined by someone else
    untouched = pay(builder, coin(builder, 3), fee=1000)
    for tx in (confirmed, ours, ours_child, untouched):
        pool.add(tx)
    update = chain.accept_block(builder.add_block(transactions=[confirmed, theirs], fees=3000))
    readmitted, dropped = pool.update(update)
    assert readmitted == []
    assert set(dropped) == {ours.txid, ours_child.txid}
    assert {e.txid for e in pool.entries()} == {untouched.txid}


def test_reorg_takes_back_transactions_of_disconnected_blocks(chain, builder):
    pool = Mempool(chain)
    fork_point = builder.tip
    t1 = pay(builder, coin(builder, 1), fee=1000)
    t2 = pay(builder, coin(builder, 2), fee=1000)
    a16 = builder.add_block(transactions=[t1, t2], fees=2000)
    spends_a16_coinbase = pay(builder, builder.coinbase_spendable(a16), fee=0)  # never valid: immature anyway
    pool.update(chain.accept_block(a16))
    assert len(pool) == 0
    pending = pay(builder, coin(builder, 3), fee=1000)
    pool.add(pending)
    t2_rival = builder.spend([coin(builder, 2)], to=Key().pubkey_hash, amount=COIN, fee=0)
    b16 = builder.add_block(parent=fork_point, transactions=[t2_rival])
    pool.update(chain.accept_block(b16))
    b17 = builder.add_block(parent=b16)
    update = chain.accept_block(b17)
    assert [b.hash for b in update.disconnected] == [a16.hash]
    readmitted, dropped = pool.update(update)
    assert [tx.txid for tx in readmitted] == [t1.txid], "t2 lost to its rival in b16"
    assert dropped == []
    assert {e.txid for e in pool.entries()} == {t1.txid, pending.txid}
    assert spends_a16_coinbase.txid not in pool


def test_signatures_checked_on_admission_are_not_checked_again_in_a_block(chain, builder):
    pool = Mempool(chain)
    pooled = pay(builder, coin(builder, 1), fee=1000)
    pool.add(pooled)
    verified = len(chain.sig_cache)
    assert verified >= 1
    chain.accept_block(builder.add_block(transactions=[pooled], fees=1000))
    assert len(chain.sig_cache) == verified, "the block's signature came from the cache"
    fresh = pay(builder, coin(builder, 2), fee=0)
    chain.accept_block(builder.add_block(transactions=[fresh]))
    assert len(chain.sig_cache) == verified + 1


def test_select_orders_by_fee_rate_parents_first_within_size(chain, builder):
    pool = Mempool(chain)
    low = pay(builder, coin(builder, 1), fee=100)
    high = pay(builder, coin(builder, 2), fee=90_000)
    mid = pay(builder, coin(builder, 3), fee=9_000)
    low_child = builder.spend(
        [Spendable(OutPoint(low.txid, 0), low.outputs[0], PAYEE)], to=PAYEE.pubkey_hash, amount=COIN // 2, fee=500_000
    )
    for tx in (low, high, mid, low_child):
        pool.add(tx)
    chosen, fees = pool.select(10_000)
    assert [tx.txid for tx in chosen] == [high.txid, mid.txid, low.txid, low_child.txid]
    assert fees == 100 + 90_000 + 9_000 + 500_000
    chosen, fees = pool.select(high.size + mid.size)
    assert [tx.txid for tx in chosen] == [high.txid, mid.txid]
    assert fees == 99_000
    spend = coin(builder, 4)
    big = sign_transaction(1, [spend], [TxOut(COIN, PAYEE.pubkey_hash)] * 30, REGTEST)  # pays 20 coins of fee
    pool.add(big)
    chosen, _ = pool.select(high.size + mid.size)
    assert big.size > high.size + mid.size
    assert [tx.txid for tx in chosen] == [high.txid, mid.txid], "the best payer does not fit: the next ones do"
