"""Trusted-tip header verification (chain/headerchain.py) on Cairn's own chains and on Bitcoin's first headers.

One regtest chain of 3000 headers is mined once per module (ChainBuilder takes about
0.2 s for it: regtest's target lets every other hash win). Every rejection asserts
both the height and the reason the verifier reports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from statistics import median_high

import pytest

from chain.block import Block, BlockHeader
from chain.builder import ChainBuilder
from chain.errors import HeaderChainError
from chain.hashes import hash_to_hex, hex_to_hash, sha256d
from chain.headerchain import HeaderChainVerifier, VerifiedChain, split_headers, verify_header_chain
from chain.mining import build_block, solve_block
from chain.params import BITCOIN, DEVNET, REGTEST, NetworkParams
from chain.pow import block_work

LENGTH = 3000
G = REGTEST.genesis_header.time  # the builder's default timestamps are G + height
NOW = G + LENGTH + 60  # a fixed "current time", a minute after the tip's timestamp
REGTEST_TARGET = 0x7FFFFF << 232  # bits 0x207fffff: exponent 0x20 = 32 bytes, mantissa 0x7fffff
REGTEST_WORK = 2  # 2**256 // (REGTEST_TARGET + 1): a bit more than 2**256 / 2**255
FLIP_HEIGHTS = (1, 2, 6, 11, 12, 100, 1001, 2048, 2999, LENGTH)
REGIONS = {
    "version": (0, 4),
    "prev_hash": (4, 36),
    "merkle_root": (36, 68),
    "time": (68, 72),
    "bits": (72, 76),
    "nonce": (76, 80),
}


@pytest.fixture(scope="module")
def headers() -> list[BlockHeader]:
    """Genesis and the 3000 regtest headers after it, ``headers[h]`` at height ``h``."""
    builder = ChainBuilder(REGTEST)
    return [REGTEST.genesis_header, *(block.header for block in builder.add_chain(LENGTH))]


@pytest.fixture(scope="module")
def raws(headers: list[BlockHeader]) -> list[bytes]:
    """Raw 80-byte headers, ``raws[h]`` at height ``h`` (``raws[0]`` is genesis)."""
    return [header.serialized for header in headers]


def verify(
    stream: Sequence[bytes | BlockHeader], tip: bytes, params: NetworkParams = REGTEST, now: int = NOW
) -> VerifiedChain:
    return verify_header_chain(params, stream, tip, now)


def rejection(
    stream: Sequence[bytes | BlockHeader], tip: bytes, params: NetworkParams = REGTEST, now: int = NOW
) -> tuple[int, str]:
    """(height, reason) of the HeaderChainError that verifying ``stream`` must raise."""
    with pytest.raises(HeaderChainError) as exc:
        verify(stream, tip, params, now)
    return exc.value.height, exc.value.reason


def meets(raw: bytes, target: int) -> bool:
    """Whether a raw header's hash meets ``target``, computed here, not by the code under test."""
    return int.from_bytes(sha256d(raw), "little") <= target


# ------------------------------------------------------------------ the honest chain


def test_the_builder_chain_has_the_shape_the_tests_assume(headers: list[BlockHeader]) -> None:
    assert len(headers) == LENGTH + 1
    assert all(h.bits == 0x207FFFFF for h in headers)
    assert [h.time for h in headers] == [G + height for height in range(LENGTH + 1)]
    assert all(headers[i].prev_hash == headers[i - 1].hash for i in range(1, LENGTH + 1))
    assert block_work(0x207FFFFF) == REGTEST_WORK


@pytest.mark.parametrize("with_genesis", [False, True], ids=["without-genesis", "with-genesis"])
def test_the_chain_verifies_against_its_true_tip(raws: list[bytes], with_genesis: bool) -> None:
    stream = raws if with_genesis else raws[1:]
    result = verify(stream, sha256d(raws[-1]))
    assert result.tip == sha256d(raws[-1])
    assert result.height == LENGTH
    assert result.chainwork == sum(block_work(BlockHeader.parse(raw).bits) for raw in raws)
    assert result.chainwork == (LENGTH + 1) * REGTEST_WORK  # genesis counts too, as in Bitcoin Core


