"""Consensus rules, each one guard clause raising a ValidationError with its reason code.

Context-free checks (``check_transaction``, ``check_block``) look at an object
alone; contextual checks take the chain state they need as arguments (previous
timestamps, expected bits, the current time, a UTXO view). Nothing here reads a
clock, a global or a database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from chain.block import Block, BlockHeader
from chain.crypto import SignatureCache, verify
from chain.encoding import i64
from chain.errors import BlockError, HeaderError, SignatureError, TransactionError
from chain.hashes import hash160, sha256d
from chain.merkle import merkle_root
from chain.params import NetworkParams
from chain.pow import check_proof_of_work
from chain.transaction import MAX_MONEY, PUBKEY_SIZE, Transaction, sighash_prefix, signature_hash
from chain.utxo import Coin, CoinView, OutPoint


def money_range(amount: int) -> bool:
    """Bitcoin Core: MoneyRange. Checked on every amount and every running sum (CVE-2010-5139)."""
    return 0 <= amount <= MAX_MONEY


# ---------------------------------------------------------------- context-free


def check_transaction(tx: Transaction, params: NetworkParams) -> None:
    """Rules a transaction must meet on its own (Bitcoin Core: CheckTransaction)."""
    if not tx.inputs:
        raise TransactionError("bad-txns-vin-empty", "a transaction needs at least one input")
    if not tx.outputs:
        raise TransactionError("bad-txns-vout-empty", "a transaction needs at least one output")
    if tx.size > params.max_block_size:
        raise TransactionError("bad-txns-oversize", f"{tx.size} bytes is more than a block may hold")
    total = 0
    for index, txout in enumerate(tx.outputs):
        if txout.amount < 0:
            raise TransactionError("bad-txns-vout-negative", f"output {index} pays {txout.amount}")
        if txout.amount > MAX_MONEY:
            raise TransactionError("bad-txns-vout-toolarge", f"output {index} pays {txout.amount} > {MAX_MONEY}")
        total += txout.amount
        if not money_range(total):
            raise TransactionError("bad-txns-txouttotal-toolarge", f"outputs sum to more than {MAX_MONEY}")
    outpoints = {txin.prevout for txin in tx.inputs}
    if len(outpoints) != len(tx.inputs):  # CVE-2018-17144
        raise TransactionError("bad-txns-inputs-duplicate", "the same outpoint is spent twice")
    if tx.is_coinbase:
        if tx.inputs[0].pubkey != bytes(PUBKEY_SIZE):
            raise TransactionError("bad-cb-input", "a coinbase's pubkey field must be zero")
    elif any(txin.prevout.is_null for txin in tx.inputs):
        raise TransactionError("bad-txns-prevout-null", "only a coinbase may have a null outpoint")


class BlockTransaction(Protocol):
    """What the structural block checks need of a transaction (Cairn's, or Bitcoin's in tests)."""

    @property
    def txid(self) -> bytes: ...

    @property
    def is_coinbase(self) -> bool: ...


def check_block_structure(header: BlockHeader, transactions: Sequence[BlockTransaction]) -> None:
    """Merkle root, unique txids, coinbase first and only first (Bitcoin Core: CheckBlock).

    The merkle root is checked first: until the transactions are known to be the ones
    the header commits to, nothing wrong with them says anything about the header.
    """
    txids = [tx.txid for tx in transactions]
    if merkle_root(txids) != header.merkle_root:
        raise BlockError("bad-txnmrklroot", "the merkle root does not match the transactions")
    if len(set(txids)) != len(txids):  # CVE-2012-2459: duplicated txids keep the merkle root
        raise BlockError("bad-txns-duplicate", "duplicate transaction ids")
    if not transactions:
        raise BlockError("bad-blk-length", "a block needs at least a coinbase")
    if not transactions[0].is_coinbase:
        raise BlockError("bad-cb-missing", "the first transaction is not a coinbase")
    if any(tx.is_coinbase for tx in transactions[1:]):
        raise BlockError("bad-cb-multiple", "more than one coinbase")


MUTATION_REASONS = frozenset({"bad-txnmrklroot", "bad-txns-duplicate"})
"""Failures that may come from a mutated copy of a valid block: they do not condemn the header."""


def check_block(block: Block, params: NetworkParams, *, check_pow: bool = True) -> None:
    """Every rule a block must meet without knowing the chain."""
    if check_pow:
        check_proof_of_work(block.hash, block.header.bits, params.pow_limit)
    check_block_structure(block.header, block.transactions)
    if block.size > params.max_block_size:
        raise BlockError("bad-blk-length", f"{block.size} bytes exceeds the limit of {params.max_block_size}")
    for tx in block.transactions:
        check_transaction(tx, params)


# ---------------------------------------------------------------- headers in context


def median_time_past(times: Sequence[int]) -> int:
    """Median of the given (up to 11) previous timestamps (Bitcoin Core: GetMedianTimePast)."""
    ordered = sorted(times)
    return ordered[len(ordered) // 2]


def check_header_context(
    header: BlockHeader, params: NetworkParams, *, expected_bits: int, median_time: int, now: int
) -> None:
    """Difficulty and timestamp rules for a header whose parent is known (ContextualCheckBlockHeader)."""
    if header.bits != expected_bits:
        raise HeaderError("bad-diffbits", f"bits {header.bits:#010x}, expected {expected_bits:#010x}")
    if header.time <= median_time:
        raise HeaderError("time-too-old", f"time {header.time} is not after the median time past {median_time}")
    if header.time > now + params.max_future_block_time:
        raise HeaderError(
            "time-too-new", f"time {header.time} is more than {params.max_future_block_time}s ahead of {now}"
        )


# ---------------------------------------------------------------- transactions in context


def check_tx_inputs(tx: Transaction, spent: Sequence[Coin], height: int, params: NetworkParams) -> int:
    """Amount and maturity rules against the coins ``tx`` spends; returns its fee (Consensus::CheckTxInputs)."""
    total_in = 0
    for index, coin in enumerate(spent):
        if coin.is_coinbase and height - coin.height < params.coinbase_maturity:
            raise TransactionError(
                "bad-txns-premature-spend-of-coinbase",
                f"input {index} spends a coinbase of height {coin.height} at height {height}, "
                f"before {params.coinbase_maturity} confirmations",
            )
        total_in += coin.amount
        if not money_range(coin.amount) or not money_range(total_in):
            raise TransactionError("bad-txns-inputvalues-outofrange", "input values out of range")
    total_out = sum(txout.amount for txout in tx.outputs)
    if total_in < total_out:
        raise TransactionError("bad-txns-in-belowout", f"inputs {total_in} < outputs {total_out}")
    fee = total_in - total_out
    if not money_range(fee):
        raise TransactionError("bad-txns-fee-outofrange", f"fee {fee} out of range")
    return fee


def tx_signatures_key(tx: Transaction, spent: Sequence[Coin], params: NetworkParams) -> bytes:
    """What a transaction's signature checks depend on: its txid (which commits to every key and
    signature), the network, and the amount and pubkey hash of every output it spends."""
    coins = b"".join(i64(coin.amount) + coin.pubkey_hash for coin in spent)
    return sha256d(b"tx-signatures" + params.magic + tx.txid + coins)


def verify_tx_signatures(
    tx: Transaction, spent: Sequence[Coin], params: NetworkParams, sig_cache: SignatureCache | None = None
) -> None:
    """Each input's key must hash to the spent output's pubkey hash and sign its signature hash.

    With a cache, a transaction whose signatures all passed before (in the mempool, say)
    against the same spent outputs is not checked again.
    """
    key = tx_signatures_key(tx, spent, params) if sig_cache is not None else b""
    if sig_cache is not None and key in sig_cache:
        return
    prefix = sighash_prefix(tx, params.magic)
    for index, (txin, coin) in enumerate(zip(tx.inputs, spent, strict=True)):
        pubkey = txin.pubkey
        if hash160(pubkey) != coin.pubkey_hash:
            raise SignatureError("bad-txns-pubkey-mismatch", f"input {index}: key does not match the spent output")
        digest = signature_hash(tx, index, coin, params.magic, prefix)  # a Coin has the TxOut's fields
        try:
            verify(pubkey, txin.signature, digest)
        except SignatureError as exc:
            raise SignatureError(exc.reason, f"input {index}: {exc.message}") from None
    if sig_cache is not None:
        sig_cache.add(key)


def connect_block(
    block: Block,
    height: int,
    view: CoinView,
    params: NetworkParams,
    *,
    sig_cache: SignatureCache | None = None,
    verify_signatures: bool = True,
) -> list[tuple[OutPoint, Coin]]:
    """Apply ``block`` to ``view`` under every contextual rule; return the undo data (ConnectBlock).

    On failure ``view`` is left half-applied: the caller discards it.
    """
    coinbase = block.transactions[0]
    if coinbase.coinbase_height != height:
        raise BlockError("bad-cb-height", f"coinbase says height {coinbase.coinbase_height}, block is at {height}")
    undo: list[tuple[OutPoint, Coin]] = []
    fees = 0
    spend = view.spend
    for tx in block.transactions[1:]:
        outpoints = [txin.prevout for txin in tx.inputs]
        spent = [spend(outpoint) for outpoint in outpoints]
        undo += zip(outpoints, spent, strict=True)
        fees += check_tx_inputs(tx, spent, height, params)
        if not money_range(fees):
            raise BlockError("bad-txns-accumulated-fee-outofrange", "fees of the block out of range")
        if verify_signatures:
            verify_tx_signatures(tx, spent, params, sig_cache)
        view.add_outputs(tx, height)
    reward = sum(txout.amount for txout in coinbase.outputs)
    allowed = params.block_subsidy(height) + fees
    if reward > allowed:
        raise BlockError("bad-cb-amount", f"coinbase pays {reward}, more than subsidy + fees = {allowed}")
    view.add_outputs(coinbase, height)
    return undo


def disconnect_block(block: Block, undo: Sequence[tuple[OutPoint, Coin]], view: CoinView) -> None:
    """Undo ``connect_block``: remove the block's outputs, restore what it spent (DisconnectBlock)."""
    position = len(undo)
    for tx in reversed(block.transactions):
        for index in range(len(tx.outputs)):
            view.spend(OutPoint(tx.txid, index))
        if tx.is_coinbase:
            continue
        for _ in tx.inputs:
            position -= 1
            outpoint, coin = undo[position]
            view.add(outpoint, coin)
    if position != 0:
        raise ValueError(f"undo data has {position} entries more than the block spent")
