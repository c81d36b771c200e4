"""ECDSA over secp256k1: Wycheproof's vectors, RFC 6979, and interop with ``cryptography`` and ``ecdsa``.

Cairn signs 32-byte digests into 64-byte ``r||s`` low-S signatures through coincurve
(libsecp256k1). Here its ``verify`` meets three independent sources of truth: the
Wycheproof suites (P1363 ``r||s``, DER, and DER under Bitcoin's low-S rule), the
published RFC 6979 secp256k1 vectors, and two other ECDSA implementations (OpenSSL
through ``cryptography``, and pure-Python ``ecdsa``) in both directions.
"""

from __future__ import annotations

import hashlib
from typing import Any

import coincurve
import ecdsa
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from ecdsa.util import sigdecode_string, sigencode_string

from chain.crypto import (
    HALF_ORDER,
    SECP256K1_ORDER,
    SignatureCache,
    is_low_s,
    public_key,
    sign,
    signature_from_der,
    verify,
)
from chain.errors import SignatureError
from tests.conftest import load_shared

N = SECP256K1_ORDER
REJECTIONS = {"bad-sig-encoding", "bad-sig-high-s", "bad-sig"}  # every Wycheproof key is a valid point


def secret_of(i: int) -> bytes:
    return hashlib.sha256(b"cairn test key %d" % i).digest()


def digest_of(i: int) -> bytes:
    return hashlib.sha256(b"cairn test message %d" % i).digest()


def normalize(signature: bytes) -> bytes:
    """The low-S twin of a 64-byte ``r||s`` signature: ``s -> n - s`` when s is above n/2."""
    s = int.from_bytes(signature[32:], "big")
    return signature[:32] + (N - s).to_bytes(32, "big") if s > HALF_ORDER else signature


def high_s(signature: bytes) -> bool:
    return int.from_bytes(signature[32:64], "big") > HALF_ORDER


def reason_of(pubkey: bytes, signature: bytes, digest: bytes) -> str | None:
    """None when ``verify`` accepts, else its reason code."""
    try:
        verify(pubkey, signature, digest)
    except SignatureError as exc:
        return exc.reason
    return None


def wycheproof_cases(name: str) -> tuple[dict[str, Any], list[tuple[bytes, dict[str, Any], bytes]]]:
    """(file, [(compressed pubkey, test, sha256 digest of the message)]) for a Wycheproof file."""
    data = load_shared(name)
    cases = []
    for group in data["testGroups"]:
        assert group["sha"] == "SHA-256" and group["publicKey"]["curve"] == "secp256k1"
        uncompressed = bytes.fromhex(group["publicKey"]["uncompressed"])
        pubkey = coincurve.PublicKey(uncompressed).format(compressed=True)
        for test in group["tests"]:
            cases.append((pubkey, test, hashlib.sha256(bytes.fromhex(test["msg"])).digest()))
    assert len(cases) == data["numberOfTests"]
    return data, cases


# ---------------------------------------------------------------- Wycheproof


def test_wycheproof_p1363() -> None:
    """Every valid vector verifies (high-S ones after normalising s); every invalid one is refused."""
    _data, cases = wycheproof_cases("wycheproof-ecdsa_secp256k1_sha256_p1363_test.json")
    counts = {"valid": 0, "valid-high-s": 0, "invalid": 0}
    failures = []
    for pubkey, test, digest in cases:
        signature = bytes.fromhex(test["sig"])
        reason = reason_of(pubkey, signature, digest)
        if test["result"] == "valid":
            assert len(signature) == 64
            if high_s(signature):
                counts["valid-high-s"] += 1
                ok = reason == "bad-sig-high-s" and reason_of(pubkey, normalize(signature), digest) is None
            else:
                counts["valid"] += 1
                ok = reason is None
        else:
            assert test["result"] == "invalid"
            counts["invalid"] += 1
            ok = reason in REJECTIONS
            r = int.from_bytes(signature[:32], "big")
            if ok and len(signature) == 64 and 0 < r < N and HALF_ORDER < int.from_bytes(signature[32:], "big") < N:
                # (r, s) and (r, n - s) stand or fall together: normalising must not rescue it.
                ok = reason_of(pubkey, normalize(signature), digest) in REJECTIONS
        if not ok:
            failures.append((test["tcId"], test["comment"], test["result"], reason))
    assert failures == []
    assert counts == {"valid": 95, "valid-high-s": 72, "invalid": 85}


def _verify_der(pubkey: bytes, der: bytes, digest: bytes) -> tuple[str | None, bytes | None]:
    try:
        signature = signature_from_der(der)
    except SignatureError as exc:
        return exc.reason, None
    return reason_of(pubkey, signature, digest), signature