def test_header_objects_and_a_raw_header_file_verify_alike(headers: list[BlockHeader], raws: list[bytes]) -> None:
    tip = headers[-1].hash
    expected = VerifiedChain(tip, LENGTH, (LENGTH + 1) * REGTEST_WORK)
    assert verify(headers[1:], tip) == expected
    assert verify(split_headers(b"".join(raws[1:])), tip) == expected
    assert verify(split_headers(b"".join(raws)), tip) == expected


def test_split_headers_keeps_a_ragged_end() -> None:
    data = bytes(range(200))
    assert split_headers(data) == [data[:80], data[80:160], data[160:]]
    assert split_headers(b"") == []


def test_the_verifier_can_be_fed_in_uneven_pieces(raws: list[bytes]) -> None:
    tip = sha256d(raws[-1])
    verifier = HeaderChainVerifier(REGTEST, tip, NOW)
    cuts = [1, 2, 9, 510, 2222, LENGTH + 1]
    start = 1
    for end in cuts:
        reached = verifier.feed(raws[start:end])
        assert reached == (end == LENGTH + 1)
        assert verifier.height == end - 1
        start = end
    assert verifier.result() == VerifiedChain(tip, LENGTH, (LENGTH + 1) * REGTEST_WORK)
    assert verifier.height_of(sha256d(raws[1234])) == 1234
    assert verifier.height_of(REGTEST.genesis_hash) == 0
    assert verifier.height_of(sha256d(b"not a header")) is None
    assert verifier.feed([b"garbage after the tip"]) is True  # done: nothing more is read


def test_progress_is_reported_after_each_batch(raws: list[bytes]) -> None:
    seen: list[int] = []
    verify_header_chain(REGTEST, raws[1:], sha256d(raws[-1]), NOW, progress=seen.append, batch=500)
    assert seen == [500, 1000, 1500, 2000, 2500, LENGTH]


def test_a_trusted_tip_in_the_middle_stops_verification_there(raws: list[bytes]) -> None:
    # Whatever follows the trusted header is never judged: here a torn header and junk.
    stream = [*raws[1:1235], raws[1235][:79], b"\xff" * 80, *raws[1236:]]
    result = verify(stream, sha256d(raws[1234]))
    assert result == VerifiedChain(sha256d(raws[1234]), 1234, 1235 * REGTEST_WORK)


@pytest.mark.parametrize("stream", [[], [b"\x00" * 80], [b"short"]], ids=["empty", "junk", "torn"])
def test_a_trusted_genesis_needs_no_headers(stream: list[bytes]) -> None:
    result = verify(stream, REGTEST.genesis_hash)
    assert result == VerifiedChain(REGTEST.genesis_hash, 0, REGTEST_WORK)


# ------------------------------------------------------------------ tips that are not reached


def test_a_tip_not_in_the_stream_is_reported_one_past_the_last_height(raws: list[bytes]) -> None:
    assert rejection(raws[1:], sha256d(b"some other chain's tip")) == (LENGTH + 1, "trusted-tip-not-found")


def test_a_stream_that_stops_short_of_the_tip(raws: list[bytes]) -> None:
    assert rejection(raws[1:101], sha256d(raws[-1])) == (101, "trusted-tip-not-found")
    assert rejection([], sha256d(raws[-1])) == (1, "trusted-tip-not-found")
    assert rejection([raws[0]], sha256d(raws[-1])) == (1, "trusted-tip-not-found")


def test_a_stream_from_another_network_fails_at_height_one(raws: list[bytes]) -> None:
    # Devnet's genesis is neither regtest's genesis (so it is not skipped) nor a child of it.
    assert rejection([DEVNET.genesis_header.serialized, *raws[1:]], sha256d(raws[-1])) == (1, "bad-prevblk")


