"""Every consensus rule of chain/validation.py: one test per reason code, each failing if its rule goes.

Contextual rules are exercised through a real ChainState on a SQLite file, and
each rejection must leave the tip and the UTXO set as they were.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from chain import crypto
from chain.block import Block
from chain.builder import ChainBuilder, Key, Spendable, sign_transaction
from chain.chainstate import ChainState
from chain.crypto import SECP256K1_ORDER
from chain.errors import BlockError, HeaderError, SignatureError, TransactionError, ValidationError
from chain.hashes import hash160
from chain.params import REGTEST
from chain.transaction import (
    COIN,
    MAX_MONEY,
    NULL_OUTPOINT,
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    make_coinbase,
    signature_hash,
)
from chain.utxo import Coin, CoinView
from chain.validation import check_block, check_transaction, check_tx_inputs, connect_block
from tests.helpers import rebuild

KEY = Key(bytes(31) + b"\x07")


def tx_with(inputs: list[TxIn] | None = None, outputs: list[TxOut] | None = None) -> Transaction:
    inputs = inputs if inputs is not None else [TxIn(OutPoint(b"\x01" * 32, 0), KEY.pubkey, bytes(64))]
    outputs = outputs if outputs is not None else [TxOut(COIN, KEY.pubkey_hash)]
    return Transaction(1, tuple(inputs), tuple(outputs))


def reason(exc_info: pytest.ExceptionInfo[ValidationError]) -> str:
    return exc_info.value.reason


# ------------------------------------------------------------------ context-free transaction rules


def test_a_well_formed_transaction_passes() -> None:
    check_transaction(tx_with(), REGTEST)


@pytest.mark.parametrize(
    ("tx", "code"),
    [
        (tx_with(inputs=[]), "bad-txns-vin-empty"),
        (tx_with(outputs=[]), "bad-txns-vout-empty"),
        (tx_with(outputs=[TxOut(-1, KEY.pubkey_hash)]), "bad-txns-vout-negative"),
        (tx_with(outputs=[TxOut(MAX_MONEY + 1, KEY.pubkey_hash)]), "bad-txns-vout-toolarge"),
        (tx_with(outputs=[TxOut(MAX_MONEY, KEY.pubkey_hash)] * 2), "bad-txns-txouttotal-toolarge"),
        (tx_with(inputs=[TxIn(OutPoint(b"\x01" * 32, 0), KEY.pubkey, bytes(64))] * 2), "bad-txns-inputs-duplicate"),
        (
            tx_with(
                inputs=[
                    TxIn(OutPoint(b"\x01" * 32, 0), KEY.pubkey, bytes(64)),
                    TxIn(NULL_OUTPOINT, KEY.pubkey, bytes(64)),
                ]
            ),
            "bad-txns-prevout-null",
        ),
        (tx_with(inputs=[TxIn(NULL_OUTPOINT, KEY.pubkey, bytes(64))]), "bad-cb-input"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_context_free_transaction_rules(tx: Transaction, code: str) -> None:
    with pytest.raises(TransactionError) as exc:
        check_transaction(tx, REGTEST)
    assert reason(exc) == code


def test_money_range_edges_are_inclusive() -> None:
    check_transaction(tx_with(outputs=[TxOut(0, KEY.pubkey_hash)]), REGTEST)
    check_transaction(tx_with(outputs=[TxOut(MAX_MONEY, KEY.pubkey_hash)]), REGTEST)
    check_transaction(tx_with(outputs=[TxOut(MAX_MONEY - 1, KEY.pubkey_hash), TxOut(1, KEY.pubkey_hash)]), REGTEST)


def test_oversize_transaction() -> None:
    small = replace(REGTEST, max_block_size=1_000)
    inputs = [TxIn(OutPoint(i.to_bytes(32, "little"), 0), KEY.pubkey, bytes(64)) for i in range(1, 9)]
    tx = tx_with(inputs=inputs)
    assert tx.size > 1_000
    with pytest.raises(TransactionError) as exc:
        check_transaction(tx, small)
    assert reason(exc) == "bad-txns-oversize"
    check_transaction(tx, REGTEST)


# ------------------------------------------------------------------ chain fixtures


@pytest.fixture
def builder() -> ChainBuilder:
    return ChainBuilder(REGTEST, miner=KEY)


@pytest.fixture
def state(tmp_path, builder: ChainBuilder) -> ChainState:
    """A chain of 12 blocks: the coinbases of heights 1 and 2 are mature at height 13."""
    cs = ChainState(REGTEST, tmp_path / "chain.sqlite", synchronous="NORMAL")
    for block in builder.add_chain(12):
        cs.accept_block(block)
    yield cs
    cs.close()


def coin_of(builder: ChainBuilder, height: int) -> Spendable:
    block = builder.blocks[next(h for h, v in builder.heights.items() if v == height and h in _active(builder))]
    return builder.coinbase_spendable(block)


def _active(builder: ChainBuilder) -> set[bytes]:
    hashes, block = set(), builder.tip
    while True:
        hashes.add(block.hash)
        if block.hash == builder.genesis.hash:
            return hashes
        block = builder.blocks[block.header.prev_hash]


def rejects(state: ChainState, block: Block, code: str) -> ValidationError:
    """Submit ``block``; it must fail with ``code`` and change neither the tip nor the UTXO set."""
    tip, coins = state.tip.hash, state.store.all_coins()
    with pytest.raises(ValidationError) as exc:
        state.accept_block(block)
    assert reason(exc) == code, exc.value
    assert state.tip.hash == tip
    assert state.store.all_coins() == coins
    return exc.value


# ------------------------------------------------------------------ block rules


def test_a_valid_spend_is_connected(state: ChainState, builder: ChainBuilder) -> None:
    other = Key()
    tx = builder.spend([coin_of(builder, 1)], other.pubkey_hash, 3 * COIN, fee=1_000)
    block = builder.add_block(transactions=[tx], fees=1_000)
    update = state.accept_block(block)
    assert [b.hash for b in update.connected] == [block.hash]
    assert state.get_coin(OutPoint(tx.txid, 0)) == Coin(3 * COIN, other.pubkey_hash, 13, False)
    assert state.get_coin(coin_of(builder, 1).outpoint) is None


def test_high_hash(state: ChainState, builder: ChainBuilder) -> None:
    block = builder.next_block()
    target = 1 << 255
    nonce = next(n for n in range(1000) if int.from_bytes(replace(block.header, nonce=n).hash, "little") >= target)
    rejects(state, Block(replace(block.header, nonce=nonce), block.transactions), "high-hash")


def test_bits_must_follow_the_difficulty_rule(state: ChainState, builder: ChainBuilder) -> None:
    block = builder.next_block()
    rejects(state, rebuild(block, bits=0x207FFFFE), "bad-diffbits")  # a valid target, but not the expected one
    rejects(state, rebuild(block, bits=0x20800001, solve=False), "bad-diffbits")  # negative target


def test_time_at_or_below_median_time_past(state: ChainState, builder: ChainBuilder) -> None:
    mtp = state.median_time_past(state.tip)
    rejects(state, builder.next_block(time=mtp), "time-too-old")
    state.accept_block(builder.next_block(time=mtp + 1))


def test_time_too_far_ahead(state: ChainState, builder: ChainBuilder) -> None:
    now = state.tip.header.time
    block = builder.next_block(time=now + REGTEST.max_future_block_time + 1)
    tip = state.tip.hash
    with pytest.raises(HeaderError) as exc:
        state.accept_block(block, now=now)
    assert reason(exc) == "time-too-new"
    assert state.tip.hash == tip
    state.accept_block(builder.next_block(time=now + REGTEST.max_future_block_time), now=now)


def test_bad_merkle_root_does_not_condemn_the_header(state: ChainState, builder: ChainBuilder) -> None:
    block = builder.next_block()
    mutated = Block(block.header, (block.transactions[0], block.transactions[0]))
    rejects(state, mutated, "bad-txnmrklroot")
    rejects(state, Block(block.header, ()), "bad-txnmrklroot")
    wrong_root = rebuild(block, merkle_root=bytes(32))
    rejects(state, wrong_root, "bad-txnmrklroot")
    state.accept_block(block)  # the real block with the same header is still welcome
    assert state.tip.hash == block.hash


def test_duplicate_transactions_keep_the_merkle_root_and_are_rejected(state: ChainState, builder: ChainBuilder) -> None:
    """CVE-2012-2459: [cb, a, b] and [cb, a, b, b] have the same merkle root."""
    a = builder.spend([coin_of(builder, 1)], Key().pubkey_hash, COIN)
    b = builder.spend([coin_of(builder, 2)], Key().pubkey_hash, COIN)
    block = builder.next_block(transactions=[a, b])
    mutated = Block(block.header, (*block.transactions, b))
    assert mutated.compute_merkle_root() == block.header.merkle_root
    rejects(state, mutated, "bad-txns-duplicate")
    state.accept_block(block)
    assert state.tip.hash == block.hash


def test_block_without_transactions(state: ChainState, builder: ChainBuilder) -> None:
    rejects(state, rebuild(builder.next_block(), transactions=()), "bad-blk-length")


def test_first_transaction_must_be_the_coinbase(state: ChainState, builder: ChainBuilder) -> None:
    tx = builder.spend([coin_of(builder, 1)], Key().pubkey_hash, COIN)
    block = builder.next_block(transactions=[tx])
    rejects(state, rebuild(block, transactions=(tx, block.transactions[0])), "bad-cb-missing")


def test_second_coinbase(state: ChainState, builder: ChainBuilder) -> None:
    block = builder.next_block()
    extra = make_coinbase(13, (TxOut(1, KEY.pubkey_hash),), tag=b"another")
    rejects(state, rebuild(block, transactions=(block.transactions[0], extra)), "bad-cb-multiple")


def test_oversize_block(tmp_path, builder: ChainBuilder) -> None:
    small = replace(REGTEST, max_block_size=600)
    small_builder = ChainBuilder(small, miner=KEY)
    cs = ChainState(small, tmp_path / "small.sqlite")
    blocks = small_builder.add_chain(12)
    for block in blocks:
        cs.accept_block(block)
    spends = [small_builder.coinbase_spendable(b) for b in blocks[:2]]
    txs = [small_builder.spend([s], Key().pubkey_hash, COIN) for s in spends]
    block = small_builder.next_block(transactions=txs)
    assert block.size > 600
    rejects(cs, block, "bad-blk-length")
    cs.close()


def test_coinbase_must_carry_its_height(state: ChainState, builder: ChainBuilder) -> None:
    block = builder.next_block()
    wrong = make_coinbase(12, block.transactions[0].outputs, tag=b"wrong height")
    rejects(state, rebuild(block, transactions=(wrong,)), "bad-cb-height")


def test_coinbase_may_claim_subsidy_plus_fees_and_no_more(state: ChainState, builder: ChainBuilder) -> None:
    tx = builder.spend([coin_of(builder, 1)], Key().pubkey_hash, COIN, fee=5_000)
    rejects(state, builder.next_block(transactions=[tx], fees=5_001), "bad-cb-amount")
    state.accept_block(builder.next_block(transactions=[tx], fees=5_000))


def test_invalid_block_is_remembered_and_its_children_refused(state: ChainState, builder: ChainBuilder) -> None:
    block = builder.next_block(fees=1)  # pays one unit too much: invalid for good
    rejects(state, block, "bad-cb-amount")
    rejects(state, block, "duplicate-invalid")
    builder.record(block)
    child = builder.next_block(parent=block)
    rejects(state, child, "bad-prevblk")


def test_unknown_parent(state: ChainState, builder: ChainBuilder) -> None:
    stranger = ChainBuilder(REGTEST)
    orphan_parent = stranger.add_block()
    rejects(state, stranger.next_block(parent=orphan_parent), "prev-blk-not-found")


# ------------------------------------------------------------------ spending rules


def test_spending_a_missing_output(state: ChainState, builder: ChainBuilder) -> None:
    ghost = Spendable(OutPoint(b"\x42" * 32, 0), TxOut(COIN, KEY.pubkey_hash), KEY)
    tx = builder.spend([ghost], Key().pubkey_hash, COIN // 2)
    rejects(state, builder.next_block(transactions=[tx], fees=COIN // 2), "bad-txns-inputs-missingorspent")


def test_spending_an_output_spent_in_an_earlier_block(state: ChainState, builder: ChainBuilder) -> None:
    coin = coin_of(builder, 1)
    state.accept_block(builder.add_block(transactions=[builder.spend([coin], Key().pubkey_hash, COIN)]))
    again = builder.spend([coin], Key().pubkey_hash, 2 * COIN)
    rejects(state, builder.next_block(transactions=[again]), "bad-txns-inputs-missingorspent")


def test_double_spend_inside_one_block(state: ChainState, builder: ChainBuilder) -> None:
    """CVE-2018-17144's other half: two transactions of a block spending one output."""
    coin = coin_of(builder, 1)
    first = builder.spend([coin], Key().pubkey_hash, COIN)
    second = builder.spend([coin], Key().pubkey_hash, 2 * COIN)
    rejects(state, builder.next_block(transactions=[first, second]), "bad-txns-inputs-missingorspent")


