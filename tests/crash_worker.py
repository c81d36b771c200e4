"""Child process of test_crash.py: mine, reorg and spend into a ChainState until killed.

Prints ``accepted <hash>`` (flushed) after every block that accept_block took, so the
parent knows which blocks were reported as stored before it sends SIGKILL.
"""

from __future__ import annotations

import random
import sys

from chain.builder import ChainBuilder, Key
from chain.chainstate import ChainState
from chain.params import REGTEST

MINER = Key(bytes(31) + b"\x11")


def main(path: str, seed: int) -> None:
    rng = random.Random(seed)
    state = ChainState(REGTEST, path)
    builder = ChainBuilder(REGTEST, miner=MINER)
    builder._serial = seed * 1_000_000  # blocks of different runs differ
    for height in range(1, state.height + 1):
        block = state.get_block(state.active_index(height).hash)
        assert block is not None
        builder.record(block)
    print("ready", state.height, flush=True)
    while True:
        tip_height = builder.heights[builder.tip.hash]
        if tip_height > 3 and rng.random() < 0.3:  # a competing branch one block longer: a reorg
            depth = rng.randint(1, min(3, tip_height - 1))
            parent = builder.tip
            for _ in range(depth):
                parent = builder.blocks[parent.header.prev_hash]
            blocks = builder.add_chain(depth + 1, parent=parent)
        else:
            txs = []
            mature = tip_height + 1 - REGTEST.coinbase_maturity
            if mature >= 1 and rng.random() < 0.7:
                source = builder.tip
                while builder.heights[source.hash] > mature:
                    source = builder.blocks[source.header.prev_hash]
                spendable = builder.coinbase_spendable(source)
                amount = spendable.txout.amount // 2  # subsidies halve every 150 regtest blocks
                if amount > 1000 and state.get_coin(spendable.outpoint) is not None:
                    txs.append(builder.spend([spendable], Key().pubkey_hash, amount, fee=1000))
            blocks = [builder.add_block(transactions=txs, fees=1000 * len(txs))]
        for block in blocks:
            state.accept_block(block)
            print("accepted", block.hash.hex(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