# ------------------------------------------------------------------ one byte flipped


def find_flip(raw: bytes, position: int, *, pow_ok: bool, wanted: Callable[[int, int], bool]) -> bytes:
    """``raw`` with byte ``position`` replaced by the first value that ``wanted(old, new)`` accepts
    and whose header hash meets (``pow_ok``) or misses the regtest target."""
    old = raw[position]
    for mask in range(1, 256):
        new = old ^ mask
        flipped = raw[:position] + bytes((new,)) + raw[position + 1 :]
        if wanted(old, new) and meets(flipped, REGTEST_TARGET) == pow_ok:
            return flipped
    pytest.fail(f"no replacement for byte {position} with pow_ok={pow_ok}")


def any_change(old: int, new: int) -> bool:
    return True


def time_down(old: int, new: int) -> bool:
    return new < old


def time_up(old: int, new: int) -> bool:
    return new > old


# (case, region, offset into the region or None to spread it by height, acceptable replacement, hash meets target)
FLIPS = [
    ("prev_hash", "prev_hash", None, any_change, True),
    ("prev_hash-and-pow", "prev_hash", None, any_change, False),
    ("bits", "bits", None, any_change, True),
    ("bits-and-pow", "bits", None, any_change, False),
    ("version", "version", None, any_change, True),
    ("version-pow", "version", None, any_change, False),
    ("merkle_root", "merkle_root", None, any_change, True),
    ("merkle_root-pow", "merkle_root", None, any_change, False),
    ("nonce", "nonce", None, any_change, True),
    ("nonce-pow", "nonce", None, any_change, False),
    ("time-earlier", "time", 3, time_down, True),
    ("time-later", "time", 3, time_up, True),
    ("time-slightly-later", "time", 0, time_up, True),
    ("time-pow", "time", 3, any_change, False),
]


def expected_after_flip(case: str, height: int) -> tuple[int, str]:
    if case.startswith("prev_hash"):
        # Linkage is checked first: the header no longer names its parent, whatever its hash.
        return height, "bad-prevblk"
    if case.startswith("bits"):
        # Bits are compared with the expected value before the hash is looked at.
        return height, "bad-diffbits"
    if case.endswith("-pow"):
        # Any flip changes the hash; this one was chosen so the new hash misses the target.
        return height, "high-hash"
    if case == "time-earlier":
        # The top byte went down: at least 2**24 s before the median of the last 11.
        return height, "time-too-old"
    if case == "time-later":
        # The top byte went up: at least 2**24 s (194 days) in the future.
        return height, "time-too-new"
    # Version, merkle root, nonce or a few seconds later: the header itself is still valid
    # (its new hash meets the target and its time is acceptable), only its hash changed. So it
    # is accepted, and the break shows one height later: the next header names the old hash.
    # At the tip there is no next header, and the stream never reaches the trusted hash.
    return (height + 1, "bad-prevblk") if height < LENGTH else (height + 1, "trusted-tip-not-found")


@pytest.mark.parametrize("height", FLIP_HEIGHTS)
@pytest.mark.parametrize(("case", "region", "offset", "wanted", "pow_ok"), FLIPS, ids=[flip[0] for flip in FLIPS])
def test_a_single_flipped_byte_is_caught(
    raws: list[bytes],
    height: int,
    case: str,
    region: str,
    offset: int | None,
    wanted: Callable[[int, int], bool],
    pow_ok: bool,
) -> None:
    start, end = REGIONS[region]
    position = start + (offset if offset is not None else (height * 7) % (end - start))
    flipped = find_flip(raws[height], position, pow_ok=pow_ok, wanted=wanted)
    stream = [*raws[1:height], flipped, *raws[height + 1 :]]
    assert rejection(stream, sha256d(raws[-1])) == expected_after_flip(case, height)