def test_duplicate_inputs_in_one_transaction_inside_a_block(state: ChainState, builder: ChainBuilder) -> None:
    coin = coin_of(builder, 1)
    tx = sign_transaction(1, [coin, coin], [TxOut(60 * COIN, KEY.pubkey_hash)], REGTEST)
    rejects(state, builder.next_block(transactions=[tx]), "bad-txns-inputs-duplicate")


def test_spending_within_the_same_block(state: ChainState, builder: ChainBuilder) -> None:
    first = builder.spend([coin_of(builder, 1)], KEY.pubkey_hash, 10 * COIN)
    second = builder.spend([Spendable(OutPoint(first.txid, 0), first.outputs[0], KEY)], Key().pubkey_hash, 5 * COIN)
    state.accept_block(builder.add_block(transactions=[first, second]))
    assert state.get_coin(OutPoint(first.txid, 0)) is None
    assert state.get_coin(OutPoint(second.txid, 0)) is not None


def test_coinbase_maturity(state: ChainState, builder: ChainBuilder) -> None:
    # at height 13 the coinbase of height 3 has 10 confirmations... one short of mature? 13 - 3 = 10: mature.
    young = coin_of(builder, 4)  # 13 - 4 = 9 < 10
    tx = builder.spend([young], Key().pubkey_hash, COIN)
    rejects(state, builder.next_block(transactions=[tx]), "bad-txns-premature-spend-of-coinbase")
    ripe = builder.spend([coin_of(builder, 3)], Key().pubkey_hash, COIN)
    state.accept_block(builder.add_block(transactions=[ripe]))


