"""Hash functions and Bitcoin's hex conventions for hashes."""

from __future__ import annotations

import hashlib
from typing import NewType

BlockHash = NewType("BlockHash", bytes)
Txid = NewType("Txid", bytes)

ZERO_HASH = bytes(32)
_RIPEMD160 = hashlib.new("ripemd160")  # copied per use: much cheaper than a lookup by name each time


def sha256d(data: bytes) -> bytes:
    """Double SHA-256, Bitcoin's hash for headers, transactions and merkle nodes."""
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def hash160(data: bytes) -> bytes:
    """RIPEMD-160 of SHA-256 (Bitcoin Core: Hash160): the 20-byte hash behind an address."""
    h = _RIPEMD160.copy()
    h.update(hashlib.sha256(data).digest())
    return h.digest()


def hash_to_hex(h: bytes) -> str:
    """Show a hash as Bitcoin does: byte-reversed hex (so leading zero bytes of PoW come first)."""
    return h[::-1].hex()


def hex_to_hash(text: str) -> bytes:
    """Parse a 64-character byte-reversed hex hash; ValueError on anything else."""
    if not isinstance(text, str) or len(text) != 64:
        raise ValueError(f"a hash is 64 hex characters, got {text!r:.80}")
    if not all(c in "0123456789abcdefABCDEF" for c in text):  # bytes.fromhex would skip whitespace
        raise ValueError(f"not hex: {text!r:.80}")
    return bytes.fromhex(text)[::-1]
