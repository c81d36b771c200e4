"""Assemble and solve blocks: the proof-of-work search shared by tests, tools and the node's miner.

The nonce search hashes the first 64 bytes of the header once (the SHA-256
midstate) and then only the last 16 bytes for each nonce.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import replace

from chain.block import Block, BlockHeader
from chain.merkle import merkle_root
from chain.pow import decode_compact
from chain.transaction import Transaction, TxOut, make_coinbase

MAX_NONCE = 0xFFFFFFFF


def solve_header(
    header: BlockHeader, *, start: int = 0, stop: int = MAX_NONCE + 1, should_stop: Callable[[], bool] | None = None
) -> BlockHeader | None:
    """Search nonces in ``[start, stop)`` for one meeting ``bits``; None if the range (or ``should_stop``) ends it."""
    target, negative, overflow = decode_compact(header.bits)
    if negative or overflow or target == 0:
        raise ValueError(f"bits {header.bits:#010x} is no target that any hash can meet")
    raw = header.serialized
    midstate = hashlib.sha256(raw[:64])
    tail = raw[64:76]
    pack = struct.Struct("<I").pack
    sha256 = hashlib.sha256
    for nonce in range(start, stop):
        if should_stop is not None and nonce & 0xFFFF == 0 and should_stop():
            return None
        first = midstate.copy()
        first.update(tail + pack(nonce))
        if int.from_bytes(sha256(first.digest()).digest(), "little") <= target:
            return replace(header, nonce=nonce)
    return None


def build_block(
    prev_hash: bytes,
    height: int,
    time: int,
    bits: int,
    reward_to: bytes,
    reward: int,
    transactions: Sequence[Transaction] = (),
    *,
    extra_nonce: int = 0,
    tag: bytes = b"",
) -> Block:
    """A block (not yet solved) with a coinbase paying ``reward`` to ``reward_to`` followed by ``transactions``."""
    coinbase = make_coinbase(height, (TxOut(reward, reward_to),), extra_nonce=extra_nonce, tag=tag)
    txs = (coinbase, *transactions)
    header = BlockHeader(1, prev_hash, merkle_root([tx.txid for tx in txs]), time, bits, 0)
    return Block(header, txs)


def with_extra_nonce(block: Block, extra_nonce: int) -> Block:
    """``block`` with its coinbase's extra nonce set, merkle root recomputed and nonce reset."""
    coinbase = block.transactions[0]
    txin = coinbase.inputs[0]
    data = txin.signature[:4] + extra_nonce.to_bytes(8, "little") + txin.signature[12:]
    txs = (replace(coinbase, inputs=(replace(txin, signature=data),)), *block.transactions[1:])
    header = replace(block.header, merkle_root=merkle_root([tx.txid for tx in txs]), nonce=0)
    return Block(header, txs)


def solve_block(block: Block) -> Block:
    """Find a nonce for ``block``, bumping the coinbase's extra nonce whenever the nonce space runs out."""
    extra_nonce = 0
    while (solved := solve_header(block.header)) is None:
        extra_nonce += 1
        block = with_extra_nonce(block, extra_nonce)
    return Block(solved, block.transactions)