def test_wycheproof_der() -> None:
    """Plain ECDSA: valid high-S vectors fail with ``bad-sig-high-s`` and nothing else; the rest as expected."""
    _data, cases = wycheproof_cases("wycheproof-ecdsa_secp256k1_sha256_test.json")
    counts = {"valid": 0, "valid-high-s": 0, "invalid": 0}
    failures = []
    for pubkey, test, digest in cases:
        reason, signature = _verify_der(pubkey, bytes.fromhex(test["sig"]), digest)
        if test["result"] == "valid":
            ok = signature is not None
            if ok and high_s(signature):
                counts["valid-high-s"] += 1
                ok = reason == "bad-sig-high-s" and reason_of(pubkey, normalize(signature), digest) is None
            else:
                counts["valid"] += 1
                ok = ok and reason is None
        else:
            counts["invalid"] += 1
            ok = reason in REJECTIONS
        if not ok:
            failures.append((test["tcId"], test["comment"], test["result"], reason))
    assert failures == []
    assert counts == {"valid": 96, "valid-high-s": 72, "invalid": 308}


def test_wycheproof_der_bitcoin() -> None:
    """Bitcoin's variant: high-S is invalid, so Cairn must agree with every verdict as it stands."""
    _data, cases = wycheproof_cases("wycheproof-ecdsa_secp256k1_sha256_bitcoin_test.json")
    counts = {"valid": 0, "invalid": 0, "malleability": 0}
    failures = []
    for pubkey, test, digest in cases:
        reason, _signature = _verify_der(pubkey, bytes.fromhex(test["sig"]), digest)
        counts[test["result"]] += 1
        ok = reason is None if test["result"] == "valid" else reason in REJECTIONS
        if "SignatureMalleabilityBitcoin" in test["flags"]:
            counts["malleability"] += 1
            ok = ok and reason == "bad-sig-high-s"
        if not ok:
            failures.append((test["tcId"], test["comment"], test["result"], reason))
    assert failures == []
    assert counts == {"valid": 162, "invalid": 301, "malleability": 1}


# ---------------------------------------------------------------- RFC 6979 and low-S

# Published RFC 6979 secp256k1/SHA-256 vectors (bitcointalk topic 285142, used by many
# wallets' test suites), shown here with s already low.
RFC6979_VECTORS = [
    (
        1,
        b"Satoshi Nakamoto",
        "934b1ea10a4b3c1757e2b0c017d0b6143ce3c9a7e6a4a49860d7a6ab210ee3d8"
        "2442ce9d2b916064108014783e923ec36b49743e2ffa1c4496f01a512aafd9e5",
    ),
    (
        1,
        b"All those moments will be lost in time, like tears in rain. Time to die...",
        "8600dbd41e348fe5c9465ab92d23e3db8b98b873beecd930736488696438cb6b"
        "547fe64427496db33bf66019dacbf0039c04199abb0122918601db38a72cfc21",
    ),
    (
        N - 1,
        b"Satoshi Nakamoto",
        "fd567d121db66e382991534ada77a6bd3106f0a1098c231e47993447cd6af2d0"
        "6b39cd0eb1bc8603e159ef5c20a5c8ad685a45b06ce9bebed3f153d10d93bed5",
    ),
]


@pytest.mark.parametrize(("secret", "message", "expected"), RFC6979_VECTORS, ids=["1-satoshi", "1-tears", "n-1"])
def test_rfc6979_vectors(secret: int, message: bytes, expected: str) -> None:
    digest = hashlib.sha256(message).digest()
    key = secret.to_bytes(32, "big")
    signature = sign(key, digest)
    assert signature.hex() == expected
    verify(public_key(key), signature, digest)
    # The ecdsa package's own RFC 6979 signer gives the same r, and s or n - s.
    theirs = ecdsa.SigningKey.from_secret_exponent(secret, curve=ecdsa.SECP256k1).sign_digest_deterministic(
        digest, hashfunc=hashlib.sha256, sigencode=sigencode_string
    )
    assert normalize(theirs) == signature


def test_signing_is_deterministic_and_matches_two_other_rfc6979_signers() -> None:
    for i in range(25):
        secret, digest = secret_of(i), digest_of(i)
        signature = sign(secret, digest)
        assert sign(secret, digest) == signature
        assert sign(secret, digest_of(i + 1000)) != signature
        exponent = int.from_bytes(secret, "big")
        theirs = ecdsa.SigningKey.from_secret_exponent(exponent, curve=ecdsa.SECP256k1).sign_digest_deterministic(
            digest, hashfunc=hashlib.sha256, sigencode=sigencode_string
        )
        assert normalize(theirs) == signature
        der = ec.derive_private_key(exponent, ec.SECP256K1()).sign(
            digest, ec.ECDSA(Prehashed(SHA256()), deterministic_signing=True)
        )
        r, s = decode_dss_signature(der)
        assert normalize(r.to_bytes(32, "big") + s.to_bytes(32, "big")) == signature


