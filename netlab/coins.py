"""Coins for the labs: fund a key with many spendable outputs through a node's API, and sign spends of them.

Every lab (netlab, the crash soak, the load benchmark) needs wallet-like traffic: valid,
signed transactions that do not conflict with each other. ``fund`` mines coinbases to a
key with ``POST /api/mining/generate``, waits for them to mature, fans them out into
many outputs and confirms those; ``pay`` spends one of them to an address, keeping the
change, so a client can go on spending its change without waiting for a block.
"""

from __future__ import annotations

from chain.address import encode_address
from chain.block import Block
from chain.builder import Key, Spendable, sign_transaction
from chain.params import NetworkParams
from chain.transaction import OutPoint, Transaction, TxOut
from devnet.process import NodeProcess

FEE = 1_000
MAX_FANOUT = 500  # outputs per fan-out transaction (about 14 kB)


def fetch_block(node: NodeProcess, block_hash: str) -> Block:
    return Block.parse(bytes.fromhex(node.api("GET", f"/api/blocks/{block_hash}/raw")["hex"]))


def fund(node: NodeProcess, key: Key, count: int, params: NetworkParams) -> list[Spendable]:
    """``count`` confirmed outputs paying ``key``, made from fresh coinbases mined on ``node``.

    Mines one coinbase per ``MAX_FANOUT`` outputs plus ``coinbase_maturity`` blocks so
    they can be spent, fans each coinbase out, and mines one block confirming the fan-outs.
    """
    if count < 1:
        raise ValueError("fund at least one output")
    address = encode_address(key.pubkey_hash, params)
    coinbases = -(-count // MAX_FANOUT)
    mined = node.generate(coinbases + params.coinbase_maturity, address)
    coins: list[Spendable] = []
    for number, block_hash in enumerate(mined[:coinbases]):
        coinbase = fetch_block(node, block_hash).transactions[0]
        source = Spendable(OutPoint(coinbase.txid, 0), coinbase.outputs[0], key)
        outputs = min(MAX_FANOUT, count - number * MAX_FANOUT)
        each = (source.txout.amount - FEE) // outputs
        fanout = sign_transaction(1, [source], [TxOut(each, key.pubkey_hash)] * outputs, params)
        node.send_transaction(fanout.serialized.hex())
        coins += [Spendable(OutPoint(fanout.txid, i), fanout.outputs[i], key) for i in range(outputs)]
    node.generate(1, address)
    return coins


def pay(coin: Spendable, to: bytes, params: NetworkParams, amount: int | None = None) -> tuple[Transaction, Spendable]:
    """Spend ``coin``: ``amount`` (default: a tenth of it) to ``to``, the rest less ``FEE`` back as change.

    Returns the signed transaction and its change output, which the same key can
    spend at once (a pooled parent is fine for the mempool).
    """
    amount = amount if amount is not None else coin.txout.amount // 10
    change = coin.txout.amount - amount - FEE
    if amount <= 0 or change <= 0:
        raise ValueError(f"a coin of {coin.txout.amount} cannot pay {amount} plus a fee of {FEE} and keep change")
    tx = sign_transaction(1, [coin], [TxOut(amount, to), TxOut(change, coin.key.pubkey_hash)], params)
    return tx, Spendable(OutPoint(tx.txid, 1), tx.outputs[1], coin.key)
