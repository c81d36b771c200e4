"""Blocks and their 80-byte Bitcoin-format headers."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from chain.encoding import Reader, cached, varint
from chain.hashes import hash_to_hex, sha256d
from chain.merkle import merkle_root
from chain.transaction import Transaction

HEADER_SIZE = 80
_HEADER = struct.Struct("<I32s32sIII")


@dataclass(frozen=True)
class BlockHeader:
    """Bitcoin's block header: version, previous hash, merkle root, time, bits, nonce.

    Hashes are held in internal byte order; ``hash_hex`` shows them reversed, as
    Bitcoin does.
    """

    version: int
    prev_hash: bytes
    merkle_root: bytes
    time: int
    bits: int
    nonce: int

    @cached
    def serialized(self) -> bytes:
        return _HEADER.pack(self.version, self.prev_hash, self.merkle_root, self.time, self.bits, self.nonce)

    def serialize(self) -> bytes:
        return self.serialized

    @cached
    def hash(self) -> bytes:
        return sha256d(self.serialized)

    @property
    def hash_hex(self) -> str:
        return hash_to_hex(self.hash)

    @classmethod
    def parse(cls, data: bytes) -> BlockHeader:
        reader = Reader(data)
        header = cls.read(reader)
        reader.finish()
        return header

    @classmethod
    def read(cls, reader: Reader) -> BlockHeader:
        raw = reader.read(HEADER_SIZE)
        header = cls(*_HEADER.unpack(raw))
        header.__dict__["serialized"] = raw
        return header

    def to_json(self) -> dict[str, Any]:
        return {
            "hash": self.hash_hex,
            "version": self.version,
            "prev_hash": hash_to_hex(self.prev_hash),
            "merkle_root": hash_to_hex(self.merkle_root),
            "time": self.time,
            "bits": f"{self.bits:08x}",
            "nonce": self.nonce,
        }


@dataclass(frozen=True)
class Block:
    """A header and its transactions, the first of which is the coinbase."""

    header: BlockHeader
    transactions: tuple[Transaction, ...]

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @property
    def hash_hex(self) -> str:
        return self.header.hash_hex

    @cached
    def serialized(self) -> bytes:
        parts = [self.header.serialized, varint(len(self.transactions))]
        parts += [tx.serialized for tx in self.transactions]
        return b"".join(parts)

    def serialize(self) -> bytes:
        return self.serialized

    @property
    def size(self) -> int:
        return len(self.serialized)

    def compute_merkle_root(self) -> bytes:
        return merkle_root([tx.txid for tx in self.transactions])

    @classmethod
    def parse(cls, data: bytes) -> Block:
        """Decode exactly one block; DecodeError when truncated or followed by trailing bytes."""
        reader = Reader(data)
        header = BlockHeader.read(reader)
        transactions = tuple(Transaction.read(reader) for _ in range(reader.count(1)))
        reader.finish()
        block = cls(header, transactions)
        block.__dict__["serialized"] = reader.data
        return block

    def to_json(self) -> dict[str, Any]:
        return {**self.header.to_json(), "size": self.size, "transactions": [tx.to_json() for tx in self.transactions]}
