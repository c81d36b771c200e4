"""Coin selection, exact fees and signing of payments."""

from __future__ import annotations

import pytest

from chain.builder import Key
from chain.params import REGTEST
from chain.transaction import COIN, INPUT_SIZE, OutPoint
from chain.utxo import Coin
from chain.validation import check_transaction, check_tx_inputs, verify_tx_signatures
from wallet.errors import InsufficientFunds, WalletError
from wallet.spend import Utxo, build_payment, select_coins, transaction_size

KEY = Key(bytes(31) + b"\x07")
OTHER = Key(bytes(31) + b"\x09")


def utxo(amount: int, n: int, *, confirmations: int = 5, mature: bool = True, spent: bool = False) -> Utxo:
    return Utxo(
        OutPoint(bytes([n]) * 32, n % 3),
        amount,
        KEY.pubkey_hash,
        None if confirmations == 0 else 100 - confirmations,
        confirmations,
        coinbase=not mature,
        mature=mature,
        spent_in_mempool=spent,
    )


@pytest.mark.parametrize(("n_in", "n_out", "size"), [(1, 1, 4 + 1 + 133 + 1 + 28), (1, 2, 195), (3, 2, 461)])
def test_transaction_size_formula(n_in: int, n_out: int, size: int) -> None:
    assert transaction_size(n_in, n_out) == size
    assert transaction_size(300, 1) == 4 + 3 + 300 * 133 + 1 + 28  # 3-byte varint past 252 inputs


def test_largest_coins_first_with_change_and_exact_fee() -> None:
    coins = [utxo(1 * COIN, 1), utxo(5 * COIN, 2), utxo(3 * COIN, 3)]
    selection = select_coins(coins, 7 * COIN, fee_rate=10)
    assert [c.amount for c in selection.coins] == [5 * COIN, 3 * COIN]
    assert selection.fee == transaction_size(2, 2) * 10 == 3280
    assert selection.change == 8 * COIN - 7 * COIN - 3280
    assert selection.total_in == selection.amount + selection.fee + selection.change


def test_one_coin_suffices_when_the_largest_covers_it() -> None:
    selection = select_coins([utxo(COIN, 1), utxo(10 * COIN, 2)], 2 * COIN, fee_rate=1)
    assert [c.amount for c in selection.coins] == [10 * COIN]
    assert selection.fee == 195


def test_change_below_dust_goes_to_the_fee() -> None:
    fee_rate = 2
    exact = COIN - transaction_size(1, 1) * fee_rate
    almost = exact - INPUT_SIZE * fee_rate + 1  # leaves less change than spending it would cost
    selection = select_coins([utxo(COIN, 1)], almost, fee_rate)
    assert selection.change == 0
    assert selection.fee == COIN - almost
    assert selection.size == transaction_size(1, 1)
    exact_selection = select_coins([utxo(COIN, 1)], exact, fee_rate)
    assert (exact_selection.change, exact_selection.fee) == (0, transaction_size(1, 1) * fee_rate)


def test_zero_fee_rate_keeps_every_unit_of_change() -> None:
    selection = select_coins([utxo(COIN, 1)], COIN - 1, fee_rate=0)
    assert (selection.fee, selection.change) == (0, 1)


def test_immature_unconfirmed_and_mempool_spent_coins_are_not_used() -> None:
    coins = [
        utxo(50 * COIN, 1, mature=False),
        utxo(40 * COIN, 2, confirmations=0),
        utxo(30 * COIN, 3, spent=True),
        utxo(2 * COIN, 4),
    ]
    selection = select_coins(coins, COIN, fee_rate=1)
    assert [c.amount for c in selection.coins] == [2 * COIN]
    with pytest.raises(InsufficientFunds) as exc:
        select_coins(coins, 3 * COIN, fee_rate=1)
    message = exc.value.message
    assert exc.value.code == "insufficient-funds"
    assert "only 2.00000000 is spendable" in message
    assert "50.00000000 in immature coinbase outputs" in message
    assert "70.00000000 unconfirmed or already being spent" in message


def test_the_fee_can_make_funds_short() -> None:
    with pytest.raises(InsufficientFunds) as exc:
        select_coins([utxo(COIN, 1)], COIN, fee_rate=1)
    assert "needs at least 1.00000167" in exc.value.message
    assert select_coins([utxo(COIN, 1)], COIN - 167, fee_rate=1).fee == 167


def test_empty_wallet_is_short() -> None:
    with pytest.raises(InsufficientFunds):
        select_coins([], 1, fee_rate=0)


@pytest.mark.parametrize(("amount", "fee_rate"), [(0, 1), (-5, 1), (1, -1)])
def test_nonsense_requests_are_refused(amount: int, fee_rate: int) -> None:
    with pytest.raises(WalletError):
        select_coins([utxo(COIN, 1)], amount, fee_rate)


@pytest.mark.parametrize("shuffle", [False, True])
def test_signed_payment_is_valid_and_its_fee_is_exact(shuffle: bool) -> None:
    coins = [utxo(3 * COIN, 1), utxo(2 * COIN, 2), utxo(COIN, 3)]
    selection = select_coins(coins, 4 * COIN, fee_rate=7)
    tx = build_payment(
        selection, OTHER.pubkey_hash, KEY.pubkey_hash, {KEY.pubkey_hash: KEY.secret}, REGTEST, shuffle=shuffle
    )
    assert tx.size == selection.size == transaction_size(2, 2)
    assert selection.fee == 7 * tx.size
    check_transaction(tx, REGTEST)
    spent = [Coin(c.amount, c.pubkey_hash, c.height or 0, c.coinbase) for c in selection.coins]
    verify_tx_signatures(tx, spent, REGTEST)
    assert check_tx_inputs(tx, spent, 200, REGTEST) == selection.fee
    paid = {(o.pubkey_hash, o.amount) for o in tx.outputs}
    assert paid == {(OTHER.pubkey_hash, 4 * COIN), (KEY.pubkey_hash, selection.change)}
    if not shuffle:
        assert tx.outputs[0].pubkey_hash == OTHER.pubkey_hash


def test_payment_without_change_has_one_output() -> None:
    selection = select_coins([utxo(COIN, 1)], COIN - 250, fee_rate=1)
    tx = build_payment(selection, OTHER.pubkey_hash, None, {KEY.pubkey_hash: KEY.secret}, REGTEST)
    assert [(o.pubkey_hash, o.amount) for o in tx.outputs] == [(OTHER.pubkey_hash, COIN - 250)]
    assert selection.fee == 250  # the 55 units left after a 195-unit fee are dust: they go to the fee
