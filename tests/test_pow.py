"""Compact ``bits``, targets, work and retargeting, against Bitcoin Core's own cases.

The SetCompact/GetCompact table is Bitcoin Core's ``arith_uint256_tests``
(``bignum_SetCompact``); the retarget cases follow ``CalculateNextWorkRequired``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from chain.errors import HeaderError
from chain.params import BITCOIN, DEVNET, REGTEST
from chain.pow import (
    block_work,
    check_proof_of_work,
    decode_compact,
    encode_compact,
    next_work_required,
    target_from_bits,
)

# (bits, target, GetCompact of the target (with the sign bit when negative), negative, overflow)
SET_COMPACT_CASES = [
    (0x00000000, 0, 0, False, False),
    (0x00123456, 0, 0, False, False),
    (0x01003456, 0, 0, False, False),
    (0x02000056, 0, 0, False, False),
    (0x03000000, 0, 0, False, False),
    (0x04000000, 0, 0, False, False),
    (0x00923456, 0, 0, False, False),
    (0x01803456, 0, 0, False, False),
    (0x02800056, 0, 0, False, False),
    (0x03800000, 0, 0, False, False),
    (0x04800000, 0, 0, False, False),
    (0x01123456, 0x12, 0x01120000, False, False),
    (0x01FEDCBA, 0x7E, 0x01FE0000, True, False),
    (0x02123456, 0x1234, 0x02123400, False, False),
    (0x03123456, 0x123456, 0x03123456, False, False),
    (0x04123456, 0x12345600, 0x04123456, False, False),
    (0x04923456, 0x12345600, 0x04923456, True, False),
    (0x05009234, 0x92340000, 0x05009234, False, False),
    (0x20123456, 0x123456 << (29 * 8), 0x20123456, False, False),
]

SIGN_BIT = 0x00800000


@pytest.mark.parametrize(
    ("bits", "target", "compact", "negative", "overflow"),
    SET_COMPACT_CASES,
    ids=[f"{c[0]:#010x}" for c in SET_COMPACT_CASES],
)
def test_set_compact_table(bits: int, target: int, compact: int, negative: bool, overflow: bool) -> None:
    assert decode_compact(bits) == (target, negative, overflow)
    # GetCompact(fNegative): Cairn's encoder takes no sign, so the sign bit is added as Core does.
    expected_unsigned = compact & ~SIGN_BIT if negative else compact
    assert encode_compact(target) == expected_unsigned
    if negative:
        assert encode_compact(target) | SIGN_BIT == compact


def test_set_compact_overflow() -> None:
    _target, negative, overflow = decode_compact(0xFF123456)
    assert (negative, overflow) == (False, True)


def test_get_compact_never_sets_the_sign_bit() -> None:
    assert encode_compact(0x80) == 0x02008000  # not 0x01800000, which would read as negative
    assert encode_compact(0x7F) == 0x017F0000
    assert encode_compact(0x8000) == 0x03008000
    assert encode_compact(0) == 0
    with pytest.raises(ValueError):
        encode_compact(-1)


def test_overflow_boundaries() -> None:
    """The largest sizes whose mantissa still fits in 256 bits, and one byte more."""
    assert decode_compact(0x22000001)[2] is False  # 34 bytes: 0x01 << 248 fits
    assert decode_compact(0x23000001)[2] is True  # 35 bytes: nothing fits
    assert decode_compact(0x220000FF)[2] is False  # 0xff << 248 fits
    assert decode_compact(0x22000100)[2] is True  # 0x100 << 248 is 2**256
    assert decode_compact(0x2100FFFF)[2] is False  # 0xffff << 240 fits
    assert decode_compact(0x21010000)[2] is True  # 0x10000 << 240 is 2**256
    assert decode_compact(0x207FFFFF)[2] is False  # 32 bytes: any mantissa fits
    assert decode_compact(0xFF000000) == (0, False, False)  # a zero mantissa never overflows


def test_encode_decode_round_trip_on_many_targets() -> None:
    """decode(encode(t)) keeps t's bytes that fit the 23-bit mantissa, and is a fixed point of encode."""
    rng = random.Random(20261125)
    for _ in range(2000):
        target = rng.getrandbits(rng.randrange(1, 256))
        bits = encode_compact(target)
        decoded, negative, overflow = decode_compact(bits)
        assert not negative and not overflow
        assert bits & SIGN_BIT == 0
        assert decoded <= target
        size = (target.bit_length() + 7) // 8
        exponent = bits >> 24  # one more than size when the top byte's high bit would read as the sign
        assert exponent == size + (1 if size and target >> (8 * size - 1) else 0)
        assert target - decoded < (1 << max(0, 8 * (exponent - 3)))  # only bytes below the mantissa are lost
        assert encode_compact(decoded) == bits


