"""Strict binary decoding (chain/encoding.py) and Bitcoin's reversed-hex hashes (chain/hashes.py)."""

from __future__ import annotations

import pytest

from chain.encoding import MAX_VARINT, Reader, i64, u32, varint
from chain.errors import DecodeError, ValidationError
from chain.hashes import ZERO_HASH, hash_to_hex, hex_to_hash, sha256d
from chain.params import BITCOIN

# Each boundary of CompactSize: the last value of one width and the first of the next.
VARINTS = [
    (0, "00"),
    (1, "01"),
    (0xFC, "fc"),
    (0xFD, "fdfd00"),
    (0xFE, "fdfe00"),
    (0xFFFF, "fdffff"),
    (0x10000, "fe00000100"),
    (MAX_VARINT, "fe00000002"),
    (0xFFFFFFFF, "feffffffff"),
    (0x100000000, "ff0000000001000000"),
    ((1 << 64) - 1, "ffffffffffffffffff"),
]


def decode_error(data: bytes, read: str = "varint") -> DecodeError:
    reader = Reader(data)
    with pytest.raises(DecodeError) as exc:
        getattr(reader, read)()
        reader.finish()
    return exc.value


@pytest.mark.parametrize(("value", "encoded"), VARINTS, ids=[hex(v) for v, _ in VARINTS])
def test_varint_encodes_to_its_exact_bytes(value: int, encoded: str) -> None:
    assert varint(value).hex() == encoded


@pytest.mark.parametrize(("value", "encoded"), VARINTS, ids=[hex(v) for v, _ in VARINTS])
def test_varint_round_trips_up_to_the_maximum(value: int, encoded: str) -> None:
    reader = Reader(bytes.fromhex(encoded))
    if value <= MAX_VARINT:
        assert reader.varint() == value
        reader.finish()
    else:
        # Well-formed, but larger than any count a decoder accepts (Bitcoin Core's MAX_SIZE).
        with pytest.raises(DecodeError) as exc:
            reader.varint()
        assert exc.value.reason == "bad-encoding"
        assert "exceeds the maximum" in str(exc.value)


def test_the_maximum_varint() -> None:
    assert MAX_VARINT == 0x02000000
    assert Reader(varint(MAX_VARINT)).varint() == MAX_VARINT
    assert decode_error(varint(MAX_VARINT + 1)).reason == "bad-encoding"


def test_varint_of_a_negative_number() -> None:
    with pytest.raises(ValueError):
        varint(-1)


@pytest.mark.parametrize(
    "encoded",
    [
        "fd0000",  # 0 in three bytes
        "fdfc00",  # 0xfc, the largest one-byte value, in three bytes
        "fe00000000",
        "feffff0000",  # 0xffff in five bytes
        "ff0000000000000000",
        "ffffffffff00000000",  # 0xffffffff in nine bytes
        "ff0000000200000000",  # MAX_VARINT in nine bytes
    ],
)
def test_non_canonical_varints_are_rejected(encoded: str) -> None:
    error = decode_error(bytes.fromhex(encoded))
    assert error.reason == "bad-encoding"
    assert "non-canonical" in str(error)


@pytest.mark.parametrize("encoded", ["", "fd", "fd00", "fe000001", "ff00000000000000"])
def test_truncated_varints(encoded: str) -> None:
    error = decode_error(bytes.fromhex(encoded))
    assert error.reason == "bad-encoding"
    assert "truncated" in str(error)


def test_a_decode_error_is_a_validation_error() -> None:
    error = decode_error(b"")
    assert isinstance(error, ValidationError)
    assert error.reason == "bad-encoding"


# ------------------------------------------------------------------ fixed-width fields


def test_little_endian_integers() -> None:
    assert u32(1).hex() == "01000000"
    assert u32(0xFFFFFFFF).hex() == "ffffffff"
    assert i64(-1).hex() == "ff" * 8
    assert i64(1).hex() == "0100000000000000"
    assert i64(-(1 << 63)).hex() == "0000000000000080"
    reader = Reader(u32(0xDEADBEEF) + i64(-5) + i64((1 << 63) - 1))
    assert (reader.u32(), reader.i64(), reader.i64()) == (0xDEADBEEF, -5, (1 << 63) - 1)
    reader.finish()


@pytest.mark.parametrize(("data", "read"), [(b"\x01\x02\x03", "u32"), (b"\x00" * 7, "i64"), (b"", "u32")])
def test_truncated_fixed_width_reads(data: bytes, read: str) -> None:
    error = decode_error(data, read)
    assert error.reason == "bad-encoding"
    assert "truncated" in str(error)


