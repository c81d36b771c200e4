"""Proof of work: compact ``bits``, targets, work, and difficulty retargeting.

Follows Bitcoin Core's ``arith_uint256::SetCompact``/``GetCompact``,
``CheckProofOfWork``, ``GetBlockProof`` and ``CalculateNextWorkRequired``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chain.errors import HeaderError

if TYPE_CHECKING:
    from chain.params import NetworkParams


def decode_compact(bits: int) -> tuple[int, bool, bool]:
    """Expand compact ``bits`` to ``(target, negative, overflow)`` exactly as Bitcoin's SetCompact."""
    size = bits >> 24
    word = bits & 0x007FFFFF
    if size <= 3:
        word >>= 8 * (3 - size)  # Core shifts the word itself, so the flags below see the shifted value
        target = word
    else:
        target = word << (8 * (size - 3))
    negative = word != 0 and (bits & 0x00800000) != 0
    overflow = word != 0 and (size > 34 or (word > 0xFF and size > 33) or (word > 0xFFFF and size > 32))
    return target, negative, overflow


def encode_compact(target: int) -> int:
    """Compress a non-negative target to ``bits`` exactly as Bitcoin's GetCompact (precision is lost)."""
    if target < 0:
        raise ValueError("targets are non-negative")
    size = (target.bit_length() + 7) // 8
    if size <= 3:
        compact = target << (8 * (3 - size))
    else:
        compact = target >> (8 * (size - 3))
    if compact & 0x00800000:  # the sign bit would be set: use one more byte of exponent
        compact >>= 8
        size += 1
    return compact | (size << 24)


def target_from_bits(bits: int, pow_limit: int) -> int:
    """The target ``bits`` stands for; ``bad-diffbits`` when negative, zero, overflowing or easier than the limit."""
    target, negative, overflow = decode_compact(bits)
    if negative or overflow or target == 0 or target > pow_limit:
        raise HeaderError("bad-diffbits", f"bits {bits:#010x} is not a valid target within the network's limit")
    return target


def check_proof_of_work(block_hash: bytes, bits: int, pow_limit: int) -> None:
    """Require ``hash <= target <= pow_limit`` (Bitcoin Core: CheckProofOfWork); raises ``high-hash``."""
    target = target_from_bits(bits, pow_limit)
    if int.from_bytes(block_hash, "little") > target:
        raise HeaderError("high-hash", f"hash {block_hash[::-1].hex()} is above the target of bits {bits:#010x}")


def block_work(bits: int) -> int:
    """Expected number of hashes to find a block at ``bits`` (Bitcoin Core: GetBlockProof)."""
    target, negative, overflow = decode_compact(bits)
    if negative or overflow or target == 0:
        return 0
    return (1 << 256) // (target + 1)


def next_work_required(params: NetworkParams, prev_height: int, prev_bits: int, time_at: Callable[[int], int]) -> int:
    """The ``bits`` the block after ``prev_height`` must carry (Bitcoin Core: GetNextWorkRequired).

    ``time_at(h)`` gives the timestamp of the ancestor at height ``h``. On a retarget
    height the timespan of the last period is measured from its first block to its
    last, so only ``interval - 1`` block intervals are counted (Bitcoin's off-by-one),
    clamped to a factor of 4 either way.
    """
    interval = params.retarget_interval
    if interval == 0 or (prev_height + 1) % interval != 0:
        return prev_bits
    first_time = time_at(prev_height - (interval - 1))
    timespan = time_at(prev_height) - first_time
    target_timespan = params.target_timespan
    timespan = max(target_timespan // 4, min(timespan, target_timespan * 4))
    target, _, _ = decode_compact(prev_bits)
    new_target = min(target * timespan // target_timespan, params.pow_limit)
    return encode_compact(new_target)