def test_no_single_bit_flip_anywhere_in_a_header_survives(raws: list[bytes]) -> None:
    # All 640 one-bit changes of header 20, checked against trusted tip 21: each is caught at
    # height 20 itself, or (when the changed header is still valid on its own) by header 21's link.
    reasons: dict[tuple[int, str], int] = {}
    for position in range(80):
        for bit in range(8):
            raw = bytearray(raws[20])
            raw[position] ^= 1 << bit
            caught = rejection([*raws[1:20], bytes(raw), raws[21]], sha256d(raws[21]))
            assert caught[0] == 20 or caught == (21, "bad-prevblk"), (position, bit, caught)
            reasons[caught] = reasons.get(caught, 0) + 1
    assert reasons[(20, "bad-prevblk")] == 256  # every bit of the prev hash
    assert reasons[(20, "bad-diffbits")] == 32  # every bit of bits
    assert {(20, "high-hash"), (20, "time-too-old"), (20, "time-too-new"), (21, "bad-prevblk")} <= set(reasons)


# ------------------------------------------------------------------ removed, reordered, repeated, torn


@pytest.mark.parametrize("height", FLIP_HEIGHTS)
def test_a_removed_header(raws: list[bytes], height: int) -> None:
    stream = [*raws[1:height], *raws[height + 1 :]]
    # The next header lands at the removed one's height and names a parent we have not seen.
    # Removing the tip itself leaves a valid chain that never reaches the trusted hash.
    expected = (height, "bad-prevblk") if height < LENGTH else (LENGTH, "trusted-tip-not-found")
    assert rejection(stream, sha256d(raws[-1])) == expected


@pytest.mark.parametrize("height", [h for h in FLIP_HEIGHTS if h < LENGTH])
def test_two_swapped_headers(raws: list[bytes], height: int) -> None:
    stream = raws[1:]
    stream[height - 1], stream[height] = stream[height], stream[height - 1]  # heights height and height + 1
    assert rejection(stream, sha256d(raws[-1])) == (height, "bad-prevblk")


def test_the_whole_stream_reversed(raws: list[bytes]) -> None:
    assert rejection(raws[:0:-1], sha256d(raws[-1])) == (1, "bad-prevblk")


@pytest.mark.parametrize("height", [1, 1500, LENGTH - 1])
def test_a_repeated_header(raws: list[bytes], height: int) -> None:
    # The copy arrives at height + 1 and names height - 1 as its parent. At height 1 the
    # copy is not genesis, so it is not skipped either.
    stream = [*raws[1 : height + 1], raws[height], *raws[height + 1 :]]
    assert rejection(stream, sha256d(raws[-1])) == (height + 1, "bad-prevblk")


def test_a_repeated_tip_is_never_read(raws: list[bytes]) -> None:
    assert verify([*raws[1:], raws[-1]], sha256d(raws[-1])).height == LENGTH


@pytest.mark.parametrize("height", [1, 777, LENGTH])
@pytest.mark.parametrize("size", [0, 79, 81])
def test_a_header_of_the_wrong_length(raws: list[bytes], height: int, size: int) -> None:
    wrong = (raws[height] + b"\x00")[:size]
    stream = [*raws[1:height], wrong, *raws[height + 1 :]]
    assert rejection(stream, sha256d(raws[-1])) == (height, "bad-header-length")


def test_a_header_file_missing_its_last_byte(raws: list[bytes]) -> None:
    data = b"".join(raws[1:])[:-1]
    assert rejection(split_headers(data), sha256d(raws[-1])) == (LENGTH, "bad-header-length")


def test_a_header_file_missing_a_byte_in_the_middle(raws: list[bytes]) -> None:
    # Byte 10 of header 500 (inside its prev hash) is gone: from there on every 80-byte
    # slice is shifted, and header 500's prev-hash field now ends with a byte of its merkle root.
    data = b"".join(raws[1:])
    cut = 499 * 80 + 10
    assert rejection(split_headers(data[:cut] + data[cut + 1 :]), sha256d(raws[-1])) == (500, "bad-prevblk")


