"""The lab's keys and coins: deterministic keys from the seed, and signed payments from known coins.

The lab pays with coins it knows exist on every node (coinbases of the shared prefix,
or outputs of a confirmed fan-out transaction), so a payment never depends on which
side of a partition a node is on. Each coin is spent once, except when a scenario
double-spends on purpose.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from chain.address import encode_address
from chain.builder import Key, Spendable, sign_transaction
from chain.hashes import hash_to_hex, hex_to_hash
from chain.params import NetworkParams
from chain.transaction import OutPoint, Transaction, TxOut

FEE = 1_000


def lab_key(seed: int, name: str) -> Key:
    """A key derived from the run's seed and a name ("wallet", a node name): the same run, the same keys."""
    return Key(hashlib.sha256(f"cairn-lab/{seed}/{name}".encode()).digest())


@dataclass
class Wallet:
    params: NetworkParams
    key: Key
    coins: list[Spendable]

    @property
    def address(self) -> str:
        return encode_address(self.key.pubkey_hash, self.params)

    def add_coinbase(self, block_json: dict[str, object]) -> None:
        """Remember the coinbase of a block the lab mined to this wallet (``/api/blocks/<hash>`` JSON)."""
        coinbase = block_json["transactions"][0]  # type: ignore[index]
        output = coinbase["outputs"][0]
        txout = TxOut(int(output["amount"]), self.key.pubkey_hash)
        self.coins.append(Spendable(OutPoint(hex_to_hash(coinbase["txid"]), 0), txout, self.key))

    def take(self) -> Spendable:
        if not self.coins:
            raise RuntimeError("the lab wallet has no coin left: give the scenario more prefix blocks")
        return self.coins.pop(0)

    def pay(self, coin: Spendable, to: bytes, amount: int) -> Transaction:
        """Spend ``coin``: ``amount`` to ``to``, the change (less ``FEE``) back to the wallet."""
        change = coin.txout.amount - amount - FEE
        outputs = [TxOut(amount, to)] + ([TxOut(change, self.key.pubkey_hash)] if change > 0 else [])
        return sign_transaction(1, [coin], outputs, self.params)

    def fan_out(self, coins: list[Spendable], count: int) -> Transaction:
        """One transaction splitting ``coins`` into ``count`` equal outputs to the wallet; remembers them."""
        total = sum(c.txout.amount for c in coins) - FEE
        each = total // count
        tx = sign_transaction(1, coins, [TxOut(each, self.key.pubkey_hash)] * count, self.params)
        for index in range(count):
            self.coins.append(Spendable(OutPoint(tx.txid, index), tx.outputs[index], self.key))
        return tx


def txid_hex(tx: Transaction) -> str:
    return hash_to_hex(tx.txid)
