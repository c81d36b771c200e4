"""Small helpers shared by the consensus tests."""

from __future__ import annotations

from dataclasses import replace

from chain.block import Block
from chain.merkle import merkle_root
from chain.mining import solve_header
from chain.transaction import Transaction


def rebuild(
    block: Block, transactions: tuple[Transaction, ...] | None = None, *, solve: bool = True, **header_fields: object
) -> Block:
    """``block`` with other transactions and/or header fields, merkle root recomputed and re-solved.

    Pass ``merkle_root=...`` to keep a deliberately wrong root.
    """
    txs = block.transactions if transactions is None else transactions
    fields = {"merkle_root": merkle_root([tx.txid for tx in txs]), "nonce": 0, **header_fields}
    header = replace(block.header, **fields)
    if not solve:
        return Block(header, txs)
    solved = solve_header(header)
    assert solved is not None
    return Block(solved, txs)
