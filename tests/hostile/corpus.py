"""The invalid corpus: named invalid blocks and transactions, each with the reason code it must be refused with.

Modelled on the categories of Bitcoin Core's ``test/functional/feature_block.py`` and
``p2p_invalid_tx.py``. Every case is made fresh from a ``Base`` (a regtest chain of 15
blocks and one pooled transaction), so the HTTP and the P2P runs of a case send
different objects of the same kind. ``p2p_points`` is the misbehaviour score the
sending peer must end with (100 is a ban); ``0`` marks failures an honest peer can
cause by racing a block or a reorg (as in Bitcoin Core, which does not punish them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from chain import crypto
from chain.block import Block, BlockHeader
from chain.builder import ChainBuilder, Key, Spendable, sign_transaction
from chain.hashes import hash_to_hex, sha256d
from chain.params import REGTEST
from chain.pow import target_from_bits
from chain.transaction import (
    COIN,
    MAX_MONEY,
    NULL_OUTPOINT,
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    make_coinbase,
    signature_hash,
)
from chain.validation import median_time_past
from tests.helpers import rebuild

MINER = Key()
PAYEE = Key()
THIEF = Key()
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@dataclass
class Base:
    """A regtest chain of 15 blocks: block 12 spends coinbase 1, the pool spends coinbase 2.

    At the next height (16) the coinbases of blocks 3..6 are mature and that of block 7 is not.
    """

    builder: ChainBuilder
    blocks: list[Block]  # blocks[h] is the block at height h (blocks[0] is genesis)
    spent: Spendable  # coinbase 1, spent on the chain in block 12
    pooled: Spendable  # coinbase 2, spent by ``pool_tx``
    pool_tx: Transaction
    mature: list[Spendable]  # coinbases 3..6
    immature: Spendable  # coinbase 7
    parent: Block | None = None  # where new blocks go: the tip, or the last block a case's setup gave the node

    @property
    def tip(self) -> Block:
        return self.blocks[-1]

    def next(self, transactions: tuple[Transaction, ...] = (), **kwargs: object) -> Block:
        """A valid (solved) block on ``parent`` (default: the tip) paying subsidy plus ``fees``."""
        return self.builder.next_block(self.parent or self.tip, transactions, **kwargs)  # type: ignore[arg-type]

    def pay(self, spend: Spendable, amount: int = COIN, fee: int = 1000) -> Transaction:
        return self.builder.spend([spend], PAYEE.pubkey_hash, amount, fee=fee)


def make_base() -> Base:
    builder = ChainBuilder(REGTEST, miner=MINER)
    blocks = [builder.genesis, *builder.add_chain(11)]
    coinbase = [builder.coinbase_spendable(b) for b in blocks[1:8]]  # coinbase[i]: the block at height i + 1
    spending = builder.spend([coinbase[0]], PAYEE.pubkey_hash, 10 * COIN, fee=1000)
    blocks.append(builder.add_block(transactions=[spending], fees=1000))
    blocks += builder.add_chain(3)
    pool_tx = builder.spend([coinbase[1]], PAYEE.pubkey_hash, 10 * COIN, fee=1000)
    return Base(builder, blocks, coinbase[0], coinbase[1], pool_tx, coinbase[2:6], coinbase[6])


@dataclass(frozen=True)
class Payload:
    """What a sender delivers: the serialization, the hash it announces, and for a block the header it serves."""

    raw: bytes
    announced: bytes
    header: BlockHeader | None = None

    @property
    def announced_hex(self) -> str:
        return hash_to_hex(self.announced)


def block_payload(block: Block) -> Payload:
    return Payload(block.serialized, block.hash, block.header)


def tx_payload(tx: Transaction) -> Payload:
    return Payload(tx.serialized, tx.txid)


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "block" or "tx"
    make: Callable[[Base], Payload]
    reason: str
    p2p_points: int
    setup: Callable[[Base], list[Block]] = field(default=lambda base: [])
    """Blocks the node is given first, directly (valid ones are accepted, invalid ones refused)."""
    header_rule: bool = False  # refused on its header: over P2P the block itself is never downloaded


# ---------------------------------------------------------------- helpers


def mtp(base: Base) -> int:
    return median_time_past([b.header.time for b in base.blocks[-REGTEST.median_time_span :]])


def unsolved(header: BlockHeader) -> BlockHeader:
    """``header`` with the first nonce whose hash is above the target (every other one, on regtest)."""
    target = target_from_bits(header.bits, REGTEST.pow_limit)
    nonce = 0
    while int.from_bytes(replace(header, nonce=nonce).hash, "little") <= target:
        nonce += 1
    return replace(header, nonce=nonce)


def with_signature(tx: Transaction, index: int, signature: bytes) -> Transaction:
    inputs = list(tx.inputs)
    inputs[index] = replace(inputs[index], signature=signature)
    return replace(tx, inputs=tuple(inputs))


def high_s(tx: Transaction) -> Transaction:
    """The same valid signature with s replaced by n - s: it verifies, but is the malleated twin."""
    sig = tx.inputs[0].signature
    s = int.from_bytes(sig[32:], "big")
    return with_signature(tx, 0, sig[:32] + (SECP256K1_ORDER - s).to_bytes(32, "big"))


def signed_by_thief(base: Base, spend: Spendable, amount: int = COIN) -> Transaction:
    """The owner's public key, but a signature made with another key."""
    tx = base.pay(spend, amount)
    digest = signature_hash(tx, 0, spend.txout, REGTEST.magic)
    return with_signature(tx, 0, crypto.sign(THIEF.secret, digest))


