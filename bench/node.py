"""Benchmarks of the peer node (``node``), each against a baseline measured in the same run.

1. mining, one process: the miner's nonce search (``Solver(0)``, i.e. ``chain.mining.solve_header``
   with its midstate) in hashes per second vs a bare ``hashlib`` midstate loop doing
   the same double SHA-256 per nonce and nothing else (ratio >= 0.7).
2. mining, worker processes: ``Solver(N)`` with N = the CPU count searching disjoint
   nonce slices in worker processes vs that same bare single-process loop (ratio
   >= 0.8 x N, when there are at least 2 CPUs; no target on one).
3. transactions over HTTP: a real ``cairn-node`` process admitting transactions posted
   one by one to ``POST /api/transactions`` (keep-alive session), vs the same
   transactions admitted by an in-process ``Mempool.add`` on its own ``ChainState``
   (validation and signatures alike, no HTTP) (no target: it shows the cost of HTTP,
   JSON and the server's threads).
4. block propagation: five ``cairn-node`` processes in a line (node0 <- node1 <- ... <- node4);
   a block mined on node0, the time until node4 has it as its tip vs until node1 has it
   (one direct hop), the same block, polled every 5 ms. Median of the repetitions
   (ratio <= 6: four hops should cost about four times one).

``--quick`` uses fewer nonces, transactions and blocks.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.report import Progress, Result, Target, Timing, best, best_cpu, interleaved, stopwatch
from chain.address import encode_address
from chain.block import Block, BlockHeader
from chain.builder import ChainBuilder, Key, Spendable, sign_transaction
from chain.chainstate import ChainState
from chain.crypto import SignatureCache
from chain.hashes import ZERO_HASH
from chain.params import REGTEST
from chain.transaction import OutPoint, Transaction, TxOut
from devnet.process import NodeProcess, sync_blocks
from node.mempool import Mempool
from node.miner import Solver, _search_slice

SUITE = "node"
UNSOLVABLE_BITS = 0x1B0404CB  # a real Bitcoin difficulty: the search runs its whole range
FEE = 1_000


@dataclass(frozen=True)
class Sizes:
    nonces: int  # per timed mining run
    transactions: int
    propagations: int
    repeat: int


FULL = Sizes(nonces=1 << 18, transactions=400, propagations=7, repeat=5)
QUICK = Sizes(nonces=1 << 15, transactions=60, propagations=3, repeat=2)


def main(quick: bool) -> list[Result]:
    sizes = QUICK if quick else FULL
    progress = Progress(SUITE)
    results = [bench_mining_single(sizes, progress), bench_mining_processes(sizes, progress)]
    with tempfile.TemporaryDirectory(prefix="cairn-bench-node-") as tmp:
        results.append(bench_http_transactions(sizes, Path(tmp), progress))
        results.append(bench_propagation(sizes, Path(tmp), progress))
    return results


# ---------------------------------------------------------------- mining


def _header(seed: int) -> BlockHeader:
    return BlockHeader(
        1, ZERO_HASH, hashlib.sha256(seed.to_bytes(4, "little")).digest(), 1795564801, UNSOLVABLE_BITS, 0
    )


def raw_midstate_loop(header: BlockHeader, count: int) -> None:
    """The baseline: a double SHA-256 per nonce from a midstate, nothing else."""
    raw = header.serialized
    midstate = hashlib.sha256(raw[:64])
    tail = raw[64:76]
    pack = struct.Struct("<I").pack
    sha256 = hashlib.sha256
    for nonce in range(count):
        first = midstate.copy()
        first.update(tail + pack(nonce))
        sha256(first.digest()).digest()


def _miner_run(header: BlockHeader, count: int) -> None:
    from chain.mining import solve_header

    assert solve_header(header, start=0, stop=count, should_stop=lambda: False) is None


def bench_mining_single(sizes: Sizes, progress: Progress) -> Result:
    name = "mining: one process"
    progress.start(name)
    header = _header(1)
    samples = interleaved(
        sizes.repeat,
        {
            "miner": lambda: stopwatch(lambda: _miner_run(header, sizes.nonces))[0],
            "raw": lambda: stopwatch(lambda: raw_midstate_loop(header, sizes.nonces))[0],
        },
    )
    return progress.done(
        Result(
            SUITE,
            name,
            sizes.nonces / best(samples["miner"]),
            sizes.nonces / best(samples["raw"]),
            "hashes/s",
            "the miner's nonce search (solve_header with midstate and target check) in this process",
            "a bare hashlib midstate double-SHA-256 loop over the same nonces",
            Target(">=", 0.7),
            {"nonces": sizes.nonces, "repeat": sizes.repeat},
            cpu_value=sizes.nonces / best_cpu(samples["miner"]),
            cpu_baseline=sizes.nonces / best_cpu(samples["raw"]),
        )
    )


def bench_mining_processes(sizes: Sizes, progress: Progress) -> Result:
    processes = os.cpu_count() or 1
    name = f"mining: {processes} worker processes"
    progress.start(name)
    solver = Solver(processes)
    pool = solver._pool
    assert pool is not None
    header = _header(2)
    raw = header.serialized
    total = sizes.nonces * processes
    try:
        for future in [pool.submit(_search_slice, raw, 0, 1 << 10) for _ in range(processes)]:
            future.result()  # start the workers (spawn) before timing

        def workers() -> Timing:
            def run() -> None:
                slices = [(i * sizes.nonces, (i + 1) * sizes.nonces) for i in range(processes)]
                for future in [pool.submit(_search_slice, raw, start, stop) for start, stop in slices]:
                    assert future.result() is None

            return stopwatch(run)[0]

        samples = interleaved(
            sizes.repeat, {"workers": workers, "raw": lambda: stopwatch(lambda: raw_midstate_loop(header, total))[0]}
        )
    finally:
        solver.close()
    return progress.done(
        Result(
            SUITE,
            name,
            total / best(samples["workers"]),
            total / best(samples["raw"]),
            "hashes/s",
            f"the miner's nonce search split over {processes} worker processes (disjoint slices)",
            "the bare hashlib midstate loop in one process",
            Target(">=", 0.8 * processes) if processes >= 2 else None,
            {"processes": processes, "nonces": total},
        )
    )


# ---------------------------------------------------------------- transactions over HTTP


def _funded_chain(count: int) -> tuple[list[Block], list[Transaction]]:
    """12 blocks whose last confirms a fan-out of ``count`` outputs, and ``count`` transactions spending them."""
    builder = ChainBuilder(REGTEST)
    blocks = builder.add_chain(11)
    owner = Key()
    coinbase = builder.coinbase_spendable(blocks[0])
    each = (coinbase.txout.amount - FEE) // count
    fanout = sign_transaction(1, [coinbase], [TxOut(each, owner.pubkey_hash)] * count, REGTEST)
    blocks.append(builder.add_block(transactions=[fanout], fees=coinbase.txout.amount - each * count))
    payee = Key().pubkey_hash
    spends = [
        sign_transaction(
            1, [Spendable(OutPoint(fanout.txid, i), fanout.outputs[i], owner)], [TxOut(each - FEE, payee)], REGTEST
        )
        for i in range(count)
    ]
    return blocks, spends


def time_mempool_adds(blocks: list[Block], spends: list[Transaction], path: Path) -> Timing:
    """``Mempool.add`` of every spend, in this process, on a fresh chain of ``blocks`` stored at ``path``: a
    node's validation without its HTTP."""
    chain = ChainState(REGTEST, path, sig_cache=SignatureCache(), synchronous="OFF")
    try:
        for block in blocks:
            chain.accept_block(block)
        pool = Mempool(chain)
        timing, _ = stopwatch(lambda: [pool.add(tx) for tx in spends])
        assert len(pool) == len(spends)
        return timing
    finally:
        chain.close()


