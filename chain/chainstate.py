"""The block tree, fork choice by most cumulative work, reorgs, and the stored UTXO set.

Every valid header and block received is kept, with its chainwork and validity.
The active chain ends at the valid block with the most chainwork (the first seen
wins ties). Switching to another tip disconnects back to the fork point with
per-block undo data and connects the new branch, all in one SQLite transaction, so
a reorg costs O(its depth) and a crash leaves the old tip or the new one. A block
that fails while being connected is marked invalid with its descendants and the
chain falls back to the best valid tip. ``accept_block`` returns what changed
(``ChainUpdate``): blocks connected and disconnected, for the mempool and miner.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntFlag
from pathlib import Path
from typing import Any, TypeVar

from chain.block import Block, BlockHeader
from chain.crypto import SignatureCache
from chain.errors import BlockError, HeaderError, StorageError, ValidationError
from chain.params import NetworkParams
from chain.pow import block_work, check_proof_of_work, next_work_required
from chain.storage import SCHEMA_VERSION, BlockStore
from chain.transaction import OutPoint
from chain.utxo import Coin, CoinView, parse_undo, serialize_undo
from chain.validation import (
    MUTATION_REASONS,
    check_block,
    check_header_context,
    connect_block,
    disconnect_block,
    median_time_past,
)

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class Status(IntFlag):
    HAVE_DATA = 1  # the full block is stored
    VALID = 2  # it has been connected: every rule passed
    FAILED = 4  # it broke a rule
    FAILED_PARENT = 8  # an ancestor broke a rule


@dataclass(eq=False)
class BlockIndex:
    """A node of the block tree. Mutable bookkeeping, never a consensus object."""

    header: BlockHeader
    height: int
    chainwork: int
    prev: BlockIndex | None
    status: Status
    seq: int
    chain_complete: bool = False  # this block and all its ancestors have data

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @property
    def failed(self) -> bool:
        return bool(self.status & (Status.FAILED | Status.FAILED_PARENT))

    @property
    def valid(self) -> bool:
        return bool(self.status & Status.VALID)


@dataclass(frozen=True)
class ChainUpdate:
    """What one call changed: blocks connected and disconnected, in order, and blocks found invalid."""

    connected: tuple[Block, ...] = ()
    disconnected: tuple[Block, ...] = ()
    invalid: tuple[tuple[bytes, ValidationError], ...] = ()
    is_new: bool = True  # False when the block was already stored

    @property
    def reorg_depth(self) -> int:
        return len(self.disconnected)


@dataclass(frozen=True)
class UtxoCheck:
    """The stored UTXO set compared with one recomputed from the active chain's blocks."""

    expected: int
    stored: int
    missing: tuple[OutPoint, ...] = field(default=())
    unexpected: tuple[OutPoint, ...] = field(default=())
    differing: tuple[OutPoint, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.differing)


class _ConnectFailed(Exception):
    def __init__(self, index: BlockIndex, error: ValidationError) -> None:
        self.index, self.error = index, error


def _touched(block: Block, undo: Sequence[tuple[OutPoint, Coin]]) -> list[tuple[bytes, bytes]]:
    """``(pubkey_hash, txid)`` for every output a block's transactions pay and every coin they spend."""
    touched = [(txout.pubkey_hash, tx.txid) for tx in block.transactions for txout in tx.outputs]
    spenders = (tx for tx in block.transactions[1:] for _ in tx.inputs)
    touched += [(coin.pubkey_hash, tx.txid) for tx, (_, coin) in zip(spenders, undo, strict=True)]
    return touched