def test_outputs_above_inputs(state: ChainState, builder: ChainBuilder) -> None:
    coin = coin_of(builder, 1)
    tx = sign_transaction(1, [coin], [TxOut(coin.txout.amount + 1, KEY.pubkey_hash)], REGTEST)
    rejects(state, builder.next_block(transactions=[tx]), "bad-txns-in-belowout")


# ------------------------------------------------------------------ signatures


def resign(tx: Transaction, index: int, **fields: bytes) -> Transaction:
    inputs = list(tx.inputs)
    inputs[index] = replace(inputs[index], **fields)
    return replace(tx, inputs=tuple(inputs))


def test_signature_by_the_wrong_key(state: ChainState, builder: ChainBuilder) -> None:
    coin = coin_of(builder, 1)
    thief = Key()
    tx = sign_transaction(1, [Spendable(coin.outpoint, coin.txout, thief)], [TxOut(COIN, thief.pubkey_hash)], REGTEST)
    rejects(state, builder.next_block(transactions=[tx]), "bad-txns-pubkey-mismatch")
    # the right public key with a signature made by another key
    forged = resign(tx, 0, pubkey=KEY.pubkey)
    rejects(state, builder.next_block(transactions=[forged]), "bad-sig")


def test_signature_over_different_data(state: ChainState, builder: ChainBuilder) -> None:
    coin = coin_of(builder, 1)
    honest = builder.spend([coin], KEY.pubkey_hash, COIN)
    redirected = replace(honest, outputs=(TxOut(COIN, Key().pubkey_hash), *honest.outputs[1:]))
    rejects(state, builder.next_block(transactions=[redirected]), "bad-sig")


