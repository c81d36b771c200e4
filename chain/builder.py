"""Build valid chains and signed transactions in a line, for tests, benchmarks and experiments.

    builder = ChainBuilder(REGTEST)
    a1 = builder.add_block()                 # on the tip
    b1 = builder.add_block(parent=genesis)   # a fork
    tx = builder.spend([builder.coinbase_coin(a1)], to=key.pubkey_hash, amount=10)

Keys here are plain random secrets; the wallet derives its keys from a seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from chain import crypto
from chain.block import Block
from chain.hashes import hash160
from chain.mining import build_block, solve_block
from chain.params import NetworkParams
from chain.pow import next_work_required
from chain.transaction import OutPoint, Transaction, TxIn, TxOut, signature_hash


@dataclass(frozen=True)
class Key:
    """A private key with its compressed public key and pubkey hash."""

    secret: bytes = field(default_factory=crypto.generate_secret, repr=False)

    @property
    def pubkey(self) -> bytes:
        return crypto.public_key(self.secret)

    @property
    def pubkey_hash(self) -> bytes:
        return hash160(self.pubkey)


@dataclass(frozen=True)
class Spendable:
    """An output and the key that can spend it."""

    outpoint: OutPoint
    txout: TxOut
    key: Key


def sign_transaction(
    version: int, spends: Sequence[Spendable], outputs: Sequence[TxOut], params: NetworkParams
) -> Transaction:
    """A transaction spending ``spends`` into ``outputs``, every input signed by its key."""
    unsigned = Transaction(version, tuple(TxIn(s.outpoint, s.key.pubkey, bytes(64)) for s in spends), tuple(outputs))
    inputs = tuple(
        TxIn(s.outpoint, s.key.pubkey, crypto.sign(s.key.secret, signature_hash(unsigned, i, s.txout, params.magic)))
        for i, s in enumerate(spends)
    )
    return Transaction(version, inputs, tuple(outputs))


class ChainBuilder:
    """Mine valid blocks on any parent, keeping what it needs to compute bits and timestamps."""

    def __init__(self, params: NetworkParams, miner: Key | None = None) -> None:
        assert params.genesis_block is not None
        self.params = params
        self.miner = miner or Key()
        self.genesis = params.genesis_block
        self.blocks: dict[bytes, Block] = {self.genesis.hash: self.genesis}
        self.heights: dict[bytes, int] = {self.genesis.hash: 0}
        self.tip = self.genesis
        self._serial = 0  # written into each coinbase, so blocks on the same parent differ

    def height_of(self, block: Block) -> int:
        return self.heights[block.hash]

    def _time_at(self, block: Block, height: int) -> int:
        while self.heights[block.hash] > height:
            block = self.blocks[block.header.prev_hash]
        return block.header.time

    def next_block(
        self,
        parent: Block | None = None,
        transactions: Sequence[Transaction] = (),
        *,
        reward_to: bytes | None = None,
        time: int | None = None,
        fees: int = 0,
        tag: bytes | None = None,
    ) -> Block:
        """Mine (but do not record) a block on ``parent`` (default: the tip), paying subsidy + ``fees``."""
        parent = parent or self.tip
        self._serial += 1
        height = self.heights[parent.hash] + 1
        bits = next_work_required(self.params, height - 1, parent.header.bits, lambda h: self._time_at(parent, h))
        block = build_block(
            parent.hash,
            height,
            time if time is not None else parent.header.time + 1,
            bits,
            reward_to or self.miner.pubkey_hash,
            self.params.block_subsidy(height) + fees,
            transactions,
            tag=f"builder {self._serial}".encode() if tag is None else tag,
        )
        return solve_block(block)

    def record(self, block: Block) -> Block:
        """Remember ``block`` so later blocks can build on it; it becomes the tip if it is the highest."""
        self.blocks[block.hash] = block
        height = self.heights[block.header.prev_hash] + 1
        self.heights[block.hash] = height
        if height > self.heights[self.tip.hash]:
            self.tip = block
        return block

    def add_block(
        self, parent: Block | None = None, transactions: Sequence[Transaction] = (), **kwargs: object
    ) -> Block:
        return self.record(self.next_block(parent, transactions, **kwargs))  # type: ignore[arg-type]

    def add_chain(self, count: int, parent: Block | None = None) -> list[Block]:
        blocks = []
        for _ in range(count):
            parent = self.add_block(parent)
            blocks.append(parent)
        return blocks

    def coinbase_spendable(self, block: Block, key: Key | None = None) -> Spendable:
        coinbase = block.transactions[0]
        return Spendable(OutPoint(coinbase.txid, 0), coinbase.outputs[0], key or self.miner)

    def spend(
        self, spends: Sequence[Spendable], to: bytes, amount: int, fee: int = 0, change_to: bytes | None = None
    ) -> Transaction:
        """Pay ``amount`` to ``to`` from ``spends``, with the rest minus ``fee`` as change."""
        total = sum(s.txout.amount for s in spends)
        outputs = [TxOut(amount, to)]
        if total - amount - fee > 0:
            outputs.append(TxOut(total - amount - fee, change_to or spends[0].key.pubkey_hash))
        return sign_transaction(1, spends, outputs, self.params)

    def spend_chain(self, coin: Spendable, to: bytes, length: int, amount: int, fee: int = 0) -> list[Transaction]:
        """``length`` transactions, each paying ``amount`` to ``to`` from the change of the one before: a parent ->
        child chain (``coin`` must cover them all)."""
        txs = []
        for _ in range(length):
            tx = self.spend([coin], to, amount, fee)
            txs.append(tx)
            coin = Spendable(OutPoint(tx.txid, 1), tx.outputs[1], coin.key)
        return txs
