"""``cairn-wallet verify --headers-file``: raw header files from a ChainBuilder chain (and tampered copies), and
Bitcoin's own first ten mainnet headers under Bitcoin's rules."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from chain.block import BlockHeader
from chain.builder import ChainBuilder
from chain.hashes import hash_to_hex
from chain.mining import solve_header
from chain.params import BITCOIN, REGTEST
from tests.conftest import load_shared
from tests.wallet.conftest import fails, high_hash, ok, run

HEIGHT = 45

# Bitcoin mainnet blocks 0-9: each hash starts with eight zero hex digits (real proof of work at difficulty 1),
# so a wrong digit here could not go unnoticed. Written back to back they make a raw header file.
BITCOIN_HEADERS = [
    "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c",
    "010000006fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000982051fd1e4ba744bbbe680e1fee14677ba1a3c3540bf7b1cdb606e857233e0e61bc6649ffff001d01e36299",
    "010000004860eb18bf1b1620e37e9490fc8a427514416fd75159ab86688e9a8300000000d5fdcc541e25de1c7a5addedf24858b8bb665c9f36ef744ee42c316022c90f9bb0bc6649ffff001d08d2bd61",
    "01000000bddd99ccfda39da1b108ce1a5d70038d0a967bacb68b6b63065f626a0000000044f672226090d85db9a9f2fbfe5f0f9609b387af7be5b7fbb7a1767c831c9e995dbe6649ffff001d05e0ed6d",
    "010000004944469562ae1c2c74d9a535e00b6f3e40ffbad4f2fda3895501b582000000007a06ea98cd40ba2e3288262b28638cec5337c1456aaf5eedc8e9e5a20f062bdf8cc16649ffff001d2bfee0a9",
    "0100000085144a84488ea88d221c8bd6c059da090e88f8a2c99690ee55dbba4e00000000e11c48fecdd9e72510ca84f023370c9a38bf91ac5cae88019bee94d24528526344c36649ffff001d1d03e477",
    "01000000fc33f596f822a0a1951ffdbf2a897b095636ad871707bf5d3162729b00000000379dfb96a5ea8c81700ea4ac6b97ae9a9312b2d4301a29580e924ee6761a2520adc46649ffff001d189c4c97",
    "010000008d778fdc15a2d3fb76b7122a3b5582bea4f21f5a0c693537e7a03130000000003f674005103b42f984169c7d008370967e91920a6a5d64fd51282f75bc73a68af1c66649ffff001d39a59c86",
    "010000004494c8cf4154bdcc0720cd4a59d9c9b285e4b146d45f061d2b6c967100000000e3855ed886605b6d4a99d5fa2ef2e9b0b164e63df3c4136bebf2d0dac0f1f7a667c86649ffff001d1c4b5666",
    "01000000c60ddef1b7618ca2348a46e868afc26e3efc68226c78aa47f8488c4000000000c997a5e56e104102fa209c6a852dd90660a20b2d9c352423edce25857fcd37047fca6649ffff001d28404f53",
]
BITCOIN_BLOCK_5 = "000000009b7262315dbf071787ad3656097b892abffd1f95a1a022f896f533fc"
BITCOIN_BLOCK_9 = "000000008d9dc510f23c2657fc4f67bea30078cc05a90eb89e84cc475c080805"


@pytest.fixture(scope="module")
def builder() -> ChainBuilder:
    builder = ChainBuilder(REGTEST)
    builder.add_chain(HEIGHT)
    return builder


@pytest.fixture(scope="module")
def headers(builder: ChainBuilder) -> list[bytes]:
    """Raw headers of heights 0..HEIGHT."""
    chain = [builder.tip]
    while chain[-1].hash != REGTEST.genesis_hash:
        chain.append(builder.blocks[chain[-1].header.prev_hash])
    return [b.header.serialize() for b in reversed(chain)]


def write(tmp_path: Path, raw: list[bytes] | bytes, name: str = "headers.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(raw if isinstance(raw, bytes) else b"".join(raw))
    return path


def verify(path: Path, tip: str, *extra: str, exit_code: int) -> dict:
    result = run("--network", "regtest", "verify", "--tip", tip, "--headers-file", str(path), *extra, "--json")
    assert result.exit_code == exit_code, result.output
    return json.loads(result.stdout)


def tip_of(raw: bytes) -> str:
    return BlockHeader.parse(raw).hash_hex


def test_a_valid_header_file_passes(tmp_path: Path, headers: list[bytes]) -> None:
    path = write(tmp_path, headers)
    data = verify(path, tip_of(headers[-1]), exit_code=0)
    assert data["valid"] is True and data["height"] == HEIGHT and data["bad_sources"] == []
    (source,) = data["sources"]
    assert source["source"] == str(path) and source["tip"] == tip_of(headers[-1]) and source["chainwork"] > 0
    text = ok("--network", "regtest", "verify", "--tip", tip_of(headers[-1]), "--headers-file", str(path)).output
    assert f"VALID: the chain ending at the trusted tip checks out (height {HEIGHT})" in text


def test_headers_after_the_trusted_tip_are_ignored(tmp_path: Path, headers: list[bytes]) -> None:
    broken = [*headers, b"\x00" * 80]  # garbage after the tip does not matter
    data = verify(write(tmp_path, broken), tip_of(headers[20]), exit_code=0)
    assert data["height"] == 20


def test_a_file_without_genesis_passes_too(tmp_path: Path, headers: list[bytes]) -> None:
    assert verify(write(tmp_path, headers[1:]), tip_of(headers[-1]), exit_code=0)["height"] == HEIGHT


def flip(raw: bytes, offset: int) -> bytes:
    changed = bytearray(raw)
    changed[offset] ^= 0x01
    return bytes(changed)


@pytest.mark.parametrize(
    ("name", "tamper", "height", "reason"),
    [
        ("prev-hash bit", lambda h: [*h[:17], flip(h[17], 4), *h[18:]], 17, "bad-prevblk"),
        ("bits", lambda h: [*h[:17], flip(h[17], 72), *h[18:]], 17, "bad-diffbits"),
        ("nonce", lambda h: [*h[:30], high_hash(h[30]), *h[31:]], 30, "high-hash"),
        ("swapped", lambda h: [*h[:10], h[11], h[10], *h[12:]], 10, "bad-prevblk"),
        ("dropped", lambda h: h[:10] + h[11:], 10, "bad-prevblk"),
        ("truncated", lambda h: b"".join(h)[: 25 * 80 + 30], 25, "bad-header-length"),
        ("ragged end", lambda h: b"".join(h)[:-1], HEIGHT, "bad-header-length"),
    ],
)
def test_tampered_copies_fail_at_the_right_height(
    tmp_path: Path, headers: list[bytes], name: str, tamper: object, height: int, reason: str
) -> None:
    path = write(tmp_path, tamper(headers))  # type: ignore[operator]
    data = verify(path, tip_of(headers[-1]), exit_code=1)
    (source,) = data["sources"]
    assert (source["reason"], source["bad_height"]) == (reason, height), name
    assert source["height"] == height - 1 and data["valid"] is False and data["bad_sources"] == [str(path)]
    result = fails("--network", "regtest", "verify", "--tip", tip_of(headers[-1]), "--headers-file", str(path))
    assert f"INVALID at height {height}: {reason}" in result.output
    assert "Error: no source served a valid chain ending at the trusted tip" in result.output


def test_a_file_that_stops_short_of_the_tip_fails(tmp_path: Path, headers: list[bytes]) -> None:
    data = verify(write(tmp_path, headers[:31]), tip_of(headers[-1]), exit_code=1)
    (source,) = data["sources"]
    assert source["reason"] == "trusted-tip-not-found" and source["height"] == 30 and source["bad_height"] is None


def test_an_unknown_tip_fails(tmp_path: Path, headers: list[bytes]) -> None:
    data = verify(write(tmp_path, headers), "11" * 32, exit_code=1)
    assert data["sources"][0]["reason"] == "trusted-tip-not-found"
    assert data["sources"][0]["height"] == HEIGHT


def test_a_file_of_another_network_fails_at_height_1(tmp_path: Path, headers: list[bytes]) -> None:
    path = write(tmp_path, headers)
    result = run("--network", "devnet", "verify", "--tip", tip_of(headers[-1]), "--headers-file", str(path), "--json")
    assert result.exit_code == 1
    source = json.loads(result.stdout)["sources"][0]
    assert (source["reason"], source["bad_height"]) == ("bad-prevblk", 1)


def mined_chain(builder_time: dict[int, int]) -> list[bytes]:
    """A fresh valid-looking chain whose block at each given height carries the given timestamp (properly mined)."""
    builder = ChainBuilder(REGTEST)
    parent = builder.genesis
    chain = [parent]
    for height in range(1, 20):
        block = builder.add_block(parent, time=builder_time.get(height))
        chain.append(block)
        parent = block
    return [b.header.serialize() for b in chain]


@pytest.mark.parametrize(
    ("times", "height", "reason"),
    [
        ({12: REGTEST.genesis_header.time + 3}, 12, "time-too-old"),  # not after the median of the last 11
        ({7: int(time.time()) + 3 * 3600}, 7, "time-too-new"),  # regtest allows 2 hours ahead
    ],
)
def test_timestamp_rules_are_checked(tmp_path: Path, times: dict[int, int], height: int, reason: str) -> None:
    raw = mined_chain(times)
    data = verify(write(tmp_path, raw), tip_of(raw[-1]), exit_code=1)
    assert (data["sources"][0]["reason"], data["sources"][0]["bad_height"]) == (reason, height)


def test_a_chain_mined_with_wrong_bits_fails(tmp_path: Path, headers: list[bytes]) -> None:
    """A properly solved header at an easier-than-allowed target: PoW alone is not enough."""
    parent = BlockHeader.parse(headers[5])
    easy = BlockHeader(1, parent.hash, bytes(32), parent.time + 1, 0x207FFFFE, 0)
    solved = solve_header(easy)
    assert solved is not None
    data = verify(write(tmp_path, [*headers[:6], solved.serialize()]), solved.hash_hex, exit_code=1)
    assert (data["sources"][0]["reason"], data["sources"][0]["bad_height"]) == ("bad-diffbits", 6)


# ---------------------------------------------------------------- Bitcoin's own headers


@pytest.fixture
def bitcoin_file(tmp_path: Path) -> Path:
    return write(tmp_path, [bytes.fromhex(h) for h in BITCOIN_HEADERS], "blockchain_headers")


def test_bitcoin_genesis_matches_the_shared_real_block() -> None:
    rows = [row for row in load_shared("bitcoin-checkblock-valid.json") if len(row) == 5]
    genesis = next(row for row in rows if row[0] == "Genesis block")
    assert bytes.fromhex(genesis[4])[:80] == bytes.fromhex(BITCOIN_HEADERS[0]) == BITCOIN.genesis_header.serialize()


def test_bitcoin_headers_verify_under_bitcoin_rules(bitcoin_file: Path) -> None:
    for tip, height in ((BITCOIN_BLOCK_9, 9), (BITCOIN_BLOCK_5, 5)):
        result = ok("verify", "--network", "bitcoin", "--tip", tip, "--headers-file", str(bitcoin_file), "--json")
        data = json.loads(result.stdout)
        assert data["valid"] is True and data["height"] == height and data["network"] == "bitcoin"
    assert hash_to_hex(BlockHeader.parse(bytes.fromhex(BITCOIN_HEADERS[9])).hash) == BITCOIN_BLOCK_9


def test_bitcoin_headers_fail_under_cairn_rules(bitcoin_file: Path) -> None:
    result = fails("verify", "--network", "regtest", "--tip", BITCOIN_BLOCK_9, "--headers-file", str(bitcoin_file))
    assert "INVALID at height 1: bad-prevblk" in result.output


def test_a_tampered_bitcoin_header_fails_proof_of_work(tmp_path: Path) -> None:
    raw = [bytes.fromhex(h) for h in BITCOIN_HEADERS]
    raw[4] = flip(raw[4], 79)  # a nonce bit: the hash now misses difficulty 1 by a factor of about 2**32
    path = write(tmp_path, raw)
    result = run("verify", "--network", "bitcoin", "--tip", BITCOIN_BLOCK_9, "--headers-file", str(path), "--json")
    assert result.exit_code == 1
    source = json.loads(result.stdout)["sources"][0]
    assert (source["reason"], source["bad_height"]) == ("high-hash", 4)