# ------------------------------------------------------------------ timestamps

OFFSETS = [0, 50, 60, 55, 70, 58, 80, 65, 90, 72, 100, 77, 110, 85, 120, 95]  # wandering but valid times


@pytest.fixture(scope="module")
def wandering() -> tuple[ChainBuilder, list[Block]]:
    """A regtest chain of heights 1..15 whose timestamps go back and forth (each above its median)."""
    builder = ChainBuilder(REGTEST)
    blocks = [builder.add_block(time=G + offset) for offset in OFFSETS[1:]]
    return builder, blocks


def test_the_wandering_timestamps_are_valid(wandering: tuple[ChainBuilder, list[Block]]) -> None:
    _, blocks = wandering
    times = [G + offset for offset in OFFSETS]
    for height in range(1, len(times)):
        assert times[height] > median_high(times[max(0, height - 11) : height])
    assert verify([b.header for b in blocks], blocks[-1].hash).height == 15


@pytest.mark.parametrize(("offset", "accepted"), [(85, False), (84, False), (86, True), (121, True)])
def test_time_must_exceed_the_median_of_the_last_eleven(
    wandering: tuple[ChainBuilder, list[Block]], offset: int, accepted: bool
) -> None:
    builder, blocks = wandering
    # Times of heights 5..15 are G + [58, 80, 65, 90, 72, 100, 77, 110, 85, 120, 95]: median G + 85.
    assert median_high([G + o for o in OFFSETS[5:16]]) == G + 85
    block16 = builder.add_block(parent=blocks[-1], time=G + offset)
    followers = [block16]
    for _ in range(3):  # three good headers on top, so the bad one is not just the last
        followers.append(builder.add_block(parent=followers[-1], time=G + 200 + len(followers)))
    stream = [b.header for b in (*blocks, *followers)]
    if accepted:
        assert verify(stream, followers[-1].hash).height == 19
    else:
        assert rejection(stream, followers[-1].hash) == (16, "time-too-old")


@pytest.mark.parametrize(("offset", "accepted"), [(50, False), (25, False), (0, False), (51, True)])
def test_the_median_of_two_is_the_later_one(
    wandering: tuple[ChainBuilder, list[Block]], offset: int, accepted: bool
) -> None:
    # At height 2 only genesis (G) and block 1 (G + 50) precede; Bitcoin Core's median of
    # an even count is the upper one, so height 2 must be later than G + 50.
    builder, blocks = wandering
    block2 = builder.next_block(parent=blocks[0], time=G + offset)
    if accepted:
        assert verify([blocks[0].header, block2.header], block2.hash).height == 2
    else:
        assert rejection([blocks[0].header, block2.header], block2.hash) == (2, "time-too-old")


@pytest.mark.parametrize(("ahead", "accepted"), [(REGTEST.max_future_block_time + 1, False), (7200, True)])
def test_time_too_far_in_the_future(ahead: int, accepted: bool) -> None:
    assert REGTEST.max_future_block_time == 7200
    builder = ChainBuilder(REGTEST)
    blocks = builder.add_chain(20)
    late = builder.next_block(parent=blocks[-1], time=NOW + ahead)
    stream = [*(b.header for b in blocks), late.header]
    if accepted:
        assert verify(stream, late.hash).height == 21
    else:
        assert rejection(stream, late.hash) == (21, "time-too-new")


def test_the_future_limit_follows_the_now_argument(raws: list[bytes]) -> None:
    # The tip's time is G + 3000: seen from two hours and one second before it, it is too new.
    tip = sha256d(raws[-1])
    assert verify(raws[1:], tip, now=G + LENGTH - 7200).height == LENGTH
    assert rejection(raws[1:], tip, now=G + LENGTH - 7201) == (LENGTH, "time-too-new")


# ------------------------------------------------------------------ retargeting

