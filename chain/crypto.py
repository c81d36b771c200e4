"""ECDSA over secp256k1 through coincurve (libsecp256k1, the library Bitcoin Core uses).

Signatures are 64 bytes ``r||s`` (big-endian), over a 32-byte digest, with
``s <= n/2`` (low-S, BIP 62/146) so that nobody can malleate a valid signature into
another valid one. Signing is deterministic (RFC 6979, libsecp256k1's default nonce).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import coincurve
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT
from coincurve.ecdsa import der_to_cdata, serialize_compact
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from chain.errors import SignatureError

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
HALF_ORDER = SECP256K1_ORDER // 2
_ORDER_BYTES = SECP256K1_ORDER.to_bytes(32, "big")
_HALF_ORDER_BYTES = HALF_ORDER.to_bytes(32, "big")
_ZERO = bytes(32)
# Verification calls libsecp256k1 through coincurve's own bindings: coincurve's PublicKey.verify
# wants DER and builds a Python object per key, which costs more than the rest of validation.
_CTX = GLOBAL_CONTEXT.ctx


def generate_secret() -> bytes:
    """A fresh random 32-byte private key."""
    return coincurve.PrivateKey().secret


def public_key(secret: bytes) -> bytes:
    """The 33-byte compressed public key of ``secret``."""
    return coincurve.PrivateKey(secret).public_key.format(compressed=True)


def sign(secret: bytes, digest: bytes) -> bytes:
    """Sign a 32-byte digest: a deterministic, low-S, 64-byte ``r||s`` signature."""
    der = coincurve.PrivateKey(secret).sign(digest, hasher=None)
    return serialize_compact(der_to_cdata(der))


def is_low_s(signature: bytes) -> bool:
    return 0 < int.from_bytes(signature[32:64], "big") <= HALF_ORDER


def verify(pubkey: bytes, signature: bytes, digest: bytes) -> None:
    """Check ``signature`` over ``digest`` by ``pubkey``; SignatureError naming what is wrong.

    Reasons: ``bad-pubkey`` (not a 33-byte compressed point on the curve),
    ``bad-sig-encoding`` (not 64 bytes, or r/s zero or not below the group order),
    ``bad-sig-high-s`` (malleable s), ``bad-sig`` (does not verify).
    """
    if len(pubkey) != 33 or pubkey[0] not in (2, 3):
        raise SignatureError("bad-pubkey", "public keys are 33-byte compressed points")
    point = ffi.new("secp256k1_pubkey *")
    if not lib.secp256k1_ec_pubkey_parse(_CTX, point, pubkey, 33):
        raise SignatureError("bad-pubkey", "not a point on secp256k1")
    if len(signature) != 64:
        raise SignatureError("bad-sig-encoding", f"signatures are 64 bytes r||s, got {len(signature)}")
    r, s = signature[:32], signature[32:]  # big-endian, equal lengths: byte order is numeric order
    if not (_ZERO < r < _ORDER_BYTES and _ZERO < s < _ORDER_BYTES):
        raise SignatureError("bad-sig-encoding", "r and s must lie in [1, n-1]")
    if s > _HALF_ORDER_BYTES:
        raise SignatureError("bad-sig-high-s", "s is above n/2: the signature is malleable")
    parsed = ffi.new("secp256k1_ecdsa_signature *")
    lib.secp256k1_ecdsa_signature_parse_compact(_CTX, parsed, signature)  # r, s < n: checked above
    if not lib.secp256k1_ecdsa_verify(_CTX, parsed, digest, point):
        raise SignatureError("bad-sig", "signature does not verify")


def signature_from_der(der: bytes) -> bytes:
    """Convert a strict-DER ECDSA signature (as ``cryptography`` and ``ecdsa`` write them) to 64-byte ``r||s``."""
    try:
        r, s = decode_dss_signature(der)
    except ValueError as exc:
        raise SignatureError("bad-sig-encoding", f"not a DER signature: {exc}") from None
    if not (0 < r < SECP256K1_ORDER and 0 < s < SECP256K1_ORDER):
        raise SignatureError("bad-sig-encoding", "r and s must lie in [1, n-1]")
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class SignatureCache:
    """Remember checks that passed, so a block repeating mempool transactions skips their signatures.

    Two kinds of entry, both keyed by a hash that commits to everything the check
    depended on, so a hit can only be the very same check that succeeded before:
    single signatures (``verify``) and whole transactions (``add``/``in``, Bitcoin
    Core's script execution cache: txid, network and the outputs spent). Bounded: the
    oldest entries are evicted first.
    """

    def __init__(self, max_entries: int = 200_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: bytes) -> bool:
        return key in self._entries

    def add(self, key: bytes) -> None:
        with self._lock:
            self._entries[key] = None
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def verify(self, pubkey: bytes, signature: bytes, digest: bytes) -> None:
        """``verify``, answered from the cache when this exact check already passed."""
        key = hashlib.sha256(digest + pubkey + signature).digest()
        if key in self._entries:
            return
        verify(pubkey, signature, digest)
        self.add(key)

    def __len__(self) -> int:
        return len(self._entries)