def test_sign_always_gives_low_s() -> None:
    seen_normalised = 0
    for i in range(200):
        secret, digest = secret_of(i), digest_of(i)
        signature = sign(secret, digest)
        assert len(signature) == 64
        assert is_low_s(signature)
        verify(public_key(secret), signature, digest)
        theirs = ecdsa.SigningKey.from_string(secret, curve=ecdsa.SECP256k1).sign_digest_deterministic(
            digest, hashfunc=hashlib.sha256, sigencode=sigencode_string
        )
        if high_s(theirs):
            seen_normalised += 1  # the raw RFC 6979 s was high: libsecp256k1 negated it
            assert reason_of(public_key(secret), theirs, digest) == "bad-sig-high-s"
    assert 50 < seen_normalised < 150  # about half the raw signatures are high-S


def test_is_low_s_bounds() -> None:
    r = (1).to_bytes(32, "big")
    assert is_low_s(r + HALF_ORDER.to_bytes(32, "big"))
    assert not is_low_s(r + (HALF_ORDER + 1).to_bytes(32, "big"))
    assert not is_low_s(r + bytes(32))


# ---------------------------------------------------------------- interop


def test_cryptography_signs_cairn_verifies() -> None:
    high_seen = 0
    for i in range(40):
        secret, digest = secret_of(i), digest_of(i)
        private = ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256K1())
        pubkey = private.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
        assert pubkey == public_key(secret)
        der = private.sign(digest, ec.ECDSA(Prehashed(SHA256())))  # random nonce, OpenSSL's
        signature = signature_from_der(der)
        if high_s(signature):
            high_seen += 1
            assert reason_of(pubkey, signature, digest) == "bad-sig-high-s"
        verify(pubkey, normalize(signature), digest)
        assert reason_of(pubkey, normalize(signature), digest_of(i + 1)) == "bad-sig"
    assert high_seen > 0  # 40 random nonces: at least one high s (probability of none: 2**-40)


def test_cairn_signs_cryptography_verifies() -> None:
    for i in range(40):
        secret, digest = secret_of(i), digest_of(i)
        signature = sign(secret, digest)
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        assert signature_from_der(der) == signature
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), public_key(secret))
        public.verify(der, digest, ec.ECDSA(Prehashed(SHA256())))
        with pytest.raises(InvalidSignature):
            public.verify(der, digest_of(i + 1), ec.ECDSA(Prehashed(SHA256())))


def test_ecdsa_package_signs_cairn_verifies() -> None:
    for i in range(40):
        secret, digest = secret_of(i), digest_of(i)
        signing_key = ecdsa.SigningKey.from_string(secret, curve=ecdsa.SECP256k1)
        pubkey = signing_key.get_verifying_key().to_string("compressed")
        assert pubkey == public_key(secret)
        for signature in (
            signing_key.sign_digest(digest, sigencode=sigencode_string),  # random nonce
            signing_key.sign_digest_deterministic(digest, hashfunc=hashlib.sha256, sigencode=sigencode_string),
        ):
            verify(pubkey, normalize(signature), digest)


def test_cairn_signs_ecdsa_package_verifies() -> None:
    for i in range(40):
        secret, digest = secret_of(i), digest_of(i)
        signature = sign(secret, digest)
        verifying_key = ecdsa.VerifyingKey.from_string(public_key(secret), curve=ecdsa.SECP256k1)
        assert verifying_key.verify_digest(signature, digest, sigdecode=sigdecode_string)
        with pytest.raises(ecdsa.BadSignatureError):
            verifying_key.verify_digest(signature, digest_of(i + 1), sigdecode=sigdecode_string)


def test_signature_from_der_rejects() -> None:
    signature = sign(secret_of(0), digest_of(0))
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    der = encode_dss_signature(r, s)
    for bad in (
        b"",
        der[:-1],
        der + b"\x00",
        signature,  # raw r||s is not DER
        encode_dss_signature(0, s),
        encode_dss_signature(r, 0),
        encode_dss_signature(N, s),
        encode_dss_signature(r, N + 5),
    ):
        with pytest.raises(SignatureError) as exc:
            signature_from_der(bad)
        assert exc.value.reason == "bad-sig-encoding"


# ---------------------------------------------------------------- rejections by reason


@pytest.fixture(scope="module")
def signed() -> tuple[bytes, bytes, bytes]:
    secret, digest = secret_of(7), digest_of(7)
    return public_key(secret), sign(secret, digest), digest