def test_read_refuses_to_go_past_the_end_and_does_not_move() -> None:
    reader = Reader(b"abcdef")
    assert reader.read(2) == b"ab"
    with pytest.raises(DecodeError) as exc:
        reader.read(5)
    assert exc.value.reason == "bad-encoding"
    assert reader.pos == 2 and reader.remaining() == 4
    assert reader.read(4) == b"cdef"
    assert reader.remaining() == 0
    assert reader.read(0) == b""
    reader.finish()


def test_finish_with_trailing_data() -> None:
    reader = Reader(b"\x05\x00")
    assert reader.varint() == 5
    with pytest.raises(DecodeError) as exc:
        reader.finish()
    assert exc.value.reason == "bad-encoding"
    assert "trailing data: 1 bytes" in str(exc.value)


def test_the_reader_keeps_its_own_copy() -> None:
    data = bytearray(b"\x01\x02\x03\x04")
    reader = Reader(data)
    data[0] = 0xFF
    assert reader.u32() == 0x04030201


# ------------------------------------------------------------------ counts


@pytest.mark.parametrize(("count", "size", "available"), [(0, 100, 0), (3, 10, 30), (3, 10, 31), (253, 1, 253)])
def test_count_accepts_what_fits(count: int, size: int, available: int) -> None:
    reader = Reader(varint(count) + bytes(available))
    assert reader.count(size) == count
    assert reader.remaining() == available


@pytest.mark.parametrize(
    ("count", "size", "available"),
    [(1, 1, 0), (3, 10, 29), (4, 133, 400), (253, 1, 252), (MAX_VARINT, 1, 1000), (MAX_VARINT, 161, 0)],
)
def test_count_refuses_what_cannot_fit(count: int, size: int, available: int) -> None:
    # A count is checked against the bytes left before anything is allocated for it.
    reader = Reader(varint(count) + bytes(available))
    with pytest.raises(DecodeError) as exc:
        reader.count(size)
    assert exc.value.reason == "bad-encoding"
    assert f"{count} items of at least {size} bytes" in str(exc.value)


def test_count_above_the_maximum_is_refused_as_a_varint() -> None:
    reader = Reader(varint(MAX_VARINT + 1) + bytes(10))
    with pytest.raises(DecodeError) as exc:
        reader.count(0)
    assert "exceeds the maximum" in str(exc.value)


# ------------------------------------------------------------------ hashes in hex

GENESIS_HEX = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"


def test_hashes_are_shown_byte_reversed() -> None:
    genesis = BITCOIN.genesis_header.hash
    assert genesis[-4:] == bytes(4)  # the proof-of-work zeros sit at the end of the internal order
    assert hash_to_hex(genesis) == GENESIS_HEX
    assert hex_to_hash(GENESIS_HEX) == genesis
    assert hash_to_hex(bytes(range(32))) == bytes(range(31, -1, -1)).hex()
    assert hash_to_hex(ZERO_HASH) == "0" * 64


@pytest.mark.parametrize("seed", range(20))
def test_hex_round_trip(seed: int) -> None:
    h = sha256d(seed.to_bytes(4, "little"))
    text = hash_to_hex(h)
    assert len(text) == 64 and text == text.lower()
    assert hex_to_hash(text) == h
    assert hex_to_hash(text.upper()) == h
    assert hash_to_hex(hex_to_hash(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        GENESIS_HEX[:-1],  # 63 characters
        GENESIS_HEX + "0",  # 65
        GENESIS_HEX + "00",  # 66: a 33-byte value
        "g" * 64,
        "0x" + GENESIS_HEX[2:],
        GENESIS_HEX[:-1] + "é",
    ],
)
def test_hex_to_hash_rejects_bad_text(text: str) -> None:
    with pytest.raises(ValueError):
        hex_to_hash(text)


@pytest.mark.parametrize("value", [GENESIS_HEX.encode(), bytes.fromhex(GENESIS_HEX), None, 0])
def test_hex_to_hash_rejects_what_is_not_a_string(value: object) -> None:
    with pytest.raises(ValueError):
        hex_to_hash(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["  " + "00" * 31, "00" * 31 + "\n ", "00 " * 21 + "0"])
def test_hex_to_hash_refuses_whitespace(text: str) -> None:
    assert len(text) == 64
    with pytest.raises(ValueError):
        hex_to_hash(text)
