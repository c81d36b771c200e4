"""Addresses: Base58Check of a network version byte and a 20-byte public key hash.

This is the form of Bitcoin's P2PKH addresses. The 4-byte double-SHA-256 checksum
rejects a mistyped address except with probability 2**-32, and the version byte
tells networks apart, so a devnet address pasted into a regtest wallet is refused
by name rather than paid into the void.
"""

from __future__ import annotations

import base58

from chain.errors import AddressError
from chain.hashes import hash160
from chain.params import NETWORKS, NetworkParams
from chain.transaction import PUBKEY_HASH_SIZE


def encode_address(pubkey_hash: bytes, params: NetworkParams) -> str:
    if len(pubkey_hash) != PUBKEY_HASH_SIZE:
        raise ValueError(f"a pubkey hash is {PUBKEY_HASH_SIZE} bytes")
    return base58.b58encode_check(bytes((params.address_version,)) + pubkey_hash).decode("ascii")


def address_from_pubkey(pubkey: bytes, params: NetworkParams) -> str:
    return encode_address(hash160(pubkey), params)


def decode_address(text: str, params: NetworkParams) -> bytes:
    """The pubkey hash inside ``text``; AddressError (``bad-address`` or ``wrong-network``) otherwise."""
    try:
        payload = base58.b58decode_check(text.strip())
    except ValueError as exc:
        raise AddressError("bad-address", f"{text!r:.60} is not a valid address ({exc}); check for a typo") from None
    if len(payload) != 1 + PUBKEY_HASH_SIZE:
        raise AddressError("bad-address", f"{text!r:.60} has {len(payload) - 1} payload bytes, not {PUBKEY_HASH_SIZE}")
    version = payload[0]
    if version != params.address_version:
        owners = [p.name for p in NETWORKS.values() if p.address_version == version]
        where = f"a {owners[0]} address" if owners else f"of unknown version {version}"
        raise AddressError("wrong-network", f"{text} is {where}, not a {params.name} address")
    return payload[1:]