def test_bad_pubkeys(signed: tuple[bytes, bytes, bytes]) -> None:
    pubkey, signature, digest = signed
    uncompressed = coincurve.PublicKey(pubkey).format(compressed=False)
    for bad in (
        b"",
        pubkey[:32],
        pubkey + b"\x00",
        uncompressed,  # 65 bytes: a real key, but only compressed keys are accepted
        b"\x04" + pubkey[1:],  # right length, uncompressed prefix
        b"\x05" + pubkey[1:],
        b"\x00" * 33,
        b"\x02" + (5).to_bytes(32, "big"),  # x = 5: 5**3 + 7 is not a square mod p
        b"\x02" + b"\xff" * 32,  # x above the field prime
    ):
        assert reason_of(bad, signature, digest) == "bad-pubkey", bad.hex()


def test_bad_signature_encodings(signed: tuple[bytes, bytes, bytes]) -> None:
    pubkey, signature, digest = signed
    r, s = signature[:32], signature[32:]
    for bad in (
        b"",
        signature[:63],
        signature + b"\x00",
        bytes(32) + s,  # r = 0
        r + bytes(32),  # s = 0
        N.to_bytes(32, "big") + s,  # r = n
        b"\xff" * 32 + s,  # r > n
        r + N.to_bytes(32, "big"),  # s = n
    ):
        assert reason_of(pubkey, bad, digest) == "bad-sig-encoding", bad.hex()


def test_high_s_twin_is_refused(signed: tuple[bytes, bytes, bytes]) -> None:
    pubkey, signature, digest = signed
    twin = signature[:32] + (N - int.from_bytes(signature[32:], "big")).to_bytes(32, "big")
    assert reason_of(pubkey, twin, digest) == "bad-sig-high-s"
    assert normalize(twin) == signature


def test_wrong_key_or_digest(signed: tuple[bytes, bytes, bytes]) -> None:
    pubkey, signature, digest = signed
    assert reason_of(public_key(secret_of(8)), signature, digest) == "bad-sig"
    assert reason_of(pubkey, signature, digest_of(8)) == "bad-sig"
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    assert reason_of(pubkey, flipped, digest) == "bad-sig"
    assert reason_of(pubkey, signature, digest) is None


# ---------------------------------------------------------------- signature cache


def test_signature_cache_hits_and_never_caches_failures(signed: tuple[bytes, bytes, bytes]) -> None:
    pubkey, signature, digest = signed
    cache = SignatureCache()
    cache.verify(pubkey, signature, digest)
    assert len(cache) == 1
    cache.verify(pubkey, signature, digest)  # the same check again: answered by its entry, nothing new stored
    assert len(cache) == 1
    tampered = signature[:-1] + bytes([signature[-1] ^ 1])
    for args in (
        (pubkey, tampered, digest),
        (pubkey, signature, digest_of(99)),
        (public_key(secret_of(8)), signature, digest),
    ):
        with pytest.raises(SignatureError) as exc:
            cache.verify(*args)
        assert exc.value.reason == "bad-sig"
    assert len(cache) == 1  # failures are not remembered
    twin = signature[:32] + (N - int.from_bytes(signature[32:], "big")).to_bytes(32, "big")
    with pytest.raises(SignatureError) as exc:
        cache.verify(pubkey, twin, digest)
    assert exc.value.reason == "bad-sig-high-s"
    cache.verify(pubkey, signature, digest)
    assert len(cache) == 1


def test_signature_cache_is_bounded_and_evicts_the_oldest() -> None:
    cache = SignatureCache(max_entries=3)
    keys = [hashlib.sha256(b"entry %d" % i).digest() for i in range(5)]
    for i, key in enumerate(keys):
        cache.add(key)
        assert len(cache) == min(i + 1, 3)
    assert [key in cache for key in keys] == [False, False, True, True, True]
    cache.add(keys[0])  # back as the newest: the oldest remaining one goes
    assert [key in cache for key in keys] == [True, False, False, True, True]


def test_signature_cache_evicts_verified_signatures_too() -> None:
    cache = SignatureCache(max_entries=2)
    secret, digest = secret_of(3), digest_of(3)
    cache.verify(public_key(secret), sign(secret, digest), digest)
    first, second = hashlib.sha256(b"first").digest(), hashlib.sha256(b"second").digest()
    cache.add(first)
    assert len(cache) == 2
    cache.add(second)  # the signature's entry was the oldest
    assert len(cache) == 2 and first in cache and second in cache
    cache.verify(public_key(secret), sign(secret, digest), digest)  # checked again, stored as the newest
    assert len(cache) == 2 and first not in cache and second in cache