def test_signature_does_not_carry_over_to_another_network(state: ChainState, builder: ChainBuilder) -> None:
    coin = coin_of(builder, 1)
    outputs = (TxOut(COIN, KEY.pubkey_hash),)
    unsigned = Transaction(1, (TxIn(coin.outpoint, KEY.pubkey, bytes(64)),), outputs)
    other_magic = signature_hash(unsigned, 0, coin.txout, b"\xf9\xbe\xb4\xd9")
    tx = resign(unsigned, 0, signature=crypto.sign(KEY.secret, other_magic))
    rejects(state, builder.next_block(transactions=[tx]), "bad-sig")


def test_high_s_signature_is_refused(state: ChainState, builder: ChainBuilder) -> None:
    tx = builder.spend([coin_of(builder, 1)], KEY.pubkey_hash, COIN)
    sig = tx.inputs[0].signature
    high_s = sig[:32] + (SECP256K1_ORDER - int.from_bytes(sig[32:], "big")).to_bytes(32, "big")
    rejects(state, builder.next_block(transactions=[resign(tx, 0, signature=high_s)]), "bad-sig-high-s")


def test_malformed_signature_and_key(state: ChainState, builder: ChainBuilder) -> None:
    tx = builder.spend([coin_of(builder, 1)], KEY.pubkey_hash, COIN)
    zero_r = bytes(32) + tx.inputs[0].signature[32:]
    rejects(state, builder.next_block(transactions=[resign(tx, 0, signature=zero_r)]), "bad-sig-encoding")
    # an output locked to the hash of a string that is no public key can never be spent
    not_a_point = b"\x02" + b"\xff" * 32
    assert hash160(not_a_point) != KEY.pubkey_hash
    with pytest.raises(SignatureError) as exc:
        crypto.verify(not_a_point, tx.inputs[0].signature, bytes(32))
    assert reason(exc) == "bad-pubkey"