RETARGET = dataclasses.replace(
    REGTEST, retarget_interval=10, target_timespan=100, target_spacing=10, pow_limit=(1 << 255) - 1
)
# Worked out by hand (Bitcoin's rule: new = old * clamp(t[h-1] - t[h-10], 25, 400) / 100, kept to the
# 3-byte mantissa of compact bits, never easier than the limit):
#   heights 1-9   (genesis period)          0x207fffff
#   heights 10-19 after 9 s  -> 25 s: /4   0x7fffff << 232 >> 2 = 0x1fffff << 232   -> 0x201fffff
#   heights 20-29 after 9 s  -> 25 s: /4   0x1fffff << 230 = 0x7ffff << 232 (low bits lost) -> 0x2007ffff
#   heights 30-39 after 9000 s -> 400 s: *4   0x7ffff << 234 = 0x1ffffc << 232         -> 0x201ffffc
#   height 40     after exactly 100 s: unchanged                                       -> 0x201ffffc
RETARGET_BITS = [0x207FFFFF] * 10 + [0x201FFFFF] * 10 + [0x2007FFFF] * 10 + [0x201FFFFC] * 11
SPACING = [1] * 19 + [1000] * 10 + [11] * 9 + [12, 1]  # seconds after the parent, for heights 1..40


@pytest.fixture(scope="module")
def retarget_chain() -> tuple[ChainBuilder, list[Block]]:
    builder = ChainBuilder(RETARGET)
    time = RETARGET.genesis_header.time
    blocks = []
    for step in SPACING:
        time += step
        blocks.append(builder.add_block(time=time))
    return builder, blocks


def retarget_now(blocks: list[Block]) -> int:
    return blocks[-1].header.time + 60


def test_the_builder_retargets_as_worked_out_by_hand(retarget_chain: tuple[ChainBuilder, list[Block]]) -> None:
    _, blocks = retarget_chain
    assert [RETARGET.genesis_header.bits] + [b.header.bits for b in blocks] == RETARGET_BITS
    assert blocks[38].header.time - blocks[29].header.time == RETARGET.target_timespan  # heights 39 and 30


def test_a_chain_with_real_retargets_verifies(retarget_chain: tuple[ChainBuilder, list[Block]]) -> None:
    _, blocks = retarget_chain
    result = verify([b.header for b in blocks], blocks[-1].hash, RETARGET, retarget_now(blocks))
    assert result.height == 40
    assert result.chainwork == sum(block_work(bits) for bits in RETARGET_BITS)
    # Work per block went 2 -> 8 -> 32 -> 8: harder targets weigh more.
    assert [block_work(b) for b in (0x207FFFFF, 0x201FFFFF, 0x2007FFFF, 0x201FFFFC)] == [2, 8, 32, 8]


def test_regtest_params_ignore_the_retarget_schedule(retarget_chain: tuple[ChainBuilder, list[Block]]) -> None:
    # The same headers under plain regtest (no retargeting) fail where the bits first change.
    _, blocks = retarget_chain
    assert rejection([b.header for b in blocks], blocks[-1].hash, REGTEST, retarget_now(blocks)) == (
        10,
        "bad-diffbits",
    )


def headers_with(blocks: list[Block], height: int, block: Block) -> list[BlockHeader]:
    """The chain's headers up to ``height - 1``, then ``block``'s header at ``height``."""
    return [b.header for b in blocks[: height - 1]] + [block.header]


def solved(parent: Block, height: int, time: int, bits: int) -> Block:
    return solve_block(build_block(parent.hash, height, time, bits, bytes(20), 0))


