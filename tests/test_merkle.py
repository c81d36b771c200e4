"""Merkle roots and proofs (chain/merkle.py): hand-built vectors, Bitcoin's real blocks, CVE-2012-2459, bad proofs."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chain.block import BlockHeader
from chain.encoding import Reader
from chain.errors import BlockError
from chain.hashes import ZERO_HASH, sha256d
from chain.merkle import MerkleProof, merkle_proof, merkle_root, tree_depth
from chain.transaction import NULL_OUTPOINT, OutPoint, Transaction, TxIn, TxOut
from chain.validation import check_block_structure
from tests.conftest import load_shared


def leaf(i: int) -> bytes:
    return sha256d(b"leaf %d" % i)


def leaves(n: int) -> list[bytes]:
    return [leaf(i) for i in range(n)]


def H(left: bytes, right: bytes) -> bytes:  # a merkle node: sha256d of its two children
    return sha256d(left + right)


# ------------------------------------------------------------------ roots by hand


def test_the_root_of_nothing_is_the_zero_hash() -> None:
    assert merkle_root([]) == ZERO_HASH


def test_the_root_of_one_hash_is_that_hash() -> None:
    assert merkle_root([leaf(0)]) == leaf(0)


def test_the_root_of_two_is_their_concatenation_hashed() -> None:
    a, b = leaves(2)
    assert merkle_root([a, b]) == sha256d(a + b)
    assert merkle_root([b, a]) != merkle_root([a, b])  # order matters


def test_odd_levels_pair_the_last_hash_with_itself() -> None:
    a, b, c, d, e = leaves(5)
    assert merkle_root([a, b, c]) == H(H(a, b), H(c, c))
    # Five leaves: level 1 is [ab, cd, ee] (odd again), level 2 is [abcd, eeee].
    assert merkle_root([a, b, c, d, e]) == H(H(H(a, b), H(c, d)), H(H(e, e), H(e, e)))


def test_seven_leaves() -> None:
    x = leaves(7)
    ab, cd, ef, gg = H(x[0], x[1]), H(x[2], x[3]), H(x[4], x[5]), H(x[6], x[6])
    assert merkle_root(x) == H(H(ab, cd), H(ef, gg))


def test_cve_2012_2459_duplicating_the_odd_tail_keeps_the_root() -> None:
    a, b, c, d, e, f = leaves(6)
    assert merkle_root([a, b, c]) == merkle_root([a, b, c, c])
    # Also one level up: [a..f] has level 1 [ab, cd, ef], which pads to [ab, cd, ef, ef],
    # exactly level 1 of [a, b, c, d, e, f, e, f].
    assert merkle_root([a, b, c, d, e, f]) == merkle_root([a, b, c, d, e, f, e, f])
    assert merkle_root([a, b, c]) != merkle_root([a, b, c, a])


def test_cve_2012_2459_is_why_blocks_reject_duplicate_txids() -> None:
    coinbase = Transaction(1, (TxIn(NULL_OUTPOINT, bytes(33), bytes(64)),), (TxOut(50, bytes(20)),))
    spends = [
        Transaction(1, (TxIn(OutPoint(leaf(i), 0), b"\x02" * 33, bytes(64)),), (TxOut(i, bytes(20)),)) for i in (1, 2)
    ]
    honest = (coinbase, *spends)
    header = BlockHeader(1, ZERO_HASH, merkle_root([tx.txid for tx in honest]), 0, 0x207FFFFF, 0)
    check_block_structure(header, honest)
    mutated = (*honest, spends[-1])  # the same header (same hash) with the last transaction twice
    assert merkle_root([tx.txid for tx in mutated]) == header.merkle_root
    with pytest.raises(BlockError) as exc:
        check_block_structure(header, mutated)
    assert exc.value.reason == "bad-txns-duplicate"


def test_tree_depth() -> None:
    assert [tree_depth(n) for n in range(1, 18)] == [0, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 5]


# ------------------------------------------------------------------ real Bitcoin blocks


def legacy_txids(block: bytes) -> tuple[BlockHeader, list[bytes]]:
    """Split a raw Bitcoin (pre-segwit) block into its header and transaction ids."""
    reader = Reader(block)
    header = BlockHeader.read(reader)
    txids = []
    for _ in range(reader.varint()):
        start = reader.pos
        reader.read(4)  # version
        for _ in range(reader.varint()):
            reader.read(36)  # outpoint
            reader.read(reader.varint())  # script
            reader.read(4)  # sequence
        for _ in range(reader.varint()):
            reader.read(8)  # value
            reader.read(reader.varint())  # script
        reader.read(4)  # lock time
        txids.append(sha256d(reader.data[start : reader.pos]))
    reader.finish()
    return header, txids


def real_blocks() -> list[tuple[str, bytes]]:
    rows = load_shared("bitcoin-checkblock-valid.json")
    return [(row[0], bytes.fromhex(row[4])) for row in rows if len(row) == 5 and not row[1]]


def test_real_bitcoin_merkle_roots_and_proofs() -> None:
    blocks = real_blocks()
    counts = {}
    for name, raw in blocks:
        header, txids = legacy_txids(raw)
        counts[name] = len(txids)
        assert merkle_root(txids) == header.merkle_root, name
        for index in range(len(txids)):
            proof = merkle_proof(txids, index)
            assert proof.verify(header.merkle_root), (name, index)
    # Block 99960 has three transactions: its root relies on pairing the third with itself.
    assert counts["Block 99960, three transactions"] == 3
    assert counts["Block 99993, four transactions"] == 4
    assert counts["Genesis block"] == 1


# ------------------------------------------------------------------ proofs


@pytest.mark.parametrize("size", range(1, 18))
def test_every_index_has_a_verifying_proof(size: int) -> None:
    hashes = leaves(size)
    root = merkle_root(hashes)
    for index in range(size):
        proof = merkle_proof(hashes, index)
        assert proof == MerkleProof(hashes[index], index, size, proof.branch)
        assert len(proof.branch) == tree_depth(size)
        assert proof.root() == root
        assert proof.verify(root)
        assert not proof.verify(merkle_root(leaves(size + 1)))
        assert not replace(proof, txid=leaf(100)).verify(root)
        for other in range(size):
            if other != index:
                assert not replace(proof, index=other).verify(root), (index, other)
        for level in range(len(proof.branch)):
            branch = list(proof.branch)
            branch[level] = sha256d(branch[level])
            assert not replace(proof, branch=tuple(branch)).verify(root)


def test_a_proof_by_hand() -> None:
    a, b, c, d, e = leaves(5)
    proof = merkle_proof([a, b, c, d, e], 2)
    assert proof.branch == (d, H(a, b), H(H(e, e), H(e, e)))
    proof = merkle_proof([a, b, c, d, e], 4)
    assert proof.branch == (e, H(e, e), H(H(a, b), H(c, d)))  # the duplicated tail is its own sibling


@pytest.mark.parametrize("index", [-1, 5, 6])
def test_no_proof_for_a_leaf_that_is_not_there(index: int) -> None:
    with pytest.raises(IndexError):
        merkle_proof(leaves(5), index)


def test_a_proof_with_a_branch_too_short_or_too_long() -> None:
    hashes = leaves(5)
    proof = merkle_proof(hashes, 3)
    assert replace(proof, branch=proof.branch[:-1]).root() is None
    assert replace(proof, branch=(*proof.branch, merkle_root(hashes))).root() is None
    assert replace(proof, branch=()).root() is None
    assert not replace(proof, branch=proof.branch[:-1]).verify(merkle_root(hashes))


@pytest.mark.parametrize("index", [-1, 5, 7, 1 << 40])
def test_a_proof_with_an_index_out_of_range(index: int) -> None:
    hashes = leaves(5)
    proof = replace(merkle_proof(hashes, 4), index=index)
    assert proof.root() is None
    assert not proof.verify(merkle_root(hashes))


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 9, 16, 17])
def test_a_proof_with_a_count_of_another_depth(count: int) -> None:
    # Five leaves give a depth-3 branch; a count with another depth (or below the index) cannot match it.
    hashes = leaves(5)
    proof = replace(merkle_proof(hashes, 3), tx_count=count)
    assert proof.root() is None
    assert not proof.verify(merkle_root(hashes))


def test_the_phantom_duplicate_position_is_refused() -> None:
    # [a, b, c] pads to [a, b, c, c]: position 3 is c again. With the true count, 3 is out of range.
    a, b, c = leaves(3)
    root = merkle_root([a, b, c])
    real = merkle_proof([a, b, c], 2)
    phantom = replace(real, index=3)
    assert phantom.root() is None
    assert not phantom.verify(root)
    with pytest.raises(IndexError):
        merkle_proof([a, b, c], 3)
    # Its branch is the very branch of index 2 (c's sibling is c itself) ...
    assert merkle_proof([a, b, c, c], 3).branch == real.branch
    # ... so the count in the proof is what tells the two apart: the root does not commit to it.
    # A verifier must take the count from the block it trusts, not from whoever sent the proof.
    assert replace(phantom, tx_count=4).verify(root)


def test_the_count_is_only_checked_against_the_branch_length() -> None:
    # Counts 5 to 8 all have depth 3: the root commits to the leaves, not to how many there are.
    hashes = leaves(5)
    root = merkle_root(hashes)
    proof = merkle_proof(hashes, 1)
    assert [replace(proof, tx_count=n).verify(root) for n in range(1, 10)] == [False] * 4 + [True] * 4 + [False]