def bench_http_transactions(sizes: Sizes, workdir: Path, progress: Progress) -> Result:
    name = "transactions over HTTP"
    progress.start(name)
    blocks, spends = _funded_chain(sizes.transactions)
    progress.note(f"built {len(spends)} signed transactions")

    def direct(run: int) -> Timing:
        return time_mempool_adds(blocks, spends, workdir / f"direct-{run}.sqlite")

    def over_http(run: int) -> Timing:
        node = NodeProcess(workdir / f"http-{run}", name=f"http-{run}", network="regtest").start()
        try:
            node.wait_ready()
            for block in blocks:
                node.submit_block(block.serialized.hex())
            session = requests.Session()
            bodies = [{"hex": tx.serialized.hex()} for tx in spends]

            def post_all() -> None:
                for body in bodies:
                    answer = session.post(f"{node.url}/api/transactions", json=body, timeout=30)
                    answer.raise_for_status()

            timing, _ = stopwatch(post_all)
            session.close()
            assert node.status()["mempool_size"] == len(spends)
            return timing
        finally:
            node.stop()

    runs = iter(range(1000))
    samples = interleaved(
        max(1, sizes.repeat // 2), {"http": lambda: over_http(next(runs)), "direct": lambda: direct(next(runs))}
    )
    count = len(spends)
    return progress.done(
        Result(
            SUITE,
            name,
            count / best(samples["http"]),
            count / best(samples["direct"]),
            "txs/s",
            "transactions admitted by a cairn-node process, posted one by one over HTTP",
            "the same transactions admitted by Mempool.add in this process (same validation, no HTTP)",
            None,
            {"transactions": count},
        )
    )


# ---------------------------------------------------------------- propagation


def bench_propagation(sizes: Sizes, workdir: Path, progress: Progress) -> Result:
    name = "block propagation, 5-node line"
    progress.start(name)
    nodes: list[NodeProcess] = []
    try:
        for i in range(5):
            peers = [nodes[-1]] if nodes else []
            node = NodeProcess(workdir / f"line{i}", name=f"line{i}", network="regtest", peers=peers)
            nodes.append(node.start())
        for node in nodes:
            node.wait_ready()
        address = encode_address(bytes([0x22]) * 20, REGTEST)
        nodes[0].generate(1, address)
        sync_blocks(nodes)
        progress.note("5 nodes in a line, synced")
        one_hop, four_hops = [], []
        session = requests.Session()
        for _ in range(sizes.propagations):
            started = time.perf_counter()
            (block,) = nodes[0].generate(1, address)
            arrived: dict[int, float] = {}
            while len(arrived) < 2:
                for index in (1, 4):
                    if index not in arrived:
                        tip = session.get(f"{nodes[index].url}/api/status", timeout=10).json()["tip"]
                        if tip == block:
                            arrived[index] = time.perf_counter() - started
                if time.perf_counter() - started > 60:
                    raise RuntimeError("a block took over a minute to cross the line")
                time.sleep(0.005)
            one_hop.append(arrived[1])
            four_hops.append(arrived[4])
            sync_blocks(nodes)
        session.close()
    finally:
        for node in nodes:
            node.stop()
    return progress.done(
        Result(
            SUITE,
            name,
            statistics.median(four_hops),
            statistics.median(one_hop),
            "s",
            "from generate on node0 until node4, four hops down the line, has the block as its tip (median)",
            "from the same generate until node1, one direct hop, has it (median)",
            Target("<=", 6.0),
            {"blocks": sizes.propagations, "one_hop_best": min(one_hop), "four_hops_best": min(four_hops)},
        )
    )