# ---------------------------------------------------------------- targets and proof of work


@pytest.mark.parametrize(
    "bits",
    [
        0x00000000,  # zero
        0x03000000,  # zero mantissa
        0x01003456,  # shifted to zero
        0x04923456,  # negative
        0x01FEDCBA,  # negative
        0xFF123456,  # overflow
        0x1D01FFFF,  # above Bitcoin's limit (0x1d00ffff is its easiest)
        0x1E00FFFF,  # above Bitcoin's limit
        0x207FFFFF,  # regtest's bits: far above Bitcoin's limit
    ],
)
def test_target_from_bits_rejects(bits: int) -> None:
    with pytest.raises(HeaderError) as exc:
        target_from_bits(bits, BITCOIN.pow_limit)
    assert exc.value.reason == "bad-diffbits"


def test_target_from_bits_accepts_each_networks_limit() -> None:
    assert target_from_bits(0x1D00FFFF, BITCOIN.pow_limit) == 0xFFFF << 208
    assert target_from_bits(0x1F00FFFF, DEVNET.pow_limit) == DEVNET.pow_limit
    assert target_from_bits(0x207FFFFF, REGTEST.pow_limit) == 0x7FFFFF << 232
    for params in (BITCOIN, DEVNET, REGTEST):
        bits = params.genesis_header.bits
        assert target_from_bits(bits, params.pow_limit) <= params.pow_limit
        assert target_from_bits(encode_compact(params.pow_limit), params.pow_limit) <= params.pow_limit


def test_check_proof_of_work_boundary() -> None:
    bits = 0x1B04864C  # block 99960's
    target = target_from_bits(bits, BITCOIN.pow_limit)
    check_proof_of_work(target.to_bytes(32, "little"), bits, BITCOIN.pow_limit)  # hash == target passes
    check_proof_of_work(bytes(32), bits, BITCOIN.pow_limit)
    with pytest.raises(HeaderError) as exc:
        check_proof_of_work((target + 1).to_bytes(32, "little"), bits, BITCOIN.pow_limit)
    assert exc.value.reason == "high-hash"
    with pytest.raises(HeaderError) as exc:
        check_proof_of_work(bytes(32), 0x1D01FFFF, BITCOIN.pow_limit)  # even a zero hash: bits are checked first
    assert exc.value.reason == "bad-diffbits"


def test_proof_of_work_reads_the_hash_little_endian() -> None:
    """Internal byte order: the last byte is the most significant (it is shown first in hex)."""
    bits = 0x1D00FFFF
    low_bytes_set = bytes([0xFF] * 26) + bytes(6)  # small number: passes
    check_proof_of_work(low_bytes_set, bits, BITCOIN.pow_limit)
    with pytest.raises(HeaderError) as exc:
        check_proof_of_work(bytes(31) + b"\x01", bits, BITCOIN.pow_limit)  # 2**248: far above
    assert exc.value.reason == "high-hash"


def test_block_work() -> None:
    assert block_work(0x1D00FFFF) == 0x100010001 == 2**256 // ((0xFFFF << 208) + 1)
    assert block_work(0x207FFFFF) == 2  # regtest: every other hash wins
    for bits in (0x1B04864C, 0x1C05A3F4, 0x170331DB, 0x03123456):
        target = decode_compact(bits)[0]
        assert block_work(bits) == 2**256 // (target + 1)
    for invalid in (0, 0x04923456, 0xFF123456, 0x01003456):
        assert block_work(invalid) == 0
    assert block_work(0x1C05A3F4) < block_work(0x1C0168FD)  # a smaller target is more work


# ---------------------------------------------------------------- retargeting

INTERVAL = BITCOIN.retarget_interval
TIMESPAN = BITCOIN.target_timespan


def times_with_span(last_height: int, span: int, calls: list[int] | None = None) -> Callable[[int], int]:
    """Timestamps of a period ending at ``last_height`` whose first block is ``span`` seconds before it."""
    first_height = last_height - (INTERVAL - 1)

    def time_at(height: int) -> int:
        if calls is not None:
            calls.append(height)
        return 1_400_000_000 + (height - first_height) * span // (INTERVAL - 1)

    return time_at


def retarget(prev_bits: int, span: int, last_height: int = 4 * INTERVAL - 1) -> int:
    return next_work_required(BITCOIN, last_height, prev_bits, times_with_span(last_height, span))


BITS = 0x1B04864C  # a real mainnet target well below the limit