@pytest.mark.parametrize(
    ("height", "bits"),
    [
        (10, 0x207FFFFF),  # bits left unchanged at a retarget height
        (20, 0x201FFFFF),  # the previous period's bits again
        (30, 0x2007FFFF),  # a slow period must make it easier; staying hard is wrong too
        (11, 0x2007FFFF),  # a harder target than required between retargets
        (15, 0x207FFFFF),  # an easier one between retargets
    ],
)
def test_wrong_bits_around_retargets(retarget_chain: tuple[ChainBuilder, list[Block]], height: int, bits: int) -> None:
    _, blocks = retarget_chain
    parent = blocks[height - 2]
    block = solved(parent, height, parent.header.time + 1, bits)
    assert rejection(headers_with(blocks, height, block), block.hash, RETARGET, retarget_now(blocks)) == (
        height,
        "bad-diffbits",
    )


def test_a_hash_that_meets_only_the_old_target_at_a_retarget(
    retarget_chain: tuple[ChainBuilder, list[Block]],
) -> None:
    _, blocks = retarget_chain
    parent = blocks[8]  # height 9; height 10 must carry 0x201fffff (target 0x1fffff << 232)
    template = build_block(parent.hash, 10, parent.header.time + 1, 0x201FFFFF, bytes(20), 0).header
    for nonce in range(1000):
        header = dataclasses.replace(template, nonce=nonce)
        if meets(header.serialized, REGTEST_TARGET) and not meets(header.serialized, 0x1FFFFF << 232):
            break
    else:
        pytest.fail("no nonce between the two targets")
    stream = [*(b.header for b in blocks[:9]), header]
    assert rejection(stream, header.hash, RETARGET, retarget_now(blocks)) == (10, "high-hash")


# ------------------------------------------------------------------ proof of work against a hard target

# Regtest rules with devnet's genesis: bits 0x1f00ffff, about 65,536 hashes per block, no retarget.
HARD = dataclasses.replace(
    REGTEST, pow_limit=DEVNET.pow_limit, genesis_header=DEVNET.genesis_header, genesis_block=DEVNET.genesis_block
)
HARD_TARGET = 0xFFFF << 224  # bits 0x1f00ffff: exponent 31 bytes, mantissa 0x00ffff


def test_solved_blocks_verify_on_the_hard_network() -> None:
    builder = ChainBuilder(HARD)
    blocks = builder.add_chain(2)
    assert all(b.header.bits == 0x1F00FFFF and meets(b.header.serialized, HARD_TARGET) for b in blocks)
    result = verify([b.header for b in blocks], blocks[-1].hash, HARD, G + 600)
    assert result.height == 2
    assert result.chainwork == 3 * block_work(0x1F00FFFF) == 3 * 65537


@pytest.mark.parametrize("nonce", [0, 1, 0xFFFF, 0x12345678, 0xFFFFFFFF])
def test_unsolved_nonces_are_high_hash(nonce: int) -> None:
    genesis = HARD.genesis_header
    template = build_block(genesis.hash, 1, genesis.time + 5, 0x1F00FFFF, bytes(20), 0).header
    header = dataclasses.replace(template, nonce=nonce)
    if meets(header.serialized, HARD_TARGET):  # 1 chance in 65,536 per nonce: then it must verify
        assert verify([header], header.hash, HARD, G + 600).height == 1
    else:
        assert rejection([header], header.hash, HARD, G + 600) == (1, "high-hash")


def test_regtest_bits_are_too_easy_for_the_hard_network() -> None:
    genesis = HARD.genesis_header
    block = solved(Block(genesis, ()), 1, genesis.time + 5, 0x207FFFFF)
    assert rejection([block.header], block.hash, HARD, G + 600) == (1, "bad-diffbits")


# ------------------------------------------------------------------ Bitcoin mainnet

