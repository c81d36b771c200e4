"""Bitcoin's merkle tree of transaction ids, and merkle branches (proofs of inclusion).

On a level with an odd number of hashes the last one is paired with itself, as in
Bitcoin. That makes ``[a, b, c]`` and ``[a, b, c, c]`` share a root (CVE-2012-2459),
which is why blocks with duplicate txids are rejected (``bad-txns-duplicate``) and
why a proof carries the transaction count. A Cairn transaction is never 64 bytes
long, so an inner node can never pass for a transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chain.hashes import ZERO_HASH, sha256d


def merkle_root(hashes: Sequence[bytes]) -> bytes:
    """The merkle root of ``hashes`` (Bitcoin Core: ComputeMerkleRoot); zero hash when empty."""
    if not hashes:
        return ZERO_HASH
    level = list(hashes)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


@dataclass(frozen=True)
class MerkleProof:
    """That transaction ``txid`` sits at ``index`` among ``tx_count`` under some root."""

    txid: bytes
    index: int
    tx_count: int
    branch: tuple[bytes, ...]

    def root(self) -> bytes | None:
        """The root this proof leads to, or None when its shape cannot be a real tree position."""
        if not 0 <= self.index < self.tx_count or len(self.branch) != tree_depth(self.tx_count):
            return None
        h, index = self.txid, self.index
        for sibling in self.branch:
            h = sha256d(sibling + h) if index & 1 else sha256d(h + sibling)
            index >>= 1
        return h

    def verify(self, root: bytes) -> bool:
        return self.root() == root


def tree_depth(count: int) -> int:
    """Number of levels above the leaves in a tree of ``count`` leaves."""
    return (count - 1).bit_length() if count > 1 else 0


def merkle_proof(hashes: Sequence[bytes], index: int) -> MerkleProof:
    """The branch of sibling hashes from leaf ``index`` up to the root."""
    if not 0 <= index < len(hashes):
        raise IndexError(f"leaf {index} of {len(hashes)}")
    branch = []
    level, position = list(hashes), index
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        branch.append(level[position ^ 1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        position >>= 1
    return MerkleProof(hashes[index], index, len(hashes), tuple(branch))
