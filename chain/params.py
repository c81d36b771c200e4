"""Network parameters as data: one frozen ``NetworkParams`` per network.

Each constant carries the Bitcoin Core name it mirrors. Networks differ in genesis
block, magic and address version byte, so peers and addresses of different
networks cannot mix.

- ``bitcoin``: Bitcoin mainnet's header rules (genesis, proof-of-work limit, 2016-block
  retarget). Its transactions are Bitcoin's, not Cairn's: Cairn checks headers only.
- ``devnet``: the default for nodes. Five-second blocks, retargeted every 20 blocks so
  a couple of CPU cores settle on the target spacing within minutes.
- ``regtest``: for tests. Trivial difficulty (every other hash wins), no retarget.
"""

from __future__ import annotations

from dataclasses import dataclass

from chain.block import Block, BlockHeader
from chain.hashes import ZERO_HASH, hex_to_hash
from chain.transaction import COIN, TxOut, make_coinbase


@dataclass(frozen=True)
class NetworkParams:
    """The consensus constants of one network."""

    name: str
    magic: bytes  # Bitcoin Core: pchMessageStart; also committed to by every signature hash
    address_version: int  # Bitcoin Core: base58Prefixes[PUBKEY_ADDRESS]
    pow_limit: int  # Bitcoin Core: powLimit
    target_spacing: int  # Bitcoin Core: nPowTargetSpacing, seconds
    target_timespan: int  # Bitcoin Core: nPowTargetTimespan, seconds one retarget period should take
    retarget_interval: int  # Bitcoin Core: DifficultyAdjustmentInterval(); 0 means fPowNoRetargeting
    max_future_block_time: int  # Bitcoin Core: MAX_FUTURE_BLOCK_TIME, seconds
    median_time_span: int  # Bitcoin Core: nMedianTimeSpan
    coinbase_maturity: int  # Bitcoin Core: COINBASE_MATURITY, confirmations before a coinbase can be spent
    initial_subsidy: int  # 50 coins, in smallest units
    subsidy_halving_interval: int  # Bitcoin Core: nSubsidyHalvingInterval
    max_block_size: int  # bytes; Bitcoin Core (pre-segwit): MAX_BLOCK_SIZE
    genesis_header: BlockHeader
    genesis_block: Block | None  # None where only headers are checked (bitcoin)

    @property
    def genesis_hash(self) -> bytes:
        return self.genesis_header.hash

    def block_subsidy(self, height: int) -> int:
        """New coins a block at ``height`` may create (Bitcoin Core: GetBlockSubsidy)."""
        halvings = height // self.subsidy_halving_interval
        return 0 if halvings >= 64 else self.initial_subsidy >> halvings


def _cairn_genesis(tag: bytes, time: int, bits: int, nonce: int) -> Block:
    """A genesis block whose coinbase pays nothing to nobody (Bitcoin's genesis output is unspendable too)."""
    coinbase = make_coinbase(0, (TxOut(0, bytes(20)),), tag=tag)
    header = BlockHeader(1, ZERO_HASH, coinbase.txid, time, bits, nonce)
    return Block(header, (coinbase,))


BITCOIN = NetworkParams(
    name="bitcoin",
    magic=bytes.fromhex("f9beb4d9"),
    address_version=0x00,
    pow_limit=(1 << 224) - 1,  # 00000000ffffffff...
    target_spacing=600,
    target_timespan=14 * 24 * 60 * 60,
    retarget_interval=2016,
    max_future_block_time=2 * 60 * 60,
    median_time_span=11,
    coinbase_maturity=100,
    initial_subsidy=50 * COIN,
    subsidy_halving_interval=210_000,
    max_block_size=1_000_000,
    genesis_header=BlockHeader(
        version=1,
        prev_hash=ZERO_HASH,
        merkle_root=hex_to_hash("4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"),
        time=1231006505,
        bits=0x1D00FFFF,
        nonce=2083236893,
    ),
    genesis_block=None,
)

_DEVNET_GENESIS = _cairn_genesis(b"Cairn devnet genesis 2026-11-25", 1795564800, 0x1F00FFFF, nonce=6902)
_REGTEST_GENESIS = _cairn_genesis(b"Cairn regtest genesis", 1795564800, 0x207FFFFF, nonce=1)

DEVNET = NetworkParams(
    name="devnet",
    magic=bytes.fromhex("ca12de01"),
    address_version=0x1C,  # addresses start with 'C'
    pow_limit=(0xFFFF << 224),  # bits 0x1f00ffff: about 65,536 hashes a block at the easiest
    target_spacing=5,
    target_timespan=5 * 19,  # 20-block periods measure 19 intervals (Bitcoin's off-by-one), so aim at 19 spacings
    retarget_interval=20,
    max_future_block_time=60,
    median_time_span=11,
    coinbase_maturity=10,
    initial_subsidy=50 * COIN,
    subsidy_halving_interval=210_000,
    max_block_size=1_000_000,
    genesis_header=_DEVNET_GENESIS.header,
    genesis_block=_DEVNET_GENESIS,
)

REGTEST = NetworkParams(
    name="regtest",
    magic=bytes.fromhex("ca12fe02"),
    address_version=0x6F,  # addresses start with 'm' or 'n', as on Bitcoin's test networks
    pow_limit=(1 << 255) - 1,  # bits 0x207fffff: every other hash meets it
    target_spacing=600,
    target_timespan=14 * 24 * 60 * 60,
    retarget_interval=0,
    max_future_block_time=2 * 60 * 60,
    median_time_span=11,
    coinbase_maturity=10,
    initial_subsidy=50 * COIN,
    subsidy_halving_interval=150,
    max_block_size=1_000_000,
    genesis_header=_REGTEST_GENESIS.header,
    genesis_block=_REGTEST_GENESIS,
)

NETWORKS: dict[str, NetworkParams] = {p.name: p for p in (BITCOIN, DEVNET, REGTEST)}


def get_network(name: str) -> NetworkParams:
    try:
        return NETWORKS[name]
    except KeyError:
        raise ValueError(f"unknown network {name!r}; choose one of {', '.join(NETWORKS)}") from None
