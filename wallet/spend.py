"""Coin selection, fees and signing: turn the wallet's unspent outputs into one signed payment.

Coin selection is largest-first: take the biggest spendable coins until they cover
the amount and the fee of a transaction of that many inputs. It uses the fewest
inputs (so the lowest fee) and is easy to follow; it does not try to avoid change
(branch-and-bound would) nor hide which coins belong together.

The fee is ``fee_rate`` units per byte of the exact signed size, which is known
before signing because every Cairn input is 133 bytes and every output 28. Change
smaller than the cost of spending it later (one input at the same fee rate) is left
to the miner instead of creating dust.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chain.builder import Key, Spendable, sign_transaction
from chain.encoding import varint
from chain.hashes import hash_to_hex, hex_to_hash
from chain.params import NetworkParams
from chain.transaction import INPUT_SIZE, MAX_MONEY, OUTPUT_SIZE, OutPoint, Transaction, TxOut
from chain.utxo import Coin
from chain.validation import check_transaction, verify_tx_signatures
from wallet.amounts import format_amount
from wallet.errors import InsufficientFunds, NodeError, WalletError

TX_VERSION = 1


@dataclass(frozen=True)
class Utxo:
    """One unspent output of the wallet, as the node reports it."""

    outpoint: OutPoint
    amount: int
    pubkey_hash: bytes
    height: int | None
    confirmations: int
    coinbase: bool
    mature: bool
    spent_in_mempool: bool

    @property
    def spendable(self) -> bool:
        return self.confirmations >= 1 and self.mature and not self.spent_in_mempool

    @classmethod
    def from_json(cls, item: Mapping[str, Any], pubkey_hash: bytes) -> Utxo:
        try:
            return cls(
                OutPoint(hex_to_hash(item["txid"]), int(item["index"])),
                int(item["amount"]),
                pubkey_hash,
                None if item.get("height") is None else int(item["height"]),
                int(item["confirmations"]),
                bool(item["coinbase"]),
                bool(item["mature"]),
                bool(item["spent_in_mempool"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise NodeError(f"the node sent a malformed unspent output ({exc!r})", code="bad-response") from None


def transaction_size(n_inputs: int, n_outputs: int) -> int:
    """Exact serialized size of a Cairn transaction with this many inputs and outputs."""
    return 4 + len(varint(n_inputs)) + n_inputs * INPUT_SIZE + len(varint(n_outputs)) + n_outputs * OUTPUT_SIZE


@dataclass(frozen=True)
class Selection:
    """The coins to spend, the fee, and the change (0 when none is made)."""

    coins: tuple[Utxo, ...]
    amount: int
    fee: int
    change: int

    @property
    def total_in(self) -> int:
        return sum(c.amount for c in self.coins)

    @property
    def size(self) -> int:
        return transaction_size(len(self.coins), 2 if self.change else 1)


def select_coins(utxos: Iterable[Utxo], amount: int, fee_rate: int) -> Selection:
    """Largest-first selection paying ``amount`` at ``fee_rate`` units per byte; InsufficientFunds if short."""
    if amount <= 0 or amount > MAX_MONEY:
        raise WalletError(f"cannot pay {amount} units", code="bad-amount")
    if fee_rate < 0:
        raise WalletError("the fee rate cannot be negative", code="bad-fee-rate")
    all_coins = list(utxos)
    candidates = sorted(
        (u for u in all_coins if u.spendable), key=lambda u: (-u.amount, u.outpoint.txid, u.outpoint.index)
    )
    dust = max(1, INPUT_SIZE * fee_rate)  # change worth less than spending it goes to the fee instead
    chosen: list[Utxo] = []
    total = 0
    for coin in candidates:
        chosen.append(coin)
        total += coin.amount
        fee_with_change = transaction_size(len(chosen), 2) * fee_rate
        change = total - amount - fee_with_change
        if change >= dust:
            return Selection(tuple(chosen), amount, fee_with_change, change)
        fee_without = transaction_size(len(chosen), 1) * fee_rate
        if total - amount >= fee_without:
            return Selection(tuple(chosen), amount, total - amount, 0)
    spendable = sum(u.amount for u in candidates)
    need = amount + transaction_size(max(1, len(candidates)), 1) * fee_rate
    immature = sum(u.amount for u in all_coins if u.confirmations >= 1 and not u.mature)
    pending = sum(u.amount for u in all_coins if u.confirmations < 1 or (u.mature and u.spent_in_mempool))
    detail = []
    if immature:
        detail.append(f"{format_amount(immature)} in immature coinbase outputs")
    if pending:
        detail.append(f"{format_amount(pending)} unconfirmed or already being spent")
    extra = f" (not counting {' and '.join(detail)})" if detail else ""
    raise InsufficientFunds(
        f"insufficient funds: sending {format_amount(amount)} needs at least {format_amount(need)} with the fee, "
        f"but only {format_amount(spendable)} is spendable{extra}"
    )


def build_payment(
    selection: Selection,
    pay_to: bytes,
    change_to: bytes | None,
    secrets_by_pubkey_hash: Mapping[bytes, bytes],
    params: NetworkParams,
    *,
    shuffle: bool = True,
) -> Transaction:
    """Sign a transaction spending ``selection``: the payment, and change (at a random position) if any."""
    outputs = [TxOut(selection.amount, pay_to)]
    if selection.change:
        if change_to is None:
            raise ValueError("this selection makes change but no change address was given")
        change = TxOut(selection.change, change_to)
        outputs.insert(secrets.randbelow(2) if shuffle else 1, change)
    spends = [
        Spendable(c.outpoint, TxOut(c.amount, c.pubkey_hash), Key(secrets_by_pubkey_hash[c.pubkey_hash]))
        for c in selection.coins
    ]
    tx = sign_transaction(TX_VERSION, spends, outputs, params)
    if tx.size != selection.size:  # the fee was computed for this exact size
        raise AssertionError(f"signed size {tx.size} differs from the predicted {selection.size}")
    # check our own work with the consensus code before anything leaves the wallet
    check_transaction(tx, params)
    coins = [Coin(c.amount, c.pubkey_hash, c.height or 0, c.coinbase) for c in selection.coins]
    verify_tx_signatures(tx, coins, params)
    return tx


def describe(tx: Transaction, selection: Selection) -> dict[str, Any]:
    return {
        "txid": hash_to_hex(tx.txid),
        "size": tx.size,
        "fee": selection.fee,
        "amount": selection.amount,
        "change": selection.change,
        "inputs": [str(c.outpoint) for c in selection.coins],
    }