BITCOIN_NOW = 1_700_000_000
# Blocks 1 and 2 of Bitcoin mainnet. They authenticate themselves: their hashes meet the
# 0x1d00ffff target (about 2**32 tries each), and equal the well-known block hashes.
BITCOIN_1 = BlockHeader(
    1,
    hex_to_hash("000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"),
    hex_to_hash("0e3e2357e806b6cdb1f70b54c3a3a17b6714ee1f0e68bebb44a74b1efd512098"),
    1231469665,
    0x1D00FFFF,
    2573394689,
)
BITCOIN_2 = BlockHeader(
    1,
    BITCOIN_1.hash,
    hex_to_hash("9b0fc92260312ce44e74ef369f5c66bbb85848f2eddd5a7a1cde251e54ccfdd5"),
    1231469744,
    0x1D00FFFF,
    1639830024,
)
BITCOIN_WORK = 0x100010001  # Bitcoin Core's chainwork of the genesis block


def test_bitcoin_genesis_only() -> None:
    genesis = BITCOIN.genesis_header
    assert genesis.hash_hex == "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
    expected = VerifiedChain(genesis.hash, 0, BITCOIN_WORK)
    assert verify([], genesis.hash, BITCOIN, BITCOIN_NOW) == expected
    assert verify([genesis.serialized], genesis.hash, BITCOIN, BITCOIN_NOW) == expected


def test_bitcoin_blocks_one_and_two() -> None:
    assert BITCOIN_1.hash_hex == "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048"
    assert BITCOIN_2.hash_hex == "000000006a625f06636b8bb6ac7b960a8d03705d1ace08b1a19da3fdcc99ddbd"
    result = verify([BITCOIN.genesis_header, BITCOIN_1, BITCOIN_2], BITCOIN_2.hash, BITCOIN, BITCOIN_NOW)
    assert result == VerifiedChain(BITCOIN_2.hash, 2, 3 * BITCOIN_WORK)
    assert hash_to_hex(result.tip) == BITCOIN_2.hash_hex


def test_a_made_up_bitcoin_block_one_is_high_hash() -> None:
    genesis = BITCOIN.genesis_header
    fake = BlockHeader(1, genesis.hash, sha256d(b"made up transactions"), genesis.time + 600, 0x1D00FFFF, 0)
    assert not meets(fake.serialized, 0xFFFF << 208)  # bits 0x1d00ffff: exponent 29 bytes
    assert rejection([fake], fake.hash, BITCOIN, BITCOIN_NOW) == (1, "high-hash")


def test_tampered_bitcoin_headers() -> None:
    other_nonce = dataclasses.replace(BITCOIN_1, nonce=BITCOIN_1.nonce ^ 1)
    assert not meets(other_nonce.serialized, 0xFFFF << 208)
    assert rejection([other_nonce], other_nonce.hash, BITCOIN, BITCOIN_NOW) == (1, "high-hash")
    easier = dataclasses.replace(BITCOIN_1, bits=0x1D01FFFF)
    assert rejection([easier], easier.hash, BITCOIN, BITCOIN_NOW) == (1, "bad-diffbits")
    assert rejection([BITCOIN_2], BITCOIN_2.hash, BITCOIN, BITCOIN_NOW) == (1, "bad-prevblk")
    # Seen from before block 2 was mined (more than two hours before its timestamp), it is too new.
    too_early = BITCOIN_2.time - BITCOIN.max_future_block_time - 1
    assert rejection([BITCOIN_1, BITCOIN_2], BITCOIN_2.hash, BITCOIN, too_early) == (2, "time-too-new")


def test_a_verifier_resumes_after_a_rejection_at_a_retarget_height(
    retarget_chain: tuple[ChainBuilder, list[Block]],
) -> None:
    """A rejected header must not leave its retarget behind: feeding the right one next works."""
    _, blocks = retarget_chain
    verifier = HeaderChainVerifier(RETARGET, blocks[11].hash, retarget_now(blocks))
    raws = [b.header.serialized for b in blocks]
    wrong = dataclasses.replace(blocks[9].header, bits=RETARGET.genesis_header.bits)
    with pytest.raises(HeaderChainError) as exc:
        verifier.feed([*raws[:9], wrong.serialized])
    assert (exc.value.height, exc.value.reason) == (10, "bad-diffbits")
    assert verifier.feed(raws[9:12])
    assert verifier.result().height == 12