def signed_over_other_data(base: Base, spend: Spendable) -> Transaction:
    """A signature by the right key over another transaction's signature hash (other outputs)."""
    tx = base.pay(spend, amount=COIN)
    other = base.pay(spend, amount=2 * COIN)
    digest = signature_hash(other, 0, spend.txout, REGTEST.magic)
    return with_signature(tx, 0, crypto.sign(spend.key.secret, digest))


def missing_coin() -> Spendable:
    return Spendable(OutPoint(sha256d(b"no such transaction"), 0), TxOut(50 * COIN, MINER.pubkey_hash), MINER)


def unsigned(inputs: list[Spendable], outputs: list[TxOut]) -> Transaction:
    return sign_transaction(1, inputs, outputs, REGTEST)


def oversize_tx(base: Base) -> Transaction:
    outputs = [TxOut(0, PAYEE.pubkey_hash)] * (REGTEST.max_block_size // 28 + 1)
    return unsigned([base.mature[0]], outputs)


def double_spend_parent(base: Base) -> list[Block]:
    parent = base.builder.record(base.next((base.pay(base.mature[0]),), fees=1000))
    return [parent]


def invalid_parent(base: Base) -> list[Block]:
    return [base.builder.record(base.next(fees=1))]  # claims fees nobody paid: bad-cb-amount


def mutated_duplicate(base: Base) -> Payload:
    """CVE-2012-2459: [cb, a, b, b] has the merkle root of the valid [cb, a, b]; same header, same hash."""
    a, b = base.pay(base.mature[0]), base.pay(base.mature[1])
    valid = base.next((a, b), fees=2000)
    mutated = Block(valid.header, (*valid.transactions, b))
    return block_payload(mutated)


def raw_block(base: Base, mangle: Callable[[bytes], bytes]) -> Payload:
    block = base.next()
    return Payload(mangle(block.serialized), block.hash, block.header)


def raw_tx(base: Base, mangle: Callable[[bytes], bytes]) -> Payload:
    raw = mangle(base.pay(base.mature[0]).serialized)
    return Payload(raw, sha256d(raw))


def noncanonical_count(raw: bytes) -> bytes:
    """A block whose transaction count 1 is written as 0xfd 0x0100: the same value, a second encoding."""
    return raw[:80] + b"\xfd\x01\x00" + raw[81:]


def in_block(make_tx: Callable[[Base], Transaction]) -> Callable[[Base], Payload]:
    def make(base: Base) -> Payload:
        return block_payload(base.next((make_tx(base),)))

    return make


def alone(make_tx: Callable[[Base], Transaction]) -> Callable[[Base], Payload]:
    def make(base: Base) -> Payload:
        return tx_payload(make_tx(base))

    return make


# ---------------------------------------------------------------- invalid transactions, as a block or alone

TX_RULES: list[tuple[str, Callable[[Base], Transaction], str, int]] = [
    # name, make, reason, points over P2P when sent alone
    ("no-inputs", lambda b: Transaction(1, (), (TxOut(COIN, PAYEE.pubkey_hash),)), "bad-txns-vin-empty", 10),
    ("no-outputs", lambda b: unsigned([b.mature[0]], []), "bad-txns-vout-empty", 10),
    (
        "negative-output",
        lambda b: unsigned([b.mature[0]], [TxOut(-1, PAYEE.pubkey_hash)]),
        "bad-txns-vout-negative",
        10,
    ),
    (
        "output-above-money-range",
        lambda b: unsigned([b.mature[0]], [TxOut(MAX_MONEY + 1, PAYEE.pubkey_hash)]),
        "bad-txns-vout-toolarge",
        10,
    ),
    (
        "outputs-sum-above-money-range",
        lambda b: unsigned([b.mature[0]], [TxOut(MAX_MONEY, PAYEE.pubkey_hash), TxOut(1, PAYEE.pubkey_hash)]),
        "bad-txns-txouttotal-toolarge",
        10,
    ),
    (
        "duplicate-inputs",
        lambda b: unsigned([b.mature[0], b.mature[0]], [TxOut(COIN, PAYEE.pubkey_hash)]),
        "bad-txns-inputs-duplicate",
        10,
    ),
    (
        "null-prevout-outside-coinbase",
        lambda b: replace(
            b.pay(b.mature[0]), inputs=(b.pay(b.mature[0]).inputs[0], TxIn(NULL_OUTPOINT, bytes(33), bytes(64)))
        ),
        "bad-txns-prevout-null",
        10,
    ),
    ("oversize-transaction", oversize_tx, "bad-txns-oversize", 10),
    ("outputs-above-inputs", lambda b: b.pay(b.mature[0], amount=50 * COIN, fee=-1), "bad-txns-in-belowout", 10),
    ("spends-immature-coinbase", lambda b: b.pay(b.immature), "bad-txns-premature-spend-of-coinbase", 0),
    ("spends-missing-output", lambda b: b.pay(missing_coin()), "bad-txns-inputs-missingorspent", 0),
    ("spends-spent-output", lambda b: b.pay(b.spent), "bad-txns-inputs-missingorspent", 0),
    ("high-s-signature", lambda b: high_s(b.pay(b.mature[0])), "bad-sig-high-s", 10),
    (
        "key-of-another-owner",
        lambda b: b.pay(Spendable(b.mature[0].outpoint, b.mature[0].txout, THIEF)),
        "bad-txns-pubkey-mismatch",
        10,
    ),
    ("signature-by-wrong-key", lambda b: signed_by_thief(b, b.mature[0]), "bad-sig", 10),
    ("signature-over-other-data", lambda b: signed_over_other_data(b, b.mature[0]), "bad-sig", 10),
]

TX_CASES: list[Case] = [
    Case(f"tx-{name}", "tx", alone(make), reason, points) for name, make, reason, points in TX_RULES
]
TX_CASES += [
    Case(
        "tx-coinbase", "tx", lambda b: tx_payload(make_coinbase(16, (TxOut(COIN, PAYEE.pubkey_hash),))), "coinbase", 10
    ),
    Case("tx-double-spend-of-pooled", "tx", lambda b: tx_payload(b.pay(b.pooled, fee=2000)), "txn-mempool-conflict", 0),
    Case("tx-truncated", "tx", lambda b: raw_tx(b, lambda raw: raw[:-1]), "bad-encoding", 20),
    Case("tx-trailing-garbage", "tx", lambda b: raw_tx(b, lambda raw: raw + b"\0"), "bad-encoding", 20),
    Case("tx-empty-bytes", "tx", lambda b: raw_tx(b, lambda raw: b""), "bad-encoding", 20),
]

# A block carrying an invalid transaction is refused with the transaction's rule, and bans its sender.
BLOCK_TX_CASES: list[Case] = [
    Case(f"block-tx-{name}", "block", in_block(make), reason, 100)
    for name, make, reason, _ in TX_RULES
    if name != "oversize-transaction"  # in a block, that is the block's size rule (below)
]

BLOCK_CASES: list[Case] = [
    Case(
        "block-bad-pow",
        "block",
        lambda b: block_payload(replace_header(b.next(), unsolved)),
        "high-hash",
        100,
        header_rule=True,
    ),
    Case(
        "block-wrong-bits",
        "block",
        lambda b: block_payload(rebuild(b.next(), bits=0x200FFFFF)),
        "bad-diffbits",
        100,
        header_rule=True,
    ),
    Case(
        "block-time-at-median-time-past",
        "block",
        lambda b: block_payload(rebuild(b.next(), time=mtp(b))),
        "time-too-old",
        100,
        header_rule=True,
    ),
    Case(
        "block-time-below-median-time-past",
        "block",
        lambda b: block_payload(rebuild(b.next(), time=mtp(b) - 1)),
        "time-too-old",
        100,
        header_rule=True,
    ),
    Case(
        "block-time-too-far-ahead",
        "block",
        lambda b: block_payload(rebuild(b.next(), time=b.tip.header.time + 10 * 24 * 3600)),
        "time-too-new",
        0,  # it may become valid later: not punished (Bitcoin Core: BLOCK_TIME_FUTURE)
        header_rule=True,
    ),
    Case(
        "block-bad-merkle-root",
        "block",
        lambda b: block_payload(rebuild(b.next(), merkle_root=bytes(32))),
        "bad-txnmrklroot",
        100,
    ),
    Case("block-duplicated-transactions", "block", mutated_duplicate, "bad-txns-duplicate", 100),
    Case("block-no-transactions", "block", lambda b: block_payload(rebuild(b.next(), ())), "bad-blk-length", 100),
    Case(
        "block-missing-coinbase",
        "block",
        lambda b: block_payload(rebuild(b.next(), (b.pay(b.mature[0]),))),
        "bad-cb-missing",
        100,
    ),
    Case(
        "block-misplaced-coinbase",
        "block",
        lambda b: block_payload(misplaced_coinbase(b)),
        "bad-cb-missing",
        100,
    ),
    Case("block-second-coinbase", "block", lambda b: block_payload(second_coinbase(b)), "bad-cb-multiple", 100),
    Case("block-coinbase-pays-too-much", "block", lambda b: block_payload(b.next(fees=1)), "bad-cb-amount", 100),
    Case(
        "block-coinbase-pays-fees-not-collected",
        "block",
        lambda b: block_payload(b.next((b.pay(b.mature[0], fee=1000),), fees=1001)),
        "bad-cb-amount",
        100,
    ),
    Case("block-coinbase-wrong-height", "block", lambda b: block_payload(wrong_height(b)), "bad-cb-height", 100),
    Case(
        "block-double-spend-inside",
        "block",
        lambda b: block_payload(b.next((b.pay(b.mature[0]), b.pay(b.mature[0], amount=2 * COIN)), fees=2000)),
        "bad-txns-inputs-missingorspent",
        100,
    ),
    Case(
        "block-double-spend-across-two",
        "block",
        lambda b: block_payload(b.next((b.pay(b.mature[0], amount=2 * COIN),), fees=1000)),
        "bad-txns-inputs-missingorspent",
        100,
        setup=double_spend_parent,
    ),
    Case("block-oversize", "block", lambda b: block_payload(oversize_block(b)), "bad-blk-length", 100),
    Case("block-truncated", "block", lambda b: raw_block(b, lambda raw: raw[:-1]), "bad-encoding", 100),
    Case("block-trailing-garbage", "block", lambda b: raw_block(b, lambda raw: raw + b"\0"), "bad-encoding", 100),
    Case("block-noncanonical-count", "block", lambda b: raw_block(b, noncanonical_count), "bad-encoding", 100),
    Case(
        "block-on-invalid-parent",
        "block",
        lambda b: block_payload(b.next()),
        "bad-prevblk",
        100,
        setup=invalid_parent,
        header_rule=True,
    ),
]


def replace_header(block: Block, change: Callable[[BlockHeader], BlockHeader]) -> Block:
    return Block(change(block.header), block.transactions)


def misplaced_coinbase(base: Base) -> Block:
    block = base.next((base.pay(base.mature[0]),), fees=1000)
    return rebuild(block, (block.transactions[1], block.transactions[0]))


def second_coinbase(base: Base) -> Block:
    block = base.next()
    extra = make_coinbase(16, (TxOut(0, PAYEE.pubkey_hash),), tag=b"second")
    return rebuild(block, (*block.transactions, extra))


def wrong_height(base: Base) -> Block:
    block = base.next()
    coinbase = make_coinbase(99, block.transactions[0].outputs, tag=b"wrong height")
    return rebuild(block, (coinbase,))


def oversize_block(base: Base) -> Block:
    """A coinbase with 35,715 zero outputs: one block of just over 1,000,000 bytes."""
    block = base.next()
    outputs = (*block.transactions[0].outputs, *[TxOut(0, PAYEE.pubkey_hash)] * (REGTEST.max_block_size // 28))
    coinbase = make_coinbase(16, outputs, tag=b"oversize")
    return rebuild(block, (coinbase,))


CASES: list[Case] = TX_CASES + BLOCK_TX_CASES + BLOCK_CASES
