"""``verify --full`` re-validates every transaction: chains with properly mined headers over invalid blocks pass a
header-only check and fail the full one at the right height, with the rule's reason code."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import pytest

from chain import crypto
from chain.block import Block
from chain.builder import ChainBuilder, Key, Spendable
from chain.params import REGTEST
from chain.transaction import COIN, OutPoint, TxOut
from tests.wallet.conftest import run
from tests.wallet.proxy import chain_peer

BAD_HEIGHT = 13


def active_chain(builder: ChainBuilder) -> list[Block]:
    chain = [builder.tip]
    while chain[-1].hash != REGTEST.genesis_hash:
        chain.append(builder.blocks[chain[-1].header.prev_hash])
    return chain[::-1]


def chain_with(bad_block: Callable[[ChainBuilder, list[Block]], Block], extra: int = 3) -> list[Block]:
    """12 good blocks, then ``bad_block`` (mined on the tip) at height 13, then a few good blocks on it."""
    builder = ChainBuilder(REGTEST)
    good = builder.add_chain(BAD_HEIGHT - 1)
    builder.record(bad_block(builder, good))
    builder.add_chain(extra)
    return active_chain(builder)


def overpaying_coinbase(builder: ChainBuilder, good: list[Block]) -> Block:
    return builder.next_block(fees=1)  # claims one unit of fees that no transaction pays


def bad_signature(builder: ChainBuilder, good: list[Block]) -> Block:
    tx = builder.spend([builder.coinbase_spendable(good[0])], to=Key().pubkey_hash, amount=COIN)
    forged = crypto.sign(builder.miner.secret, bytes(32))  # a valid signature, of the wrong digest
    tx = replace(tx, inputs=(replace(tx.inputs[0], signature=forged),))
    return builder.next_block(transactions=[tx])


def wrong_key(builder: ChainBuilder, good: list[Block]) -> Block:
    spendable = builder.coinbase_spendable(good[0])
    thief = Spendable(spendable.outpoint, spendable.txout, Key())
    return builder.next_block(transactions=[builder.spend([thief], to=Key().pubkey_hash, amount=COIN)])


def immature_spend(builder: ChainBuilder, good: list[Block]) -> Block:
    recent = builder.coinbase_spendable(good[-1])  # height 12, spent at 13: 1 confirmation of the 10 needed
    return builder.next_block(transactions=[builder.spend([recent], to=Key().pubkey_hash, amount=COIN)])


def missing_input(builder: ChainBuilder, good: list[Block]) -> Block:
    ghost = Spendable(OutPoint(b"\x42" * 32, 0), TxOut(COIN, builder.miner.pubkey_hash), builder.miner)
    return builder.next_block(transactions=[builder.spend([ghost], to=Key().pubkey_hash, amount=COIN // 2)])


def overspend(builder: ChainBuilder, good: list[Block]) -> Block:
    spendable = builder.coinbase_spendable(good[0])
    return builder.next_block(transactions=[builder.spend([spendable], to=Key().pubkey_hash, amount=51 * COIN)])


def double_spend(builder: ChainBuilder, good: list[Block]) -> Block:
    """The same coin spent in block 13 and again in block 14: the second is the bad one."""
    spendable = builder.coinbase_spendable(good[0])
    first = builder.record(builder.next_block(transactions=[builder.spend([spendable], Key().pubkey_hash, COIN)]))
    again = builder.spend([spendable], Key().pubkey_hash, 2 * COIN)
    return builder.next_block(parent=first, transactions=[again])


@pytest.mark.parametrize(
    ("make_bad", "reason", "height"),
    [
        (overpaying_coinbase, "bad-cb-amount", BAD_HEIGHT),
        (bad_signature, "bad-sig", BAD_HEIGHT),
        (wrong_key, "bad-txns-pubkey-mismatch", BAD_HEIGHT),
        (immature_spend, "bad-txns-premature-spend-of-coinbase", BAD_HEIGHT),
        (missing_input, "bad-txns-inputs-missingorspent", BAD_HEIGHT),
        (overspend, "bad-txns-in-belowout", BAD_HEIGHT),
        (double_spend, "bad-txns-inputs-missingorspent", BAD_HEIGHT + 1),
    ],
)
def test_full_verification_catches_invalid_transactions_behind_valid_headers(
    make_bad: Callable[[ChainBuilder, list[Block]], Block], reason: str, height: int
) -> None:
    blocks = chain_with(make_bad)
    tip = blocks[-1].hash_hex
    with chain_peer(blocks) as peer:
        headers_only = run("--network", "regtest", "verify", "--tip", tip, "--peer", peer, "--json")
        assert headers_only.exit_code == 0, headers_only.output
        assert json.loads(headers_only.stdout)["height"] == len(blocks) - 1
        full = run("--network", "regtest", "verify", "--tip", tip, "--peer", peer, "--full", "--json")
    assert full.exit_code == 1, full.output
    (source,) = json.loads(full.stdout)["sources"]
    assert (source["reason"], source["bad_height"], source["valid"]) == (reason, height, False)


def test_full_verification_passes_a_valid_chain_with_payments() -> None:
    builder = ChainBuilder(REGTEST)
    good = builder.add_chain(12)
    payee = Key()
    pay = builder.spend([builder.coinbase_spendable(good[0])], to=payee.pubkey_hash, amount=3 * COIN, fee=1000)
    paid = builder.add_block(transactions=[pay], fees=1000)
    onward = builder.spend(
        [Spendable(OutPoint(pay.txid, 0), pay.outputs[0], payee)], to=Key().pubkey_hash, amount=COIN, fee=500
    )
    builder.add_block(parent=paid, transactions=[onward], fees=500)  # spends an output of the block before
    blocks = active_chain(builder)
    with chain_peer(blocks) as peer:
        result = run("--network", "regtest", "verify", "--tip", blocks[-1].hash_hex, "--peer", peer, "--full", "--json")
    assert result.exit_code == 0, result.output
    (source,) = json.loads(result.stdout)["sources"]
    assert source["valid"] and source["blocks_checked"] == 14
