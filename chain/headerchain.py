"""Check a chain of headers from an untrusted source against one trusted block hash.

Given the hash of a block you trust (read off a friend's node, a book, a website)
and headers from anyone, validate every header from genesis to that hash: linkage,
difficulty (``bits`` and retargeting), proof of work and both timestamp rules. The
first bad header stops the check with a HeaderChainError naming its height and
rule. Headers after the trusted one are ignored.

This is the hot loop of light-client verification, so it works on raw 80-byte
headers and keeps only hashes and timestamps, never header objects.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice

from chain.block import HEADER_SIZE, BlockHeader
from chain.errors import HeaderChainError, ValidationError
from chain.hashes import hash_to_hex
from chain.params import NetworkParams
from chain.pow import block_work, next_work_required, target_from_bits
from chain.validation import median_time_past

_TIME_BITS = struct.Struct("<II")


@dataclass(frozen=True)
class VerifiedChain:
    """A header chain that reached the trusted tip."""

    tip: bytes
    height: int
    chainwork: int


class HeaderChainVerifier:
    """Feed raw headers in order; ``feed`` returns True once the trusted tip is reached."""

    def __init__(self, params: NetworkParams, trusted_tip: bytes, now: int) -> None:
        self.params = params
        self.trusted_tip = trusted_tip
        self.now = now
        genesis = params.genesis_header
        self.hashes: list[bytes] = [genesis.hash]
        self.times: list[int] = [genesis.time]
        self.chainwork = block_work(genesis.bits)
        self._bits = genesis.bits
        self._targets: dict[int, tuple[int, int]] = {}
        self.done = genesis.hash == trusted_tip

    @property
    def height(self) -> int:
        return len(self.hashes) - 1

    def height_of(self, block_hash: bytes) -> int | None:
        """Height of ``block_hash`` on the verified chain, or None."""
        if not hasattr(self, "_positions") or len(self._positions) != len(self.hashes):
            self._positions = {h: i for i, h in enumerate(self.hashes)}
        return self._positions.get(block_hash)

    def _fail(self, height: int, reason: str, message: str) -> HeaderChainError:
        return HeaderChainError(reason, message, height)

    def _target(self, bits: int, height: int) -> tuple[int, int]:
        try:
            target = target_from_bits(bits, self.params.pow_limit)
        except ValidationError as exc:
            raise self._fail(height, exc.reason, exc.message) from None
        found = self._targets[bits] = (target, block_work(bits))
        return found

    def feed(self, headers: Iterable[bytes | BlockHeader]) -> bool:
        """Check each raw header in turn; stop (True) at the trusted tip; HeaderChainError at the first bad one."""
        if self.done:
            return True
        params = self.params
        hashes, times = self.hashes, self.times
        sha256, unpack = hashlib.sha256, _TIME_BITS.unpack_from
        max_future = self.now + params.max_future_block_time
        interval, span = params.retarget_interval, params.median_time_span
        trusted = self.trusted_tip
        last_hash = hashes[-1]
        expected_bits = accepted_bits = self._bits
        target, work = self._targets.get(expected_bits) or self._target(expected_bits, len(hashes))
        latest_time = max(times[-span:])  # newest-so-far timestamp: anything above it beats the median
        chainwork = self.chainwork
        height = len(hashes)
        next_retarget = height + (-height % interval) if interval else -1
        genesis_hash = hashes[0]
        add_hash, add_time, from_bytes = hashes.append, times.append, int.from_bytes
        try:
            for raw in headers:
                if type(raw) is not bytes:
                    raw = raw.serialized if isinstance(raw, BlockHeader) else bytes(raw)
                if len(raw) != 80:  # HEADER_SIZE, inlined: this loop is the light client's hot path
                    raise self._fail(height, "bad-header-length", f"a header is {HEADER_SIZE} bytes, got {len(raw)}")
                block_hash = sha256(sha256(raw).digest()).digest()
                if raw[4:36] != last_hash:
                    if height == 1 and block_hash == genesis_hash:
                        continue  # the stream starts with genesis itself
                    raise self._fail(height, "bad-prevblk", "does not link to the previous header")
                time, bits = unpack(raw, 68)
                if height == next_retarget:
                    expected_bits = next_work_required(params, height - 1, expected_bits, times.__getitem__)
                    target, work = self._targets.get(expected_bits) or self._target(expected_bits, height)
                    next_retarget += interval
                if bits != expected_bits:
                    raise self._fail(height, "bad-diffbits", f"bits {bits:#010x}, expected {expected_bits:#010x}")
                if from_bytes(block_hash, "little") > target:
                    raise self._fail(height, "high-hash", f"hash {hash_to_hex(block_hash)} is above its target")
                if time > latest_time:
                    latest_time = time
                elif time <= median_time_past(times[-span:]):
                    raise self._fail(height, "time-too-old", f"time {time} is not after the median of the last {span}")
                if time > max_future:
                    raise self._fail(height, "time-too-new", f"time {time} is too far ahead of {self.now}")
                add_hash(block_hash)
                add_time(time)
                chainwork += work
                last_hash = block_hash
                accepted_bits = bits
                height += 1
                if block_hash == trusted:
                    self.done = True
                    return True
            return False
        finally:
            self.chainwork = chainwork
            self._bits = accepted_bits

    def result(self) -> VerifiedChain:
        if not self.done:
            raise HeaderChainError(
                "trusted-tip-not-found",
                f"the headers end at height {self.height} without reaching {hash_to_hex(self.trusted_tip)}",
                self.height + 1,
            )
        return VerifiedChain(self.hashes[-1], self.height, self.chainwork)


def verify_header_chain(
    params: NetworkParams,
    headers: Iterable[bytes | BlockHeader],
    trusted_tip: bytes,
    now: int,
    progress: Callable[[int], None] | None = None,
    batch: int = 2000,
) -> VerifiedChain:
    """Validate ``headers`` from genesis up to ``trusted_tip``; HeaderChainError names the first failure."""
    verifier = HeaderChainVerifier(params, trusted_tip, now)
    stream = iter(headers)
    while (chunk := list(islice(stream, batch))) and not verifier.feed(chunk):
        if progress is not None:
            progress(verifier.height)
    if progress is not None:
        progress(verifier.height)
    return verifier.result()


def split_headers(data: bytes) -> list[bytes]:
    """Cut a raw header file (80 bytes each, back to back) into headers; a ragged end is kept to be rejected."""
    return [data[i : i + HEADER_SIZE] for i in range(0, len(data), HEADER_SIZE)]
