"""Properties of serialization, compact bits and merkle proofs, checked on generated objects (hypothesis).

Every property runs a bounded number of examples with no deadline (shared 2-core machines).

A note on canonical form: ``parse`` keeps the bytes it read as the object's cached
``serialized`` (and so its txid/hash). So "re-serializing gives the same bytes" is
checked on a fresh copy (``dataclasses.replace``), whose serialization is computed
from its fields: that is what proves the cached bytes, and the hash over them, honest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from chain.block import HEADER_SIZE, Block, BlockHeader
from chain.encoding import MAX_VARINT, Reader, varint
from chain.errors import BlockError, DecodeError
from chain.merkle import MerkleProof, merkle_proof, merkle_root, tree_depth
from chain.params import REGTEST
from chain.pow import decode_compact, encode_compact
from chain.transaction import INPUT_SIZE, NULL_OUTPOINT, OutPoint, Transaction, TxIn, TxOut
from chain.validation import check_block, check_block_structure
from tests.conftest import load_shared

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

u32s = st.integers(0, (1 << 32) - 1)
hash32 = st.binary(min_size=32, max_size=32)
txins = st.builds(
    TxIn, st.builds(OutPoint, hash32, u32s), st.binary(min_size=33, max_size=33), st.binary(min_size=64, max_size=64)
)
txouts = st.builds(TxOut, st.integers(-(1 << 63), (1 << 63) - 1), st.binary(min_size=20, max_size=20))
transactions = st.builds(
    Transaction, u32s, st.lists(txins, max_size=4).map(tuple), st.lists(txouts, max_size=4).map(tuple)
)
headers = st.builds(BlockHeader, u32s, hash32, hash32, u32s, u32s, u32s)
blocks = st.builds(Block, headers, st.lists(transactions, max_size=4).map(tuple))

coinbases = st.builds(
    lambda version, data, outputs: Transaction(version, (TxIn(NULL_OUTPOINT, bytes(33), data),), outputs),
    u32s,
    st.binary(min_size=64, max_size=64),
    st.lists(txouts, min_size=1, max_size=3).map(tuple),
)


@st.composite
def well_formed_blocks(draw: st.DrawFn) -> Block:
    """A coinbase, then distinct non-coinbase transactions, under a header committing to them."""
    txs = (
        draw(coinbases),
        *draw(st.lists(transactions.filter(lambda tx: not tx.is_coinbase), max_size=4, unique_by=lambda tx: tx.txid)),
    )
    header = replace(draw(headers), merkle_root=merkle_root([tx.txid for tx in txs]))
    return Block(header, txs)


def fresh(obj: Transaction | BlockHeader | Block) -> Transaction | BlockHeader | Block:
    """A copy built from the fields alone, with nothing cached from parsing."""
    if isinstance(obj, Block):
        return Block(replace(obj.header), tuple(replace(tx) for tx in obj.transactions))
    return replace(obj)


def count_positions(tx: Transaction, start: int) -> list[int]:
    """Offsets of the input and output counts of ``tx`` serialized at ``start`` (each one byte here)."""
    return [start + 4, start + 5 + len(tx.inputs) * INPUT_SIZE]


def change_one_byte(data: bytes, draw: st.DrawFn, hot: Sequence[int] = ()) -> tuple[int, bytes]:
    """``data`` with one byte replaced; the position is anywhere, or (half the time) one of ``hot``."""
    anywhere = st.integers(0, len(data) - 1)
    position = draw(st.one_of(anywhere, st.sampled_from(hot)) if hot else anywhere, label="position")
    mask = draw(st.integers(1, 255), label="xor mask")
    return position, data[:position] + bytes((data[position] ^ mask,)) + data[position + 1 :]


# ------------------------------------------------------------------ round trips


@PROPERTY
@given(transactions)
def test_transaction_round_trip(tx: Transaction) -> None:
    raw = tx.serialize()
    parsed = Transaction.parse(raw)
    assert parsed == tx
    assert parsed.txid == tx.txid
    assert fresh(parsed).serialize() == raw
    assert len(raw) == parsed.size


@PROPERTY
@given(headers)
def test_header_round_trip(header: BlockHeader) -> None:
    raw = header.serialize()
    assert len(raw) == HEADER_SIZE
    parsed = BlockHeader.parse(raw)
    assert parsed == header
    assert parsed.hash == header.hash
    assert fresh(parsed).serialize() == raw


@PROPERTY
@given(blocks)
def test_block_round_trip(block: Block) -> None:
    raw = block.serialize()
    parsed = Block.parse(raw)
    assert parsed == block
    assert parsed.hash == block.hash
    assert [tx.txid for tx in parsed.transactions] == [tx.txid for tx in block.transactions]
    assert fresh(parsed).serialize() == raw


@settings(max_examples=10, deadline=None)
@given(st.integers(0xFA, 0x102), txouts)
def test_counts_across_the_one_byte_varint_boundary(n: int, txout: TxOut) -> None:
    tx = Transaction(1, (), (txout,) * n)
    raw = tx.serialize()
    count = bytes((n,)) if n < 0xFD else b"\xfd" + n.to_bytes(2, "little")
    assert raw[4:5] == b"\x00"  # no inputs
    assert raw[5 : 5 + len(count)] == count
    assert len(raw) == 5 + len(count) + n * 28
    assert Transaction.parse(raw) == tx


# ------------------------------------------------------------------ one byte changed


@PROPERTY
@given(transactions, st.data())
def test_a_changed_byte_breaks_a_transaction_or_its_txid(tx: Transaction, data: st.DataObject) -> None:
    _, mutated = change_one_byte(tx.serialize(), data.draw, count_positions(tx, 0))
    try:
        changed = Transaction.parse(mutated)
    except DecodeError as exc:
        assert exc.reason == "bad-encoding"
        event("does not parse")
        return
    event("parses")
    assert fresh(changed).serialize() == mutated  # what parses is canonical: the txid covers these bytes
    assert changed.txid != tx.txid
    assert changed != tx


@PROPERTY
@given(headers, st.data())
def test_a_changed_byte_changes_a_header_hash(header: BlockHeader, data: st.DataObject) -> None:
    _, mutated = change_one_byte(header.serialize(), data.draw)
    changed = BlockHeader.parse(mutated)  # any 80 bytes are a header
    assert changed.hash != header.hash
    assert changed != header


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(well_formed_blocks(), st.data())
def test_a_changed_byte_breaks_a_block_its_hash_or_its_merkle_root(block: Block, data: st.DataObject) -> None:
    check_block_structure(block.header, block.transactions)  # the original is well formed
    hot = [HEADER_SIZE]  # the transaction count, then each transaction's input and output counts
    start = HEADER_SIZE + 1
    for tx in block.transactions:
        hot += count_positions(tx, start)
        start += tx.size
    position, mutated = change_one_byte(block.serialize(), data.draw, hot)
    try:
        changed = Block.parse(mutated)
    except DecodeError as exc:
        assert exc.reason == "bad-encoding"
        event("does not parse")
        return
    assert fresh(changed).serialize() == mutated
    txids = [tx.txid for tx in changed.transactions]
    if changed.hash != block.hash:
        # Either the header changed (another block, which must meet proof of work on its own) ...
        assert position < HEADER_SIZE
        event("another header")
        return
    # ... or it did not, and then the transactions did: their merkle root no longer matches.
    assert position >= HEADER_SIZE
    assert txids != [tx.txid for tx in block.transactions]
    assert merkle_root(txids) != changed.header.merkle_root
    with pytest.raises(BlockError) as exc:
        check_block_structure(changed.header, changed.transactions)
    # The merkle root is checked before anything else about the transactions (a changed outpoint
    # can make or unmake a coinbase, but a block whose transactions are not the ones its header
    # commits to is rejected as such, never for what those other transactions contain).
    assert exc.value.reason == "bad-txnmrklroot"
    with pytest.raises(BlockError) as exc2:
        check_block(changed, REGTEST, check_pow=False)
    assert exc2.value.reason == "bad-txnmrklroot"
    event("same header, other transactions")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(coinbases, transactions), max_size=5), headers, st.data())
def test_structure_rules_in_their_order(txs: list[Transaction], header: BlockHeader, data: st.DataObject) -> None:
    # Any mix of coinbases and other transactions, sometimes with one repeated.
    if txs and data.draw(st.booleans(), label="repeat one"):
        txs.insert(data.draw(st.integers(0, len(txs)), label="at"), data.draw(st.sampled_from(txs), label="which"))
    txids = [tx.txid for tx in txs]
    # Under a header that does not commit to them, the merkle root is the only complaint.
    wrong_root = data.draw(hash32.filter(lambda h: h != merkle_root(txids)), label="wrong root")
    with pytest.raises(BlockError) as exc:
        check_block_structure(replace(header, merkle_root=wrong_root), txs)
    assert exc.value.reason == "bad-txnmrklroot"
    # Under a header that commits to them, the first structural fault in this order is reported.
    committed = replace(header, merkle_root=merkle_root(txids))
    if len(set(txids)) != len(txids):
        expected = "bad-txns-duplicate"
    elif not txs:
        expected = "bad-blk-length"
    elif not txs[0].is_coinbase:
        expected = "bad-cb-missing"
    elif any(tx.is_coinbase for tx in txs[1:]):
        expected = "bad-cb-multiple"
    else:
        check_block_structure(committed, txs)
        event("well formed")
        return
    with pytest.raises(BlockError) as exc:
        check_block_structure(committed, txs)
    assert exc.value.reason == expected
    event(expected)


# ------------------------------------------------------------------ truncation and trailing bytes


@PROPERTY
@given(st.one_of(transactions, headers, blocks), st.data())
def test_every_truncation_is_rejected(obj: Transaction | BlockHeader | Block, data: st.DataObject) -> None:
    raw = obj.serialize()
    cut = data.draw(st.integers(0, len(raw) - 1), label="cut")
    with pytest.raises(DecodeError) as exc:
        type(obj).parse(raw[:cut])
    assert exc.value.reason == "bad-encoding"


@PROPERTY
@given(st.one_of(transactions, headers, blocks), st.binary(min_size=1, max_size=200))
def test_trailing_bytes_are_rejected(obj: Transaction | BlockHeader | Block, extra: bytes) -> None:
    with pytest.raises(DecodeError) as exc:
        type(obj).parse(obj.serialize() + extra)
    assert exc.value.reason == "bad-encoding"


# ------------------------------------------------------------------ varints


@PROPERTY
@given(st.integers(0, (1 << 64) - 1))
def test_varints_decode_only_in_their_shortest_form(n: int) -> None:
    forms = [(b"\xfd", 2), (b"\xfe", 4), (b"\xff", 8)]
    shortest = varint(n)
    if n <= MAX_VARINT:
        reader = Reader(shortest)
        assert reader.varint() == n
        reader.finish()
    else:
        with pytest.raises(DecodeError):
            Reader(shortest).varint()
    for prefix, width in forms:
        if n >= 1 << (8 * width):
            continue  # does not fit this width at all
        encoded = prefix + n.to_bytes(width, "little")
        if encoded == shortest:
            continue
        assert len(encoded) > len(shortest)
        with pytest.raises(DecodeError) as exc:
            Reader(encoded).varint()
        assert exc.value.reason == "bad-encoding"


# ------------------------------------------------------------------ compact bits


def keep_top_three_bytes(target: int) -> int:
    """``target`` cut to the first three bytes of its big-endian form with room for a sign bit.

    That is Bitcoin's compact precision: a 3-byte mantissa whose top bit is a sign, so a
    target whose leading byte is 0x80 or more keeps only two significant bytes.
    """
    length = (target.bit_length() + 8) // 8  # bytes, counting a leading sign bit
    drop = 8 * max(0, length - 3)
    return target >> drop << drop


@PROPERTY
@given(st.one_of(st.integers(0, (1 << 256) - 1), st.integers(0, 1 << 40), st.integers(1, 64).map(lambda k: 1 << k)))
def test_compact_round_trip_keeps_the_top_bytes(target: int) -> None:
    bits = encode_compact(target)
    decoded, negative, overflow = decode_compact(bits)
    assert (negative, overflow) == (False, False)
    assert decoded == keep_top_three_bytes(target)
    assert encode_compact(decoded) == bits  # a decoded target is exactly representable


def test_compact_round_trip_on_real_bitcoin_targets() -> None:
    rows = load_shared("bitcoin-mainnet-checkpoints.json")
    assert len(rows) == 473
    for _, target in rows:
        assert keep_top_three_bytes(target) == target  # real targets come from bits
        assert decode_compact(encode_compact(target)) == (target, False, False)


def test_compact_precision_by_hand() -> None:
    assert keep_top_three_bytes(0x7FFFFF) == 0x7FFFFF
    assert keep_top_three_bytes(0xFFFFFF) == 0xFFFF00  # sign byte needed: two bytes kept
    assert keep_top_three_bytes(0x12345678) == 0x12345600
    assert encode_compact(0x12345678) == 0x04123456
    assert encode_compact(0xFFFFFF) == 0x0400FFFF
    assert encode_compact(0x80) == 0x02008000


# ------------------------------------------------------------------ merkle proofs


@PROPERTY
@given(st.lists(hash32, min_size=1, max_size=40, unique=True), st.data())
def test_merkle_proofs(leaves: list[bytes], data: st.DataObject) -> None:
    root = merkle_root(leaves)
    n = len(leaves)
    for index in range(n):
        proof = merkle_proof(leaves, index)
        assert proof.verify(root)
        assert len(proof.branch) == tree_depth(n)
    index = data.draw(st.integers(0, n - 1), label="index")
    proof = merkle_proof(leaves, index)
    # Another leaf at the same place: the root differs.
    other_leaf = data.draw(hash32.filter(lambda h: h != leaves[index]), label="other leaf")
    assert not replace(proof, txid=other_leaf).verify(root)
    # The right leaf at another place (leaves are distinct): the path hashes the other way somewhere.
    if n > 1:
        other = data.draw(st.integers(0, n - 1).filter(lambda i: i != index), label="other index")
        assert not replace(proof, index=other).verify(root)
    # Another count: refused when the depth differs or the index falls outside it. A count of the
    # same depth leads to the same root: the root commits to the leaves, not to their number.
    count = data.draw(st.integers(0, 130).filter(lambda c: c != n), label="count")
    wrong = MerkleProof(proof.txid, index, count, proof.branch)
    if tree_depth(count) != tree_depth(n) or index >= count:
        assert wrong.root() is None
        assert not wrong.verify(root)
    else:
        assert wrong.root() == root
