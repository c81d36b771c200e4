"""Benchmarks of the consensus core (``chain``), each against a baseline measured in the same run.

Sizes are the full run's; ``--quick`` uses 1,000 headers, a 1,000-block reorg
chain and a 2,000-block memory chain, with 3 repetitions instead of 7.

1. header validation: ``verify_header_chain`` over 5,000 regtest headers vs a bare
   ``hashlib`` double SHA-256 of the same 80-byte headers (ratio >= 0.5).
2. block connect: ``connect_block`` of a block of 1,000 signed transactions
   (1,500 signatures) against an in-memory UTXO view, in signatures per second,
   vs coincurve (libsecp256k1) verifying the same signatures in a bare loop, each
   key parsed from its bytes, digests and DER signatures made beforehand (ratio
   >= 0.8; the ratio to a loop over pre-parsed keys is kept in the details).
   Also, for information, the same block through ``ChainState.accept_block`` on a
   SQLite file (header and block checks, connect, storage, commit).
3. signature cache: that block connected with a ``SignatureCache`` warmed by
   verifying every transaction first (as a mempool does) vs an empty one (>= 5x).
4. reorg: a depth-10 reorg at the tip of a 5,000-block chain vs of a 100-block
   chain, in real ``ChainState``s on SQLite files (ratio of times <= 1.5: a reorg
   must cost O(its depth), not O(the chain)).
5. memory: a ``ChainState`` fed a 10,000-block regtest chain in a fresh
   subprocess, its peak RSS growth and its Python heap peak vs the serialized size
   of the blocks (no target).

Each timing is repeated and the best kept; the sides of a ratio take turns, so
a busy moment on a shared machine slows both, and CPU-bound timings go on (up to
a limit) until each side has had a run no other process preempted. Wall-clock time (``perf_counter``)
makes the ratio a target judges; the ratio by CPU time (``process_time``) is
reported beside it, as a steadier reading when other processes share the CPUs.
Blocks carry regtest timestamps (late 2026), so ``now`` is passed explicitly.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import resource
import struct
import subprocess
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import coincurve
from coincurve.ecdsa import cdata_to_der, deserialize_compact

from bench.report import (
    Progress,
    Result,
    Target,
    Timing,
    best,
    best_cpu,
    clean_runs,
    interleaved,
    median,
    stopwatch,
)
from chain.block import Block
from chain.builder import ChainBuilder, Key, Spendable, sign_transaction
from chain.chainstate import ChainState
from chain.crypto import SignatureCache
from chain.headerchain import verify_header_chain
from chain.params import REGTEST
from chain.transaction import OutPoint, Transaction, TxOut, signature_hash
from chain.utxo import Coin, CoinView
from chain.validation import connect_block, verify_tx_signatures

SUITE = "core"
PARAMS = REGTEST
REPO = Path(__file__).resolve().parents[1]
REORG_DEPTH = 10
KEYS = 8  # distinct keys the benchmark block's coins belong to
FEE = 1_000  # smallest units each benchmark transaction pays
BUILD_SYNC = "NORMAL"  # SQLite synchronous mode of the ChainStates the reorg and memory benchmarks build


@dataclass(frozen=True)
class Sizes:
    headers: int
    reorg_long: int
    reorg_short: int
    memory_blocks: int
    transactions: int
    repeat: int  # rounds of every timing, at least
    min_seconds: float  # and more rounds of the short timings (headers, signatures) until this much time passed
    max_seconds: float  # the most a CPU-bound timing goes on waiting for a clean (not preempted) run of each side


FULL = Sizes(
    headers=5_000,
    reorg_long=5_000,
    reorg_short=100,
    memory_blocks=10_000,
    transactions=1_000,
    repeat=7,
    min_seconds=2.0,
    max_seconds=30.0,
)
QUICK = Sizes(
    headers=1_000,
    reorg_long=1_000,
    reorg_short=100,
    memory_blocks=2_000,
    transactions=1_000,
    repeat=3,
    min_seconds=0.3,
    max_seconds=5.0,
)


def main(quick: bool) -> list[Result]:
    sizes = QUICK if quick else FULL
    progress = Progress(SUITE)
    with tempfile.TemporaryDirectory(prefix="cairn-bench-") as tmp:
        workdir = Path(tmp)
        builder = ChainBuilder(PARAMS)
        chain = build_chain(builder, max(sizes.headers, sizes.reorg_long, sizes.memory_blocks), progress)
        results = [bench_headers(chain[: sizes.headers], sizes, progress)]
        signed = build_signed_block(sizes.transactions, progress)
        results.append(bench_connect(signed, sizes, progress))
        results.append(bench_accept(signed, sizes, workdir, progress))
        results.append(bench_sig_cache(signed, sizes, progress))
        results.append(bench_reorg(builder, chain, sizes, workdir, progress))
        results += bench_memory(chain[: sizes.memory_blocks], workdir, progress)
    return results


def run_counts(samples: dict[str, list[Timing]]) -> dict[str, int]:
    """How many rounds ran, and how many runs of each trial were clean (not preempted): for the reader."""
    rounds = {"rounds": len(next(iter(samples.values())))}
    return rounds | {f"clean_runs_{name}": clean_runs(runs) for name, runs in samples.items()}


# ---------------------------------------------------------------- building inputs


def build_chain(builder: ChainBuilder, count: int, progress: Progress) -> list[Block]:
    """``count`` coinbase-only regtest blocks on genesis (heights 1..count)."""
    blocks: list[Block] = []
    step = max(1, count // 5)
    while len(blocks) < count:
        blocks += builder.add_chain(min(step, count - len(blocks)))
        progress.note(f"mined {len(blocks):,}/{count:,} regtest blocks")
    return blocks


@dataclass(frozen=True)
class SignedBlock:
    """A block full of signed transactions, the chain under it, and the coins it spends."""

    prefix: list[Block]  # heights 1..height-1
    block: Block
    height: int
    coins: dict[OutPoint, Coin]  # exactly the coins ``block`` spends, as the UTXO set holds them

    @property
    def signatures(self) -> int:
        return sum(len(tx.inputs) for tx in self.block.transactions[1:])

    def fresh_block(self) -> Block:
        """A newly parsed copy, so no txid or signature-hash part is cached from an earlier run."""
        return Block.parse(self.block.serialized)

    def spent(self, tx: Transaction) -> list[Coin]:
        return [self.coins[txin.prevout] for txin in tx.inputs]


def build_signed_block(transactions: int, progress: Progress) -> SignedBlock:
    """Two mature coinbases fan out into one output per input needed; the next block spends them all.

    Transaction ``i`` has ``1 + i % 2`` inputs, so 1,000 transactions carry 1,500 signatures.
    """
    progress.note(f"building a block of {transactions:,} signed transactions")
    builder = ChainBuilder(PARAMS)
    keys = [Key() for _ in range(KEYS)]
    hashes = [key.pubkey_hash for key in keys]
    funding = builder.add_chain(2)
    prefix = funding + builder.add_chain(PARAMS.coinbase_maturity - 1)  # the next block may spend both coinbases
    inputs_needed = sum(1 + i % 2 for i in range(transactions))
    fan_outs: list[Transaction] = []
    pool: list[Spendable] = []
    for block, count in zip(funding, (inputs_needed - inputs_needed // 2, inputs_needed // 2), strict=True):
        source = builder.coinbase_spendable(block)
        each = source.txout.amount // count
        tx = sign_transaction(1, [source], [TxOut(each, hashes[i % KEYS]) for i in range(count)], PARAMS)
        fan_outs.append(tx)
        pool += [Spendable(OutPoint(tx.txid, i), out, keys[i % KEYS]) for i, out in enumerate(tx.outputs)]
    fan_out_fees = sum(b.transactions[0].outputs[0].amount for b in funding) - sum(
        out.amount for tx in fan_outs for out in tx.outputs
    )
    funded = builder.add_block(prefix[-1], fan_outs, fees=fan_out_fees)
    height = builder.height_of(funded) + 1
    coins = {s.outpoint: Coin(s.txout.amount, s.txout.pubkey_hash, height - 1, False) for s in pool}
    spending: list[Transaction] = []
    position = 0
    for i in range(transactions):
        spends = pool[position : position + 1 + i % 2]
        position += len(spends)
        total = sum(s.txout.amount for s in spends)
        spending.append(builder.spend(spends, to=hashes[(i + 3) % KEYS], amount=total // 2, fee=FEE))
    block = builder.add_block(funded, spending, fees=FEE * transactions)
    signed = SignedBlock([*prefix, funded], block, height, coins)
    undo = connect_block(signed.fresh_block(), height, CoinView(coins.get), PARAMS)  # it must be valid
    if len(undo) != signed.signatures or signed.signatures != inputs_needed:
        raise RuntimeError(f"benchmark block spends {len(undo)} coins, expected {inputs_needed}")
    progress.note(f"block at height {height}: {transactions:,} transactions, {signed.signatures:,} signatures")
    return signed


# ---------------------------------------------------------------- 1. headers


def bench_headers(blocks: list[Block], sizes: Sizes, progress: Progress) -> Result:
    name = "header validation"
    progress.start(name)
    headers = [block.header.serialized for block in blocks]
    tip = blocks[-1].header

    def verify() -> Timing:
        timing, verified = stopwatch(lambda: verify_header_chain(PARAMS, headers, tip.hash, now=tip.time))
        if verified.height != len(headers):
            raise RuntimeError(f"header chain verified to height {verified.height}, not {len(headers)}")
        return timing

    def hash_only() -> Timing:
        def run() -> None:
            sha256 = hashlib.sha256
            for raw in headers:
                sha256(sha256(raw).digest()).digest()

        return stopwatch(run)[0]

    samples = interleaved(
        sizes.repeat,
        {"verify": verify, "sha256d": hash_only},
        min_seconds=sizes.min_seconds,
        until_clean=True,
        max_seconds=sizes.max_seconds,
    )
    return progress.done(
        Result(
            SUITE,
            name,
            value=len(headers) / best(samples["verify"]),
            baseline=len(headers) / best(samples["sha256d"]),
            cpu_value=len(headers) / best_cpu(samples["verify"]),
            cpu_baseline=len(headers) / best_cpu(samples["sha256d"]),
            unit="headers/s",
            measures=f"verify_header_chain over {len(headers):,} raw regtest headers from genesis",
            baseline_measures="bare hashlib double SHA-256 of the same 80-byte headers",
            target=Target(">=", 0.5),
            details={"headers": len(headers), **run_counts(samples)},
        )
    )


# ---------------------------------------------------------------- 2. and 3. signatures


def coincurve_trial(signed: SignedBlock, *, parse_keys: bool = True) -> Callable[[], Timing]:
    """Time coincurve (libsecp256k1) verifying the block's signatures: the least any Python validator must do.

    Digests are computed and signatures DER-encoded beforehand. Each public key is
    parsed from its 33 bytes inside the loop (a block brings keys as bytes), unless
    ``parse_keys`` is False: then the loop times ``PublicKey.verify`` alone.
    """
    checks = []
    for tx in signed.block.transactions[1:]:
        for index, (txin, coin) in enumerate(zip(tx.inputs, signed.spent(tx), strict=True)):
            digest = signature_hash(tx, index, coin.txout, PARAMS.magic)
            checks.append((txin.pubkey, cdata_to_der(deserialize_compact(txin.signature)), digest))
    parsed = {pubkey: coincurve.PublicKey(pubkey) for pubkey, _, _ in checks}

    def run() -> int:
        verified = 0
        public_key = coincurve.PublicKey
        for pubkey, der, digest in checks:
            if public_key(pubkey).verify(der, digest, hasher=None):
                verified += 1
        return verified

    def run_parsed() -> int:
        verified = 0
        for pubkey, der, digest in checks:
            if parsed[pubkey].verify(der, digest, hasher=None):
                verified += 1
        return verified

    def trial() -> Timing:
        timing, verified = stopwatch(run if parse_keys else run_parsed)
        if verified != len(checks):
            raise RuntimeError(f"only {verified} of {len(checks)} signatures verified")
        return timing

    return trial


def connect_trial(signed: SignedBlock, cache: Callable[[], SignatureCache | None]) -> Callable[[], Timing]:
    """Time ``connect_block`` of a freshly parsed copy against a fresh view over the spent coins."""

    def trial() -> Timing:
        block, view, sig_cache = signed.fresh_block(), CoinView(signed.coins.get), cache()
        timing, undo = stopwatch(lambda: connect_block(block, signed.height, view, PARAMS, sig_cache=sig_cache))
        if len(undo) != signed.signatures:
            raise RuntimeError(f"connect_block spent {len(undo)} coins, expected {signed.signatures}")
        return timing

    return trial


def bench_connect(signed: SignedBlock, sizes: Sizes, progress: Progress) -> Result:
    name = "block connect"
    progress.start(name)
    samples = interleaved(
        sizes.repeat,
        {
            "connect": connect_trial(signed, lambda: None),
            "coincurve": coincurve_trial(signed),
            "coincurve_parsed": coincurve_trial(signed, parse_keys=False),
        },
        min_seconds=sizes.min_seconds,
        until_clean=True,
        max_seconds=sizes.max_seconds,
    )
    connect = signed.signatures / best(samples["connect"])
    parsed = signed.signatures / best(samples["coincurve_parsed"])
    return progress.done(
        Result(
            SUITE,
            name,
            value=connect,
            baseline=signed.signatures / best(samples["coincurve"]),
            cpu_value=signed.signatures / best_cpu(samples["connect"]),
            cpu_baseline=signed.signatures / best_cpu(samples["coincurve"]),
            unit="sigs/s",
            measures=(
                f"connect_block of {len(signed.block.transactions) - 1:,} transactions ({signed.signatures:,} "
                "signatures) on an in-memory CoinView, no signature cache"
            ),
            baseline_measures=(
                "coincurve PublicKey(pubkey).verify(der, digest, hasher=None) loop over the same signatures "
                "(digests and DER made beforehand)"
            ),
            target=Target(">=", 0.8),
            details={
                "signatures": signed.signatures,
                **run_counts(samples),
                "coincurve_preparsed_keys_sigs_per_s": parsed,
                "ratio_to_preparsed_keys": connect / parsed,
            },
        )
    )


def bench_accept(signed: SignedBlock, sizes: Sizes, workdir: Path, progress: Progress) -> Result:
    name = "block accept (SQLite)"
    progress.start(name)
    runs = itertools.count()

    def accept() -> Timing:
        path = workdir / f"accept-{next(runs)}.sqlite"
        state = ChainState(PARAMS, path)  # default synchronous=FULL, a fresh (cold) signature cache
        try:
            for block in signed.prefix:
                state.accept_block(block, now=block.header.time)
            block = signed.fresh_block()
            timing, update = stopwatch(lambda: state.accept_block(block, now=block.header.time))
            if [b.hash for b in update.connected] != [block.hash]:
                raise RuntimeError("the benchmark block was not connected")
            return timing
        finally:
            state.close()

    samples = interleaved(
        sizes.repeat, {"accept": accept, "coincurve": coincurve_trial(signed)}, min_seconds=sizes.min_seconds
    )
    return progress.done(
        Result(
            SUITE,
            name,
            value=signed.signatures / best(samples["accept"]),
            baseline=signed.signatures / best(samples["coincurve"]),
            cpu_value=signed.signatures / best_cpu(samples["accept"]),
            cpu_baseline=signed.signatures / best_cpu(samples["coincurve"]),
            unit="sigs/s",
            measures=(
                "ChainState.accept_block of the same block on a SQLite file (synchronous=FULL): "
                "header, block checks, connect, UTXO/index writes, commit"
            ),
            baseline_measures="the same coincurve verify loop",
            details={"signatures": signed.signatures, **run_counts(samples)},
        )
    )


def bench_sig_cache(signed: SignedBlock, sizes: Sizes, progress: Progress) -> Result:
    name = "signature cache"
    progress.start(name)
    warm = SignatureCache()
    for tx in signed.block.transactions[1:]:
        verify_tx_signatures(tx, signed.spent(tx), PARAMS, warm)  # as the mempool does when it admits tx
    transactions = len(signed.block.transactions) - 1
    if len(warm) != transactions:  # one entry per transaction (the script execution cache)
        raise RuntimeError(f"the warmed cache holds {len(warm)} entries, not one per each of {transactions} txs")
    samples = interleaved(
        sizes.repeat,
        {"warm": connect_trial(signed, lambda: warm), "cold": connect_trial(signed, SignatureCache)},
        min_seconds=sizes.min_seconds,
        until_clean=True,
        max_seconds=sizes.max_seconds,
    )
    return progress.done(
        Result(
            SUITE,
            name,
            value=signed.signatures / best(samples["warm"]),
            baseline=signed.signatures / best(samples["cold"]),
            cpu_value=signed.signatures / best_cpu(samples["warm"]),
            cpu_baseline=signed.signatures / best_cpu(samples["cold"]),
            unit="sigs/s",
            measures="connect_block of the block with a SignatureCache warmed by verify_tx_signatures of each tx",
            baseline_measures="the same with an empty SignatureCache (every signature verified and inserted)",
            target=Target(">=", 5),
            details={"signatures": signed.signatures, **run_counts(samples)},
        )
    )


# ---------------------------------------------------------------- 4. reorg


def load_chain(blocks: list[Block], path: Path, progress: Progress) -> ChainState:
    state = ChainState(PARAMS, path, synchronous=BUILD_SYNC)
    step = max(1000, len(blocks) // 5)
    for done, block in enumerate(blocks, start=1):
        state.accept_block(block, now=block.header.time)
        if done % step == 0 or done == len(blocks):
            progress.note(f"{path.name}: stored {done:,}/{len(blocks):,} blocks")
    if state.height != len(blocks):
        raise RuntimeError(f"{path.name} reached height {state.height}, not {len(blocks)}")
    return state


def reorg_trial(builder: ChainBuilder, state: ChainState) -> Callable[[], Timing]:
    """Fork at tip - 10, store 10 branch blocks (no switch at equal work), time the 11th: the reorg.

    Each trial lifts the tip by one block and leaves 10 stale blocks in the store.
    """

    def trial() -> Timing:
        fork_index = state.active_index(state.height - REORG_DEPTH)
        if fork_index is None:
            raise RuntimeError(f"the chain is shorter than {REORG_DEPTH} blocks")
        fork = builder.blocks[fork_index.hash]
        branch = builder.add_chain(REORG_DEPTH + 1, parent=fork)
        for block in branch[:-1]:
            if state.accept_block(block, now=block.header.time).connected:
                raise RuntimeError("a branch block with no more work than the tip was connected")
        last = branch[-1]
        timing, update = stopwatch(lambda: state.accept_block(last, now=last.header.time))
        if update.reorg_depth != REORG_DEPTH or len(update.connected) != REORG_DEPTH + 1:
            raise RuntimeError(f"expected a depth-{REORG_DEPTH} reorg, got {update.reorg_depth}")
        return timing

    return trial


def bench_reorg(builder: ChainBuilder, chain: list[Block], sizes: Sizes, workdir: Path, progress: Progress) -> Result:
    long, short = sizes.reorg_long, sizes.reorg_short
    name = f"reorg depth {REORG_DEPTH}"
    progress.start(name)
    states = [
        load_chain(chain[:long], workdir / f"reorg-{long}.sqlite", progress),
        load_chain(chain[:short], workdir / f"reorg-{short}.sqlite", progress),
    ]
    try:
        samples = interleaved(
            sizes.repeat, {"long": reorg_trial(builder, states[0]), "short": reorg_trial(builder, states[1])}
        )
        heights = [state.height for state in states]
    finally:
        for state in states:
            state.close()
    return progress.done(
        Result(
            SUITE,
            name,
            value=best(samples["long"]),
            baseline=best(samples["short"]),
            cpu_value=best_cpu(samples["long"]),
            cpu_baseline=best_cpu(samples["short"]),
            unit="s",
            measures=(
                f"accept_block triggering a depth-{REORG_DEPTH} reorg (disconnect {REORG_DEPTH}, connect "
                f"{REORG_DEPTH + 1}) at the tip of a {long:,}-block chain, ChainState on SQLite, "
                f"synchronous={BUILD_SYNC}"
            ),
            baseline_measures=f"the same reorg at the tip of a {short:,}-block chain",
            target=Target("<=", 1.5),
            details={
                **run_counts(samples),
                "median_long_s": median(samples["long"]),
                "median_short_s": median(samples["short"]),
                "final_height_long": heights[0],
                "final_height_short": heights[1],
            },
        )
    )


# ---------------------------------------------------------------- 5. memory


def bench_memory(blocks: list[Block], workdir: Path, progress: Progress) -> list[Result]:
    """Write the blocks to a file; fresh subprocesses stream them into a ChainState and report their memory."""
    blocks_path = workdir / "memory-blocks.bin"
    serialized = 0
    with blocks_path.open("wb") as out:
        for block in blocks:
            out.write(struct.pack("<I", block.size) + block.serialized)
            serialized += block.size
    results = []
    for mode, name, measures in (
        (
            "rss",
            "memory: peak RSS growth",
            "peak RSS of a fresh process storing the chain, minus its RSS after imports",
        ),
        ("heap", "memory: Python heap peak", "tracemalloc peak while the chain is stored (Python objects only)"),
    ):
        progress.start(name)
        progress.note(f"subprocess storing {len(blocks):,} blocks ({mode})")
        figures = run_memory_child(mode, blocks_path, workdir / f"memory-{mode}.sqlite")
        if figures["height"] != len(blocks):
            raise RuntimeError(f"memory subprocess reached height {figures['height']}, not {len(blocks)}")
        value = figures["peak_rss"] - figures["rss_after_imports"] if mode == "rss" else figures["heap_peak"]
        result = Result(
            SUITE,
            name,
            value=value,
            baseline=serialized,
            unit="bytes",
            measures=f"{measures}; {len(blocks):,} regtest blocks, synchronous={BUILD_SYNC}",
            baseline_measures=f"serialized size of those {len(blocks):,} blocks",
            details={**figures, "bytes_per_block": value / len(blocks)},
        )
        results.append(progress.done(result))
    return results


def run_memory_child(mode: str, blocks_path: Path, db_path: Path) -> dict[str, int]:
    command = [sys.executable, "-m", "bench.core", "--memory-child", mode, str(blocks_path), str(db_path)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory subprocess failed ({done.returncode}):\n{done.stderr}")
    figures: dict[str, int] = json.loads(done.stdout.splitlines()[-1])
    return figures


def rss_figures() -> tuple[int, int]:
    """``(current, peak)`` resident set size of this process, in bytes.

    ``getrusage(RUSAGE_SELF).ru_maxrss`` is no use in a subprocess on Linux: the
    kernel carries the parent's peak across fork and exec, so it starts at the
    parent's size. ``/proc/self/status`` (VmRSS, VmHWM) describes this process's own
    memory; elsewhere (macOS) ``ru_maxrss``, in bytes there, is the fallback.
    """
    status = Path("/proc/self/status")
    if status.exists():
        fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = peak if sys.platform == "darwin" else peak * 1024
    return peak, peak


def memory_child(mode: str, blocks_path: Path, db_path: Path) -> dict[str, int]:
    """Store every block of ``blocks_path`` in a new ChainState; return the memory it took.

    ``rss``: resident set size after imports and at its peak. ``heap``: the peak of
    Python allocations under tracemalloc (whose own overhead spoils RSS, hence two runs).
    """
    rss_after_imports = rss_figures()[0]
    if mode == "heap":
        tracemalloc.start()
    state = ChainState(PARAMS, db_path, synchronous=BUILD_SYNC)
    with blocks_path.open("rb") as source:
        while prefix := source.read(4):
            block = Block.parse(source.read(struct.unpack("<I", prefix)[0]))
            state.accept_block(block, now=block.header.time)
    figures = {"height": state.height}
    if mode == "heap":
        figures["heap_peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    else:
        figures["rss_after_imports"] = rss_after_imports
        figures["peak_rss"] = rss_figures()[1]
    state.close()
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.core", description="internal: the memory subprocess")
    parser.add_argument("--memory-child", nargs=3, metavar=("MODE", "BLOCKS", "DB"), required=True)
    mode, blocks_file, db_file = parser.parse_args().memory_child
    if mode not in ("rss", "heap"):
        parser.error(f"mode is rss or heap, not {mode!r}")
    print(json.dumps(memory_child(mode, Path(blocks_file), Path(db_file))))