def expected(prev_bits: int, span: int) -> int:
    return encode_compact(decode_compact(prev_bits)[0] * span // TIMESPAN)


def test_no_retarget_off_the_interval() -> None:
    def no_clock(height: int) -> int:
        raise AssertionError(f"timestamp of {height} read off a retarget height")

    for prev_height in (0, 1, INTERVAL - 2, INTERVAL, INTERVAL + 1, 2 * INTERVAL - 2, 10 * INTERVAL + 7):
        assert next_work_required(BITCOIN, prev_height, BITS, no_clock) == BITS


def test_regtest_never_retargets() -> None:
    def no_clock(height: int) -> int:
        raise AssertionError("regtest reads no timestamps")

    for prev_height in (0, 2015, 2016, 4031, 10**6):
        assert next_work_required(REGTEST, prev_height, 0x207FFFFF, no_clock) == 0x207FFFFF


def test_on_target_spacing_counts_one_interval_fewer() -> None:
    """Bitcoin's off-by-one: the span runs from the period's first block to its last, 2015 gaps, not 2016."""
    calls: list[int] = []
    last_height = 2 * INTERVAL - 1  # 4031: the block after it (4032) retargets
    span = (INTERVAL - 1) * BITCOIN.target_spacing  # blocks exactly 600 s apart
    got = next_work_required(BITCOIN, last_height, BITS, times_with_span(last_height, span, calls))
    assert sorted(set(calls)) == [last_height - (INTERVAL - 1), last_height]  # heights 2016 and 4031
    assert got == expected(BITS, 2015 * 600)
    assert got != BITS  # 2015/2016 of the timespan: the target shrinks by 1/2016
    assert decode_compact(got)[0] < decode_compact(BITS)[0]
    # With the full 2016 intervals measured the bits would not change at all.
    assert retarget(BITS, TIMESPAN) == BITS


def test_retarget_scales_the_target_by_the_timespan() -> None:
    for factor_num, factor_den in ((1, 2), (3, 2), (2, 1), (1, 3), (5, 4)):
        span = TIMESPAN * factor_num // factor_den
        assert retarget(BITS, span) == expected(BITS, span)


def test_retarget_clamps_at_four_times_easier() -> None:
    four_times = retarget(BITS, 4 * TIMESPAN)
    assert four_times == expected(BITS, 4 * TIMESPAN)
    assert decode_compact(four_times)[0] == 4 * decode_compact(BITS)[0]
    for slower in (4 * TIMESPAN + 1, 10 * TIMESPAN, 1000 * TIMESPAN):
        assert retarget(BITS, slower) == four_times
    assert retarget(BITS, 4 * TIMESPAN - 3600) != four_times


def test_retarget_clamps_at_four_times_harder() -> None:
    quarter = retarget(BITS, TIMESPAN // 4)
    assert quarter == expected(BITS, TIMESPAN // 4)
    for faster in (TIMESPAN // 4 - 1, 60, 0, -TIMESPAN):  # a negative span: timestamps went backwards
        assert retarget(BITS, faster) == quarter
    assert retarget(BITS, TIMESPAN // 4 + 3600) != quarter


def test_retarget_never_exceeds_the_pow_limit() -> None:
    genesis_bits = BITCOIN.genesis_header.bits
    assert retarget(genesis_bits, 4 * TIMESPAN) == genesis_bits  # min(4 * target, pow_limit) encodes back
    assert retarget(genesis_bits, TIMESPAN + 600) == genesis_bits
    assert retarget(genesis_bits, TIMESPAN // 2) == expected(genesis_bits, TIMESPAN // 2)
    near_limit = encode_compact(BITCOIN.pow_limit // 3)
    assert decode_compact(retarget(near_limit, 4 * TIMESPAN))[0] <= BITCOIN.pow_limit
    assert retarget(near_limit, 4 * TIMESPAN) == encode_compact(BITCOIN.pow_limit) == genesis_bits


def test_devnet_retargets_every_twenty_blocks() -> None:
    bits = DEVNET.genesis_header.bits
    interval = DEVNET.retarget_interval

    def fast(height: int) -> int:
        return 1_800_000_000 + height  # 1 s blocks, 5x faster than target: clamped at 4x harder

    assert next_work_required(DEVNET, interval - 2, bits, fast) == bits
    harder = next_work_required(DEVNET, interval - 1, bits, fast)
    assert harder == encode_compact(decode_compact(bits)[0] * (DEVNET.target_timespan // 4) // DEVNET.target_timespan)
    assert decode_compact(harder)[0] < decode_compact(bits)[0]