# ------------------------------------------------------------------ amount rules on fabricated coins


def fabricated_view(coins: dict[OutPoint, Coin]) -> CoinView:
    return CoinView(coins.get)


def test_input_values_out_of_range() -> None:
    """Coins that no honest chain can hold still cannot sum past MAX_MONEY (CVE-2010-5139)."""
    a, b = OutPoint(b"\x01" * 32, 0), OutPoint(b"\x02" * 32, 0)
    coins = [Coin(MAX_MONEY, KEY.pubkey_hash, 1, False), Coin(1, KEY.pubkey_hash, 1, False)]
    tx = tx_with(inputs=[TxIn(a, KEY.pubkey, bytes(64)), TxIn(b, KEY.pubkey, bytes(64))])
    with pytest.raises(TransactionError) as exc:
        check_tx_inputs(tx, coins, 100, REGTEST)
    assert reason(exc) == "bad-txns-inputvalues-outofrange"
    with pytest.raises(TransactionError) as exc:
        check_tx_inputs(tx, [Coin(MAX_MONEY + 1, KEY.pubkey_hash, 1, False)], 100, REGTEST)
    assert reason(exc) == "bad-txns-inputvalues-outofrange"


def test_fee_out_of_range() -> None:
    """A negative output would mint a fee above MAX_MONEY if check_transaction were bypassed."""
    tx = tx_with(outputs=[TxOut(-MAX_MONEY, KEY.pubkey_hash)])
    with pytest.raises(TransactionError) as exc:
        check_tx_inputs(tx, [Coin(10, KEY.pubkey_hash, 1, False)], 100, REGTEST)
    assert reason(exc) == "bad-txns-fee-outofrange"


def test_accumulated_fees_out_of_range(builder: ChainBuilder) -> None:
    coins = {OutPoint(bytes([i]) * 32, 0): Coin(MAX_MONEY, KEY.pubkey_hash, 1, False) for i in (1, 2)}
    txs = [
        sign_transaction(1, [Spendable(op, c.txout, KEY)], [TxOut(0, KEY.pubkey_hash)], REGTEST)
        for op, c in coins.items()
    ]
    block = builder.next_block(transactions=txs)
    with pytest.raises(BlockError) as exc:
        connect_block(block, 1, fabricated_view(coins), REGTEST)
    assert reason(exc) == "bad-txns-accumulated-fee-outofrange"
    connect_block(rebuild(block, transactions=block.transactions[:2]), 1, fabricated_view(coins), REGTEST)


def test_check_block_runs_the_transaction_rules(builder: ChainBuilder) -> None:
    bad = tx_with(outputs=[TxOut(-1, KEY.pubkey_hash)])
    block = builder.next_block(transactions=[bad])
    with pytest.raises(TransactionError) as exc:
        check_block(block, REGTEST)
    assert reason(exc) == "bad-txns-vout-negative"
