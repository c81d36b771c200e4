"""Block templates and the proof-of-work search, in the miner thread or in worker processes.

A template takes mempool transactions by fee rate (parents first) up to the block
size limit and pays subsidy + fees to the mining address. The search hashes the
80-byte header with a SHA-256 midstate (``chain.mining.solve_header``) in slices of
the nonce space, checking between slices, and inside them every 65,536 nonces,
whether the tip moved; when it has, the work is abandoned at once. When the whole
nonce space fails, the coinbase's extra nonce is bumped (a new merkle root) and the
search starts over. With ``processes > 0`` each worker process searches a disjoint
slice; a shared event stops them all.
"""

from __future__ import annotations

import logging
import multiprocessing
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from chain.block import Block, BlockHeader
from chain.mining import MAX_NONCE, build_block, solve_header, with_extra_nonce

if TYPE_CHECKING:
    from node.service import Node

log = logging.getLogger(__name__)

COINBASE_RESERVE = 1_000  # bytes kept free for the header, transaction count and coinbase
SLICE = 1 << 20  # nonces per slice handed to a worker process


def block_template(node: Node, reward_to: bytes, *, extra_nonce: int = 0, now: int | None = None) -> Block:
    """An unsolved block on the current tip: best-paying mempool transactions, coinbase to ``reward_to``."""
    chain, params = node.chain, node.params
    with node.lock:
        tip = chain.tip
        height = tip.height + 1
        transactions, fees = node.mempool.select(params.max_block_size - COINBASE_RESERVE)
        timestamp = max(int(now if now is not None else node.faults.now()), chain.median_time_past(tip) + 1)
        return build_block(
            tip.hash,
            height,
            timestamp,
            chain.next_bits(tip),
            reward_to,
            params.block_subsidy(height) + fees,
            transactions,
            extra_nonce=extra_nonce,
            # random bytes in every coinbase: two nodes mining on one tip in the same second to the
            # same address would otherwise search the very same header and find the same block
            tag=b"cairn-node " + secrets.token_bytes(8),
        )


# ---------------------------------------------------------------- worker processes

_worker_stop: Any = None


def _init_worker(stop_event: Any) -> None:
    global _worker_stop
    _worker_stop = stop_event


def _search_slice(raw_header: bytes, start: int, stop: int) -> int | None:
    """Worker process: search ``[start, stop)`` for a nonce; None when exhausted or told to stop."""
    header = BlockHeader.parse(raw_header)
    solved = solve_header(header, start=start, stop=stop, should_stop=_worker_stop.is_set)
    return None if solved is None else solved.nonce


class Solver:
    """Find a nonce for a header, in this thread or across worker processes."""

    def __init__(self, processes: int = 0) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._stop_event: Any = None
        if processes > 0:
            context = multiprocessing.get_context("spawn")
            self._stop_event = context.Event()
            self._pool = ProcessPoolExecutor(
                processes, mp_context=context, initializer=_init_worker, initargs=(self._stop_event,)
            )

    def close(self) -> None:
        if self._pool is not None:
            self._stop_event.set()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def solve_block(self, block: Block, should_stop: Callable[[], bool]) -> Block | None:
        """Solve ``block``, bumping the extra nonce as needed; None once ``should_stop()`` says so."""
        extra_nonce = 0
        while not should_stop():
            solved = self.solve_header(block.header, should_stop)
            if solved is not None:
                return Block(solved, block.transactions)
            extra_nonce += 1
            block = with_extra_nonce(block, extra_nonce)
        return None

    def solve_header(self, header: BlockHeader, should_stop: Callable[[], bool]) -> BlockHeader | None:
        if self._pool is None:
            solved = solve_header(header, should_stop=should_stop)
            return None if should_stop() else solved
        return self._solve_in_pool(header, should_stop)

    def _solve_in_pool(self, header: BlockHeader, should_stop: Callable[[], bool]) -> BlockHeader | None:
        assert self._pool is not None
        self._stop_event.clear()
        raw = header.serialized
        next_start = 0
        running: set[Future[int | None]] = set()
        found: int | None = None
        try:
            while True:
                while len(running) < self.processes and next_start <= MAX_NONCE:
                    stop = min(next_start + SLICE, MAX_NONCE + 1)
                    running.add(self._pool.submit(_search_slice, raw, next_start, stop))
                    next_start = stop
                if not running:
                    return None  # nonce space exhausted
                done, running = wait(running, timeout=0.05, return_when=FIRST_COMPLETED)
                for future in done:
                    nonce = future.result()
                    if nonce is not None and found is None:
                        found = nonce
                if found is not None:
                    return replace(header, nonce=found)
                if should_stop():
                    return None
        finally:
            if running:
                self._stop_event.set()
                wait(running)
                self._stop_event.clear()


class Miner:
    """Mine on the tip in a background thread until stopped; abandon work whenever the tip changes."""

    def __init__(self, node: Node, processes: int = 0) -> None:
        self.node = node
        self.processes = processes
        self.reward_to: bytes | None = None
        self.blocks_found = 0
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._tip_changed = threading.Event()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, reward_to: bytes) -> None:
        if self.running:
            self.reward_to = reward_to
            return
        self.reward_to = reward_to
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="miner", daemon=True)
        self._thread.start()
        log.info("miner started with %d worker processes", self.processes)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            log.info("miner stopped after %d blocks", self.blocks_found)

    def tip_changed(self) -> None:
        self._tip_changed.set()

    def _run(self) -> None:
        solver = Solver(self.processes)
        try:
            while not self._stopping.is_set():
                self._tip_changed.clear()
                assert self.reward_to is not None
                template = block_template(self.node, self.reward_to)
                tip = template.header.prev_hash

                def stale(tip: bytes = tip) -> bool:
                    return self._stopping.is_set() or self._tip_changed.is_set() or self.node.chain.tip.hash != tip

                block = solver.solve_block(template, stale)
                if block is None:
                    continue
                try:
                    self.node.submit_block(block)
                except Exception as exc:  # a template raced a reorg: log it and mine on the new tip
                    log.warning("mined block %s was refused: %s", block.hash_hex, exc)
                    continue
                self.blocks_found += 1
                if self.node.config.mine_interval > 0:  # paced mining (regtest devnets): rest between blocks
                    self._stopping.wait(self.node.config.mine_interval)
        finally:
            solver.close()


def generate(node: Node, reward_to: bytes, count: int, should_stop: Callable[[], bool]) -> list[Block]:
    """Mine ``count`` blocks now in the calling thread (``POST /api/mining/generate``)."""
    solver = Solver(0)
    blocks: list[Block] = []
    while len(blocks) < count and not should_stop():
        template = block_template(node, reward_to)
        block = solver.solve_block(template, should_stop)
        if block is None:
            break
        node.submit_block(block)
        blocks.append(block)
    return blocks
