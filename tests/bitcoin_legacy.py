"""A small strict parser of Bitcoin's legacy (pre-segwit) transactions and blocks, for tests on real data.

Cairn's transactions are not Bitcoin's, but Cairn's structural block rules only need
a txid and a coinbase flag of each transaction (``chain.validation.BlockTransaction``),
so real Bitcoin blocks can be checked by Cairn's own rule functions once parsed::

    tx     = version u32 | n_in varint | inputs | n_out varint | outputs | locktime u32
    input  = prev_txid[32] | prev_index u32 | script_sig varbytes | sequence u32
    output = value i64 | script_pubkey varbytes

Decoding uses ``chain.encoding.Reader``: truncation, trailing bytes and non-minimal
varints raise ``DecodeError``. The extended (segwit) serialization is not supported:
its 0x00 marker reads as an empty input list, which is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from chain.block import BlockHeader
from chain.encoding import Reader, i64, u32, varint
from chain.errors import DecodeError
from chain.hashes import ZERO_HASH, sha256d
from chain.merkle import merkle_root

NULL_INDEX = 0xFFFFFFFF
MIN_INPUT_SIZE = 32 + 4 + 1 + 4  # outpoint, empty script, sequence
MIN_OUTPUT_SIZE = 8 + 1  # value, empty script
MIN_TX_SIZE = 4 + 1 + MIN_INPUT_SIZE + 1 + 4  # one input, no outputs


def _read_bytes(reader: Reader) -> bytes:
    return reader.read(reader.count(1))


@dataclass(frozen=True)
class LegacyTxIn:
    prev_txid: bytes
    prev_index: int
    script_sig: bytes
    sequence: int

    @property
    def prevout_is_null(self) -> bool:
        return self.prev_txid == ZERO_HASH and self.prev_index == NULL_INDEX

    def serialize(self) -> bytes:
        return (
            self.prev_txid + u32(self.prev_index) + varint(len(self.script_sig)) + self.script_sig + u32(self.sequence)
        )


@dataclass(frozen=True)
class LegacyTxOut:
    value: int
    script_pubkey: bytes

    def serialize(self) -> bytes:
        return i64(self.value) + varint(len(self.script_pubkey)) + self.script_pubkey


@dataclass(frozen=True)
class LegacyTransaction:
    """A Bitcoin transaction in the legacy format; ``txid`` is the double SHA-256 of its bytes."""

    version: int
    inputs: tuple[LegacyTxIn, ...]
    outputs: tuple[LegacyTxOut, ...]
    locktime: int

    @cached_property
    def serialized(self) -> bytes:
        parts = [u32(self.version), varint(len(self.inputs))]
        parts += [txin.serialize() for txin in self.inputs]
        parts.append(varint(len(self.outputs)))
        parts += [txout.serialize() for txout in self.outputs]
        parts.append(u32(self.locktime))
        return b"".join(parts)

    @cached_property
    def txid(self) -> bytes:
        return sha256d(self.serialized)

    @property
    def is_coinbase(self) -> bool:
        return len(self.inputs) == 1 and self.inputs[0].prevout_is_null

    @classmethod
    def read(cls, reader: Reader) -> LegacyTransaction:
        start = reader.pos
        version = reader.u32()
        n_inputs = reader.count(MIN_INPUT_SIZE)
        if n_inputs == 0:
            raise DecodeError(f"no inputs at offset {reader.pos}: a segwit marker, or not a legacy transaction")
        inputs = tuple(
            LegacyTxIn(reader.read(32), reader.u32(), _read_bytes(reader), reader.u32()) for _ in range(n_inputs)
        )
        outputs = tuple(LegacyTxOut(reader.i64(), _read_bytes(reader)) for _ in range(reader.count(MIN_OUTPUT_SIZE)))
        tx = cls(version, inputs, outputs, reader.u32())
        tx.__dict__["serialized"] = reader.data[start : reader.pos]
        return tx

    @classmethod
    def parse(cls, data: bytes) -> LegacyTransaction:
        reader = Reader(data)
        tx = cls.read(reader)
        reader.finish()
        return tx


@dataclass(frozen=True)
class LegacyBlock:
    """A Bitcoin block: Bitcoin's 80-byte header (Cairn's ``BlockHeader``) and legacy transactions."""

    header: BlockHeader
    transactions: tuple[LegacyTransaction, ...]

    @property
    def hash(self) -> bytes:
        return self.header.hash

    def serialize(self) -> bytes:
        parts = [self.header.serialize(), varint(len(self.transactions))]
        parts += [tx.serialized for tx in self.transactions]
        return b"".join(parts)

    def compute_merkle_root(self) -> bytes:
        return merkle_root([tx.txid for tx in self.transactions])

    @classmethod
    def parse(cls, data: bytes) -> LegacyBlock:
        """Decode exactly one block; DecodeError when truncated or followed by trailing bytes."""
        reader = Reader(data)
        header = BlockHeader.read(reader)
        transactions = tuple(LegacyTransaction.read(reader) for _ in range(reader.count(MIN_TX_SIZE)))
        reader.finish()
        return cls(header, transactions)