def _locked(method: F) -> F:
    @functools.wraps(method)
    def wrapper(self: ChainState, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class ChainState:
    """A network's block tree and active chain, stored in one SQLite file. Thread-safe."""

    def __init__(
        self,
        params: NetworkParams,
        path: str | Path,
        *,
        sig_cache: SignatureCache | None = None,
        assume_valid: bytes | None = None,
        synchronous: str = "FULL",
        clock: Callable[[], float] = time.time,
        fork_choice: str = "work",
    ) -> None:
        if params.genesis_block is None:
            raise ValueError(f"{params.name} has no Cairn genesis block: only its headers can be checked")
        if fork_choice not in ("work", "length"):
            raise ValueError(f"fork choice is 'work' or 'length', not {fork_choice!r}")
        if fork_choice == "length" and params.name != "devnet":
            raise ValueError("fork choice by length is a teaching switch, refused outside devnet")
        # "length" is wrong on purpose: a chain of many easy blocks beats one with more work.
        # The experiment lab uses it on devnet to show why Bitcoin counts work, not blocks.
        self.fork_choice = fork_choice
        self.params = params
        self.sig_cache = sig_cache if sig_cache is not None else SignatureCache()
        self.assume_valid = assume_valid
        self._assumed: set[bytes] | None = None
        self._clock = clock
        self._lock = threading.RLock()
        self._index: dict[bytes, BlockIndex] = {}
        self._children: defaultdict[bytes, list[BlockIndex]] = defaultdict(list)
        self._active: list[BlockIndex] = []
        self._candidates: set[BlockIndex] = set()
        self._best_header: BlockIndex | None = None  # most chainwork among headers not known invalid
        self._recent: OrderedDict[bytes, Block] = OrderedDict()
        self._seq = 0
        self.store = BlockStore(path, synchronous=synchronous)
        try:
            if not self._load():
                self._init_genesis()
            self.activate_best_chain()
        except BaseException:
            self.store.close()
            raise

    # ------------------------------------------------------------ opening

    def _init_genesis(self) -> None:
        genesis = self.params.genesis_block
        assert genesis is not None
        index = BlockIndex(genesis.header, 0, block_work(genesis.header.bits), None, Status.HAVE_DATA | Status.VALID, 0)
        index.chain_complete = True
        with self.store.transaction():
            self.store.set_meta("network", self.params.name)
            self.store.set_meta("schema_version", str(SCHEMA_VERSION))
            self._put_index(index)
            self.store.put_block(genesis.hash, genesis.serialized)
            self.store.put_undo(genesis.hash, serialize_undo([]))  # its outputs are unspendable, as in Bitcoin
            self.store.set_active_from(0, [genesis.hash])
        self._register(index)
        self._active = [index]
        self._seq = 1

    def _load(self) -> bool:
        rows = self.store.load_index()
        if not rows:
            return False
        network = self.store.get_meta("network")
        if network != self.params.name:
            raise StorageError(f"{self.store.path} holds a {network} chain, not {self.params.name}")
        schema = self.store.get_meta("schema_version")
        if schema != str(SCHEMA_VERSION):
            raise StorageError(
                f"{self.store.path} has storage schema {schema}, this Cairn reads {SCHEMA_VERSION}: "
                "move it aside and let the node sync again"
            )
        for block_hash, height, raw, work, status, seq in sorted(rows, key=lambda r: r[1]):
            header = BlockHeader.parse(raw)
            if header.hash != block_hash:
                raise StorageError(f"stored header {block_hash.hex()} does not hash to its key")
            prev = self._index.get(header.prev_hash) if height else None
            if height and prev is None:
                raise StorageError(f"stored header at height {height} has no stored parent")
            index = BlockIndex(header, height, work, prev, Status(status), seq)
            index.chain_complete = bool(index.status & Status.HAVE_DATA) and (prev is None or prev.chain_complete)
            self._register(index)
            self._seq = max(self._seq, seq + 1)
        if self._index.get(self.params.genesis_hash) is None:
            raise StorageError("the stored block tree does not start at this network's genesis")
        for height, block_hash in enumerate(self.store.load_active_chain()):
            index = self._index.get(block_hash)
            if index is None or index.height != height or (height and index.prev is not self._active[-1]):
                raise StorageError(f"stored active chain is broken at height {height}")
            self._active.append(index)
        self._candidates = {i for i in self._index.values() if i.chain_complete and not i.failed}
        log.info("opened %s chain at height %d, tip %s", self.params.name, self.height, self.tip.header.hash_hex)
        return True

    def close(self) -> None:
        with self._lock:
            self.store.close()

    # ------------------------------------------------------------ reading

    @property
    def tip(self) -> BlockIndex:
        return self._active[-1]

    @property
    def height(self) -> int:
        return len(self._active) - 1

    @_locked
    def best_header(self) -> BlockIndex:
        """The header the fork choice ranks first (most chainwork) among those not known invalid: where sync heads."""
        assert self._best_header is not None
        return self._best_header

    @_locked
    def get_index(self, block_hash: bytes) -> BlockIndex | None:
        return self._index.get(block_hash)

    @_locked
    def active_index(self, height: int) -> BlockIndex | None:
        return self._active[height] if 0 <= height < len(self._active) else None

    @_locked
    def is_active(self, block_hash: bytes) -> bool:
        index = self._index.get(block_hash)
        return index is not None and self._on_active(index)

    def _on_active(self, index: BlockIndex) -> bool:
        return index.height < len(self._active) and self._active[index.height] is index

    @_locked
    def get_block(self, block_hash: bytes) -> Block | None:
        index = self._index.get(block_hash)
        if index is None or not index.status & Status.HAVE_DATA:
            return None
        return self._read_block(index)

    @_locked
    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        return self.store.get_coin(outpoint)

    @_locked
    def coins_for(self, pubkey_hash: bytes) -> list[tuple[OutPoint, Coin]]:
        return self.store.coins_by_pubkey_hash(pubkey_hash)

    @_locked
    def find_transaction(self, txid: bytes) -> tuple[BlockIndex, int] | None:
        """The active-chain block holding ``txid`` and its position there."""
        found = self.store.find_transaction(txid)
        if found is None:
            return None
        return self._index[found[0]], found[1]

    @_locked
    def address_history(self, pubkey_hash: bytes) -> list[tuple[bytes, int]]:
        """``(txid, height)`` of active-chain transactions that pay or spend ``pubkey_hash``."""
        return self.store.address_history(pubkey_hash)

    @_locked
    def tips(self) -> list[BlockIndex]:
        """Every leaf of the block tree: the active tip and the ends of stale or invalid branches."""
        return [i for i in self._index.values() if not self._children.get(i.hash)]

    @_locked
    def all_indexes(self) -> list[BlockIndex]:
        return list(self._index.values())

    @_locked
    def locator(self) -> list[bytes]:
        """Hashes of the active chain, dense near the tip then exponentially sparse (Bitcoin Core: GetLocator)."""
        hashes, height, step = [], self.height, 1
        while height > 0:
            hashes.append(self._active[height].hash)
            if len(hashes) >= 10:
                step *= 2
            height -= step
        hashes.append(self._active[0].hash)
        return hashes

    @_locked
    def headers_after(self, locator: Sequence[bytes], limit: int) -> list[BlockHeader]:
        """Active-chain headers after the first locator hash that is on the active chain (genesis if none)."""
        start = 0
        for block_hash in locator:
            index = self._index.get(block_hash)
            if index is not None and self._on_active(index):
                start = index.height
                break
        return [i.header for i in self._active[start + 1 : start + 1 + limit]]

    @_locked
    def median_time_past(self, index: BlockIndex) -> int:
        times = []
        walker: BlockIndex | None = index
        while walker is not None and len(times) < self.params.median_time_span:
            times.append(walker.header.time)
            walker = walker.prev
        return median_time_past(times)

    @_locked
    def next_bits(self, prev: BlockIndex) -> int:
        """The bits a block on top of ``prev`` must carry."""
        return next_work_required(
            self.params, prev.height, prev.header.bits, lambda h: self._ancestor(prev, h).header.time
        )

    def _ancestor(self, index: BlockIndex, height: int) -> BlockIndex:
        if self._on_active(index):
            return self._active[height]
        walker = index
        while walker.height > height:
            assert walker.prev is not None
            walker = walker.prev
        return walker

    def _read_block(self, index: BlockIndex) -> Block:
        block = self._recent.get(index.hash)
        if block is None:
            data = self.store.get_block(index.hash)
            if data is None:
                raise StorageError(f"block {index.header.hash_hex} is missing from the store")
            block = Block.parse(data)
            self._remember(block)
        return block

    def _remember(self, block: Block) -> None:
        self._recent[block.hash] = block
        while len(self._recent) > 32:
            self._recent.popitem(last=False)

    # ------------------------------------------------------------ writing

    def _now(self, now: int | None) -> int:
        return int(self._clock()) if now is None else now

    def _register(self, index: BlockIndex) -> None:
        self._index[index.hash] = index
        if index.prev is not None:
            self._children[index.prev.hash].append(index)
        best = self._best_header
        if not index.failed and (best is None or self._weight(index) > self._weight(best)):
            self._best_header = index

    def _put_index(self, index: BlockIndex) -> None:
        self.store.put_index(
            index.hash, index.height, index.header.serialized, index.chainwork, int(index.status), index.seq
        )

    def _check_header(self, header: BlockHeader, now: int) -> BlockIndex:
        """Every header rule; returns the parent's index."""
        check_proof_of_work(header.hash, header.bits, self.params.pow_limit)
        prev = self._index.get(header.prev_hash)
        if prev is None:
            raise HeaderError("prev-blk-not-found", f"parent {header.prev_hash[::-1].hex()} is unknown")
        if prev.failed:
            raise HeaderError("bad-prevblk", f"parent {prev.header.hash_hex} is invalid")
        check_header_context(
            header, self.params, expected_bits=self.next_bits(prev), median_time=self.median_time_past(prev), now=now
        )
        return prev

    def _new_index(self, header: BlockHeader, prev: BlockIndex) -> BlockIndex:
        index = BlockIndex(
            header, prev.height + 1, prev.chainwork + block_work(header.bits), prev, Status(0), self._seq
        )
        self._seq += 1
        return index

    @_locked
    def accept_header(self, header: BlockHeader, now: int | None = None) -> BlockIndex:
        """Check a header against its parent and add it to the tree (idempotent)."""
        return self.accept_headers([header], now)[0]

    @_locked
    def accept_headers(self, headers: Iterable[BlockHeader], now: int | None = None) -> list[BlockIndex]:
        """Add a run of headers, storing them in one transaction; raise at the first bad one after storing the good."""
        now = self._now(now)
        accepted: list[BlockIndex] = []
        new: list[BlockIndex] = []
        error: ValidationError | None = None
        for header in headers:
            index = self._index.get(header.hash)
            if index is None:
                try:
                    prev = self._check_header(header, now)
                except ValidationError as exc:
                    error = exc
                    break
                index = self._new_index(header, prev)
                self._register(index)
                new.append(index)
            elif index.failed:
                error = HeaderError("duplicate-invalid", f"header {header.hash_hex} is known to be invalid")
                break
            accepted.append(index)
        if new:
            try:
                with self.store.transaction():
                    for index in new:
                        self._put_index(index)
            except StorageError:
                for index in new:
                    del self._index[index.hash]
                    assert index.prev is not None
                    self._children[index.prev.hash].remove(index)
                self._best_header = max(
                    (i for i in self._index.values() if not i.failed), key=lambda i: (self._weight(i), -i.seq)
                )
                raise
        if error is not None:
            raise error
        return accepted

    @_locked
    def accept_block(self, block: Block, now: int | None = None) -> ChainUpdate:
        """Check, store and, if it leads to more work, connect ``block``; return what changed.

        Raises the ValidationError of the first rule the block breaks. When the block is
        found invalid only while connecting, the chain may still have moved (to a valid
        ancestor with more work): that change is in the error's ``chain_update``.
        """
        index = self._index.get(block.hash)
        if index is not None and index.failed:
            raise BlockError("duplicate-invalid", f"block {block.hash_hex} is known to be invalid")
        if index is not None and index.status & Status.HAVE_DATA:
            return ChainUpdate(is_new=False)
        if index is None:
            index = self.accept_header(block.header, now)
        try:
            check_block(block, self.params)
        except ValidationError as exc:
            if exc.reason not in MUTATION_REASONS:
                self._mark_failed(index)
            raise
        with self.store.transaction():
            self.store.put_block(block.hash, block.serialized)
            self.store.set_status(block.hash, int(index.status | Status.HAVE_DATA))
        index.status |= Status.HAVE_DATA
        self._remember(block)
        self._on_data(index)
        update = self.activate_best_chain()
        if index.failed:  # connecting it (or an ancestor on its branch) broke a rule
            error = dict(update.invalid).get(index.hash) or BlockError(
                "bad-prevblk", f"an ancestor of {block.hash_hex} is invalid"
            )
            error.chain_update = update
            raise error
        return update

    def _on_data(self, index: BlockIndex) -> None:
        if index.prev is not None and not index.prev.chain_complete:
            return
        pending = [index]
        while pending:
            current = pending.pop()
            current.chain_complete = True
            if not current.failed:
                self._candidates.add(current)
            pending += [c for c in self._children.get(current.hash, ()) if c.status & Status.HAVE_DATA]

    def _mark_failed(self, index: BlockIndex) -> None:
        """Mark ``index`` invalid and every descendant as descending from an invalid block."""
        index.status |= Status.FAILED
        changed, pending = [index], list(self._children.get(index.hash, ()))
        while pending:
            child = pending.pop()
            child.status |= Status.FAILED_PARENT
            changed.append(child)
            pending += self._children.get(child.hash, ())
        self._candidates.difference_update(changed)
        if self._best_header is not None and self._best_header.failed:  # rare: look for the next best
            valid = [i for i in self._index.values() if not i.failed]
            self._best_header = max(valid, key=lambda i: (self._weight(i), -i.seq))
        with self.store.transaction():
            self.store.set_statuses((i.hash, int(i.status)) for i in changed)

    def weight(self, index: BlockIndex) -> int:
        """What the fork choice compares: chainwork, or height under the teaching switch."""
        return index.chainwork if self.fork_choice == "work" else index.height

    _weight = weight

    def _best_candidate(self) -> BlockIndex | None:
        tip_weight = self._weight(self.tip)
        self._candidates = {c for c in self._candidates if self._weight(c) > tip_weight}
        if not self._candidates:
            return None
        return max(self._candidates, key=lambda c: (self._weight(c), -c.seq))

    @_locked
    def activate_best_chain(self) -> ChainUpdate:
        """Move the active chain to the most-work valid tip; skip past blocks that turn out invalid."""
        connected: list[Block] = []
        disconnected: list[Block] = []
        invalid: list[tuple[bytes, ValidationError]] = []
        while (best := self._best_candidate()) is not None:
            try:
                connected, disconnected = self._reorganize(best)
            except _ConnectFailed as failure:
                log.warning("block %s is invalid: %s", failure.index.header.hash_hex, failure.error)
                invalid.append((failure.index.hash, failure.error))
                self._mark_failed(failure.index)
                continue
            break  # best had the most work of all candidates: none is left above it
        return ChainUpdate(tuple(connected), tuple(disconnected), tuple(invalid))

    def _assumed_valid(self, index: BlockIndex) -> bool:
        """Whether ``index`` is an ancestor of the assume-valid block, whose signatures may go unchecked."""
        if self.assume_valid is None:
            return False
        if self._assumed is None:
            anchor = self._index.get(self.assume_valid)
            if anchor is None:
                return False
            self._assumed = set()
            walker: BlockIndex | None = anchor
            while walker is not None:
                self._assumed.add(walker.hash)
                walker = walker.prev
        return index.hash in self._assumed

    def _reorganize(self, best: BlockIndex) -> tuple[list[Block], list[Block]]:
        """Disconnect to the fork point and connect up to ``best`` in one transaction."""
        path = []
        walker: BlockIndex | None = best
        while walker is not None and not self._on_active(walker):
            path.append(walker)
            walker = walker.prev
        assert walker is not None, "every block descends from genesis"
        fork = walker
        path.reverse()
        view = CoinView(self.store.get_coin)
        disconnected = []
        unindexed = []
        for index in reversed(self._active[fork.height + 1 :]):
            block = self._read_block(index)
            undo_data = self.store.get_undo(index.hash)
            if undo_data is None:
                raise StorageError(f"undo data of active block {index.header.hash_hex} is missing")
            undo_list = parse_undo(undo_data)
            try:
                disconnect_block(block, undo_list, view)
            except ValidationError as exc:
                raise StorageError(f"cannot disconnect {index.header.hash_hex}: {exc}") from exc
            disconnected.append(block)
            unindexed.append((index, block, undo_list))
        connected = []
        for index in path:
            block = self._read_block(index)
            try:
                undo = connect_block(
                    block,
                    index.height,
                    view,
                    self.params,
                    sig_cache=self.sig_cache,
                    verify_signatures=not self._assumed_valid(index),
                )
            except ValidationError as exc:
                raise _ConnectFailed(index, exc) from exc
            connected.append((index, block, undo))
        spent, added = view.changes()
        with self.store.transaction():
            self.store.apply_coins(spent, added)
            for index, block, undo_list in unindexed:
                txids = [tx.txid for tx in block.transactions]
                self.store.unindex_transactions(index.height, txids, _touched(block, undo_list))
            for index, block, undo in connected:
                txids = [tx.txid for tx in block.transactions]
                self.store.index_transactions(index.hash, index.height, txids, _touched(block, undo))
            self.store.put_undos((index.hash, serialize_undo(undo)) for index, _, undo in connected)
            self.store.set_statuses(
                (index.hash, int(index.status | Status.VALID)) for index, _, _ in connected if not index.valid
            )
            self.store.set_active_from(fork.height + 1, [index.hash for index in path])
        for index in path:
            index.status |= Status.VALID
        del self._active[fork.height + 1 :]
        self._active.extend(path)
        if disconnected:
            log.info("reorg: disconnected %d blocks back to height %d", len(disconnected), fork.height)
        return [block for _, block, _ in connected], disconnected

    # ------------------------------------------------------------ checking

    @_locked
    def check_utxo_set(self, progress: Callable[[int], None] | None = None) -> UtxoCheck:
        """Recompute the UTXO set from the active chain's blocks and compare it with the stored one."""
        view = CoinView(lambda _: None)
        for index in self._active[1:]:
            connect_block(self._read_block(index), index.height, view, self.params, verify_signatures=False)
            if progress is not None:
                progress(index.height)
        expected = view.added
        stored = self.store.all_coins()
        return UtxoCheck(
            expected=len(expected),
            stored=len(stored),
            missing=tuple(op for op in expected if op not in stored),
            unexpected=tuple(op for op in stored if op not in expected),
            differing=tuple(op for op, coin in expected.items() if op in stored and stored[op] != coin),
        )
