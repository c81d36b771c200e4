"""UTXO transactions: canonical binary form, txid, signature hash and JSON view.

Serialization (all integers little-endian, counts as CompactSize varints)::

    version u32 | n_inputs varint | inputs | n_outputs varint | outputs
    input  = prev_txid[32] | prev_index u32 | pubkey[33] | signature[64]
    output = amount i64 | pubkey_hash[20]

A coinbase has exactly one input whose outpoint is null (zero txid, index
0xffffffff); its pubkey field is 33 zero bytes and its signature field carries the
coinbase data: block height u32 (BIP 34's rule), extra nonce u64, 52 free bytes.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

from chain.encoding import Reader, cached, i64, u32, varint
from chain.hashes import ZERO_HASH, hash_to_hex, sha256d

COIN = 100_000_000  # smallest units in one coin
MAX_MONEY = 21_000_000 * COIN  # Bitcoin Core: MAX_MONEY

PUBKEY_SIZE = 33
SIGNATURE_SIZE = 64
PUBKEY_HASH_SIZE = 20
NULL_INDEX = 0xFFFFFFFF
INPUT_SIZE = 32 + 4 + PUBKEY_SIZE + SIGNATURE_SIZE
OUTPUT_SIZE = 8 + PUBKEY_HASH_SIZE
COINBASE_TAG_SIZE = SIGNATURE_SIZE - 12
_SIGHASH_INPUT = struct.Struct("<I32sIq")  # input index, outpoint, spent amount
_sha256 = hashlib.sha256


class OutPoint(NamedTuple):
    """A reference to output ``index`` of transaction ``txid``.

    A NamedTuple rather than a frozen dataclass: it is created, hashed and looked up
    for every input and output validated, and tuples do that in C.
    """

    txid: bytes
    index: int  # type: ignore[assignment]  # shadows tuple.index, as Bitcoin's COutPoint names it n

    @property
    def is_null(self) -> bool:
        return self.txid == ZERO_HASH and self.index == NULL_INDEX

    def serialize(self) -> bytes:
        return self.txid + u32(self.index)

    def __str__(self) -> str:
        return f"{hash_to_hex(self.txid)}:{self.index}"


NULL_OUTPOINT = OutPoint(ZERO_HASH, NULL_INDEX)


@dataclass(frozen=True)
class TxIn:
    """Spend ``prevout`` with a compressed public key and a 64-byte ``r||s`` signature."""

    prevout: OutPoint
    pubkey: bytes
    signature: bytes

    def serialize(self) -> bytes:
        return self.prevout.serialize() + self.pubkey + self.signature


@dataclass(frozen=True)
class TxOut:
    """Pay ``amount`` smallest units to the owner of the key hashing to ``pubkey_hash``."""

    amount: int
    pubkey_hash: bytes

    def serialize(self) -> bytes:
        return i64(self.amount) + self.pubkey_hash


@dataclass(frozen=True)
class Transaction:
    """An immutable transaction; ``txid`` is the double SHA-256 of its serialization."""

    version: int
    inputs: tuple[TxIn, ...]
    outputs: tuple[TxOut, ...]

    @cached
    def serialized(self) -> bytes:
        parts = [u32(self.version), varint(len(self.inputs))]
        parts += [txin.serialize() for txin in self.inputs]
        parts.append(varint(len(self.outputs)))
        parts += [txout.serialize() for txout in self.outputs]
        return b"".join(parts)

    def serialize(self) -> bytes:
        return self.serialized

    @cached
    def txid(self) -> bytes:
        return sha256d(self.serialized)

    @property
    def size(self) -> int:
        return len(self.serialized)

    @property
    def is_coinbase(self) -> bool:
        return len(self.inputs) == 1 and self.inputs[0].prevout.is_null

    @property
    def coinbase_height(self) -> int:
        """The height written into a coinbase's data (BIP 34)."""
        return int.from_bytes(self.inputs[0].signature[:4], "little")

    @cached
    def hash_prevouts(self) -> bytes:
        """sha256d of every outpoint spent, shared by all inputs' signature hashes (as in BIP 143).

        Read straight out of ``serialized``: inputs are fixed-size, so outpoint ``i`` starts at
        ``first + 133 * i``.
        """
        raw, count = self.serialized, len(self.inputs)
        first = 4 + len(varint(count))
        if count == 1:
            return sha256d(raw[first : first + 36])
        return sha256d(b"".join([raw[p : p + 36] for p in range(first, first + INPUT_SIZE * count, INPUT_SIZE)]))

    @cached
    def hash_outputs(self) -> bytes:
        """sha256d of every output, serialized back to back: the tail of ``serialized``."""
        inputs, outputs = len(self.inputs), len(self.outputs)
        start = 4 + len(varint(inputs)) + INPUT_SIZE * inputs + len(varint(outputs))
        return sha256d(self.serialized[start:])

    @classmethod
    def parse(cls, data: bytes) -> Transaction:
        """Decode exactly one transaction from ``data``; DecodeError on any excess or shortage."""
        reader = Reader(data)
        tx = cls.read(reader)
        reader.finish()
        return tx

    @classmethod
    def read(cls, reader: Reader) -> Transaction:
        start = reader.pos
        version = reader.u32()
        inputs = tuple(
            TxIn(OutPoint(reader.read(32), reader.u32()), reader.read(PUBKEY_SIZE), reader.read(SIGNATURE_SIZE))
            for _ in range(reader.count(INPUT_SIZE))
        )
        outputs = tuple(TxOut(reader.i64(), reader.read(PUBKEY_HASH_SIZE)) for _ in range(reader.count(OUTPUT_SIZE)))
        tx = cls(version, inputs, outputs)
        tx.__dict__["serialized"] = reader.data[start : reader.pos]  # the bytes we read are the canonical form
        return tx

    def to_json(self) -> dict[str, Any]:
        """A JSON view (hashes in Bitcoin's reversed hex); never a serialization."""
        return {
            "txid": hash_to_hex(self.txid),
            "version": self.version,
            "size": self.size,
            "coinbase": self.is_coinbase,
            "inputs": [
                {
                    "txid": hash_to_hex(txin.prevout.txid),
                    "index": txin.prevout.index,
                    "pubkey": txin.pubkey.hex(),
                    "signature": txin.signature.hex(),
                }
                for txin in self.inputs
            ],
            "outputs": [{"amount": txout.amount, "pubkey_hash": txout.pubkey_hash.hex()} for txout in self.outputs],
        }


