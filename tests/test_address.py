"""Addresses: Base58Check round trips, Bitcoin's known vector, typo detection and network separation."""

from __future__ import annotations

import hashlib

import base58
import pytest

from chain.address import address_from_pubkey, decode_address, encode_address
from chain.crypto import public_key
from chain.errors import AddressError
from chain.hashes import hash160
from chain.params import BITCOIN, DEVNET, NETWORKS, REGTEST, NetworkParams

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
NOT_IN_ALPHABET = "0OIl+/ "

SECRET_ONE = (1).to_bytes(32, "big")
SECRET_ONE_PUBKEY = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
SECRET_ONE_HASH160 = "751e76e8199196d454941c45d1b3a323f1433bd6"
SECRET_ONE_BITCOIN_ADDRESS = "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"

ALL_NETWORKS = list(NETWORKS.values())


def sample_hashes() -> list[bytes]:
    """Extremes and 100 pseudo-random 20-byte pubkey hashes."""
    hashes = [bytes(20), b"\xff" * 20, b"\x00" * 19 + b"\x01", b"\x80" + bytes(19)]
    hashes += [hashlib.sha256(b"address %d" % i).digest()[:20] for i in range(100)]
    return hashes


def reason(text: str, params: NetworkParams) -> str:
    with pytest.raises(AddressError) as exc:
        decode_address(text, params)
    return exc.value.reason


def test_networks_have_distinct_versions() -> None:
    assert len({p.address_version for p in ALL_NETWORKS}) == len(ALL_NETWORKS) == 3


@pytest.mark.parametrize("params", ALL_NETWORKS, ids=lambda p: p.name)
def test_round_trip(params: NetworkParams) -> None:
    for pubkey_hash in sample_hashes():
        address = encode_address(pubkey_hash, params)
        assert decode_address(address, params) == pubkey_hash
        assert decode_address(f"  {address}\n", params) == pubkey_hash  # pasted with whitespace
        assert base58.b58decode_check(address) == bytes((params.address_version,)) + pubkey_hash


@pytest.mark.parametrize(
    ("params", "leading"), [(BITCOIN, "1"), (DEVNET, "C"), (REGTEST, "mn")], ids=["bitcoin", "devnet", "regtest"]
)
def test_leading_character(params: NetworkParams, leading: str) -> None:
    seen = set()
    for pubkey_hash in sample_hashes():
        address = encode_address(pubkey_hash, params)
        assert address[0] in leading, address
        seen.add(address[0])
    assert seen == set(leading)  # regtest shows both 'm' and 'n'


def test_known_bitcoin_vector() -> None:
    pubkey = public_key(SECRET_ONE)
    assert pubkey.hex() == SECRET_ONE_PUBKEY
    assert hash160(pubkey).hex() == SECRET_ONE_HASH160
    assert address_from_pubkey(pubkey, BITCOIN) == SECRET_ONE_BITCOIN_ADDRESS
    assert encode_address(bytes.fromhex(SECRET_ONE_HASH160), BITCOIN) == SECRET_ONE_BITCOIN_ADDRESS
    assert decode_address(SECRET_ONE_BITCOIN_ADDRESS, BITCOIN).hex() == SECRET_ONE_HASH160


def test_same_key_differs_by_network() -> None:
    pubkey = public_key(SECRET_ONE)
    addresses = {p.name: address_from_pubkey(pubkey, p) for p in ALL_NETWORKS}
    assert len(set(addresses.values())) == 3
    for name, address in addresses.items():
        assert decode_address(address, NETWORKS[name]) == hash160(pubkey)


@pytest.mark.parametrize("params", ALL_NETWORKS, ids=lambda p: p.name)
def test_every_single_character_substitution_is_rejected(params: NetworkParams) -> None:
    """The checksum catches a one-character typo at every position, with every other character."""
    originals = [address_from_pubkey(public_key(SECRET_ONE), params), encode_address(sample_hashes()[10], params)]
    checked = 0
    for address in originals:
        for position, original in enumerate(address):
            for replacement in ALPHABET + NOT_IN_ALPHABET:
                if replacement == original:
                    continue
                typo = address[:position] + replacement + address[position + 1 :]
                assert reason(typo, params) == "bad-address", (position, replacement, typo)
                checked += 1
    assert checked == sum(len(a) * (len(ALPHABET) - 1 + len(NOT_IN_ALPHABET)) for a in originals)


@pytest.mark.parametrize("params", ALL_NETWORKS, ids=lambda p: p.name)
def test_dropped_inserted_and_swapped_characters_are_rejected(params: NetworkParams) -> None:
    address = address_from_pubkey(public_key(SECRET_ONE), params)
    variants = [address[:i] + address[i + 1 :] for i in range(len(address))]  # one dropped
    variants += [address[:i] + "z" + address[i:] for i in range(len(address) + 1)]  # one inserted
    variants += [
        address[:i] + address[i + 1] + address[i] + address[i + 2 :]
        for i in range(len(address) - 1)
        if address[i] != address[i + 1]
    ]  # neighbours swapped
    for variant in variants:
        assert reason(variant, params) == "bad-address", variant


def test_wrong_network_names_the_other_network() -> None:
    pubkey_hash = sample_hashes()[5]
    for owner in ALL_NETWORKS:
        address = encode_address(pubkey_hash, owner)
        for other in ALL_NETWORKS:
            if other is owner:
                continue
            with pytest.raises(AddressError) as exc:
                decode_address(address, other)
            assert exc.value.reason == "wrong-network"
            assert f"a {owner.name} address" in exc.value.message
            assert f"not a {other.name} address" in exc.value.message


def test_unknown_version_is_wrong_network() -> None:
    p2sh = base58.b58encode_check(b"\x05" + bytes(20)).decode()  # a Bitcoin pay-to-script-hash address
    assert p2sh.startswith("3")
    for params in ALL_NETWORKS:
        with pytest.raises(AddressError) as exc:
            decode_address(p2sh, params)
        assert exc.value.reason == "wrong-network"
        assert "unknown version 5" in exc.value.message


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "hello",
        "0OIl",
        "1",
        "11111111111111111111111111111111111",
        SECRET_ONE_BITCOIN_ADDRESS + "1",
        SECRET_ONE_BITCOIN_ADDRESS[:-1],
        "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMÉ",
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",  # a real bech32 address: not Base58Check
    ],
)
def test_garbage_is_bad_address(text: str) -> None:
    for params in ALL_NETWORKS:
        assert reason(text, params) == "bad-address"


@pytest.mark.parametrize("payload_length", [0, 1, 19, 21, 32, 33])
def test_wrong_payload_length_is_bad_address(payload_length: int) -> None:
    for params in ALL_NETWORKS:
        text = base58.b58encode_check(bytes((params.address_version,)) + b"\x07" * payload_length).decode()
        assert reason(text, params) == "bad-address"


def test_encode_refuses_a_wrong_length_hash() -> None:
    for length in (0, 19, 21, 33):
        with pytest.raises(ValueError):
            encode_address(bytes(length), REGTEST)
