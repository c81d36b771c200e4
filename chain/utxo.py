"""Unspent outputs: the ``Coin`` record, a copy-on-write view over the stored set, and undo data."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import NamedTuple

from chain.encoding import Reader, varint
from chain.errors import DecodeError, TransactionError
from chain.transaction import OutPoint, Transaction, TxOut

_COIN = struct.Struct("<q20sIB")
COIN_SIZE = _COIN.size
OUTPOINT_SIZE = 36


class Coin(NamedTuple):
    """An unspent output, with the height of its block and whether a coinbase made it.

    A NamedTuple, like OutPoint, because one is made for every output connected.
    """

    amount: int
    pubkey_hash: bytes
    height: int
    is_coinbase: bool

    @property
    def txout(self) -> TxOut:
        return TxOut(self.amount, self.pubkey_hash)

    def serialize(self) -> bytes:
        return _COIN.pack(self.amount, self.pubkey_hash, self.height, self.is_coinbase)

    @classmethod
    def read(cls, reader: Reader) -> Coin:
        amount, pubkey_hash, height, coinbase = _COIN.unpack(reader.read(COIN_SIZE))
        if coinbase > 1:  # one encoding per coin: the flag is 0 or 1
            raise DecodeError(f"coinbase flag {coinbase} is neither 0 nor 1")
        return cls(amount, pubkey_hash, height, bool(coinbase))


def serialize_undo(spent: list[tuple[OutPoint, Coin]]) -> bytes:
    """Undo data of a block: every coin it spent, in spending order."""
    return varint(len(spent)) + b"".join(op.serialize() + coin.serialize() for op, coin in spent)


def parse_undo(data: bytes) -> list[tuple[OutPoint, Coin]]:
    reader = Reader(data)
    spent = [
        (OutPoint(reader.read(32), reader.u32()), Coin.read(reader))
        for _ in range(reader.count(OUTPOINT_SIZE + COIN_SIZE))
    ]
    reader.finish()
    return spent


class CoinView:
    """A layer of changes over a base UTXO lookup; nothing reaches the base until the owner flushes it.

    ``added`` holds coins created in this view, ``spent`` the base coins spent in it.
    A block (or a whole reorg) is validated against a view and the view is thrown
    away if anything fails, so a rejected block changes nothing.
    """

    def __init__(self, base: Callable[[OutPoint], Coin | None]) -> None:
        self._base = base
        self.added: dict[OutPoint, Coin] = {}
        self.spent: dict[OutPoint, Coin] = {}

    def get(self, outpoint: OutPoint) -> Coin | None:
        coin = self.added.get(outpoint)
        if coin is not None:
            return coin
        if outpoint in self.spent:
            return None
        return self._base(outpoint)

    def spend(self, outpoint: OutPoint) -> Coin:
        """Remove and return a coin; ``bad-txns-inputs-missingorspent`` if there is none."""
        coin = self.added.pop(outpoint, None)
        if coin is not None:
            return coin
        coin = None if outpoint in self.spent else self._base(outpoint)
        if coin is None:
            raise TransactionError("bad-txns-inputs-missingorspent", f"input {outpoint} does not exist or is spent")
        self.spent[outpoint] = coin
        return coin

    def add(self, outpoint: OutPoint, coin: Coin) -> None:
        if self.spent.get(outpoint) == coin:
            del self.spent[outpoint]  # the base coin comes back exactly as it was: nothing to store
        else:
            # a new coin, or one replacing a base coin spent in this view that differs from it (the same
            # transaction confirmed again at another height after a reorg): delete the old, insert the new
            self.added[outpoint] = coin

    def add_outputs(self, tx: Transaction, height: int) -> None:
        txid, coinbase, added, spent = tx.txid, tx.is_coinbase, self.added, self.spent
        for index, txout in enumerate(tx.outputs):
            outpoint = OutPoint(txid, index)
            coin = Coin(txout.amount, txout.pubkey_hash, height, coinbase)
            if spent and spent.get(outpoint) == coin:  # as ``add``, inlined: this runs for every output
                del spent[outpoint]
            else:
                added[outpoint] = coin

    def changes(self) -> tuple[Iterator[OutPoint], Iterator[tuple[OutPoint, Coin]]]:
        """What to delete from and insert into the base to make it equal this view."""
        return iter(self.spent), iter(self.added.items())