def sighash_prefix(tx: Transaction, magic: bytes) -> bytes:
    """The part of every input's signature-hash preimage that does not depend on the input."""
    return magic + u32(tx.version) + tx.hash_prevouts + tx.hash_outputs


def signature_hash(tx: Transaction, index: int, spent: TxOut, magic: bytes, prefix: bytes | None = None) -> bytes:
    """The 32-byte digest input ``index`` signs.

    Commits to the network (its magic), the version, every outpoint, every output,
    the input's index and outpoint, and the amount and pubkey hash of the output it
    spends, so a signature cannot be replayed on another input, transaction or network.
    ``prefix`` is ``sighash_prefix(tx, magic)``, passed in to share it between inputs.
    """
    if prefix is None:
        prefix = sighash_prefix(tx, magic)
    txid, vout = tx.inputs[index].prevout
    preimage = prefix + _SIGHASH_INPUT.pack(index, txid, vout, spent.amount) + spent.pubkey_hash
    return _sha256(_sha256(preimage).digest()).digest()  # sha256d, inlined: once per input validated


def coinbase_data(height: int, extra_nonce: int = 0, tag: bytes = b"") -> bytes:
    """The 64-byte coinbase field: height, extra nonce, and up to 52 bytes of tag."""
    if len(tag) > COINBASE_TAG_SIZE:
        raise ValueError(f"coinbase tag is at most {COINBASE_TAG_SIZE} bytes")
    return height.to_bytes(4, "little") + extra_nonce.to_bytes(8, "little") + tag.ljust(COINBASE_TAG_SIZE, b"\0")


def make_coinbase(height: int, outputs: tuple[TxOut, ...], extra_nonce: int = 0, tag: bytes = b"") -> Transaction:
    """Build the coinbase transaction of a block at ``height``."""
    txin = TxIn(NULL_OUTPOINT, bytes(PUBKEY_SIZE), coinbase_data(height, extra_nonce, tag))
    return Transaction(1, (txin,), outputs)
