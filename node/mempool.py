"""Unconfirmed transactions: admission by the consensus rules plus this node's policy, eviction, reorg take-back.

A transaction enters when it passes ``check_transaction``, ``check_tx_inputs`` (at the
next block's height, so coinbase maturity is judged as a miner would) and
``verify_tx_signatures`` against the active chain's UTXO set plus the outputs of
transactions already in the pool. Signatures go through the chain's
``SignatureCache``, so a block repeating them does not verify them again.

Policy (reason codes, HTTP 400 at the API):

- ``coinbase``: a coinbase only makes sense inside a block.
- ``txn-already-known``: in the pool already, or confirmed on the active chain.
- ``txn-mempool-conflict``: spends an output a pooled transaction spends; first seen wins.
- ``mempool-full``: the pool is at its byte limit and the transaction pays no better fee
  rate than what would have to be evicted. Eviction removes the lowest fee-rate
  transactions first, each with its descendants (which cannot stay without it).

Simplifications: no replace-by-fee, no minimum relay fee, no orphan-transaction pool
(a transaction whose parent is unknown is refused with ``bad-txns-inputs-missingorspent``).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from chain.chainstate import ChainState, ChainUpdate
from chain.errors import TransactionError, ValidationError
from chain.transaction import OutPoint, Transaction
from chain.utxo import Coin
from chain.validation import check_transaction, check_tx_inputs, verify_tx_signatures
from node.errors import PolicyError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MempoolEntry:
    """A pooled transaction with what admission learned about it."""

    tx: Transaction
    fee: int
    spent: tuple[Coin, ...]  # the coins its inputs spend, in input order
    parents: frozenset[bytes]  # txids of pooled transactions it spends from
    time: int
    seq: int

    @property
    def txid(self) -> bytes:
        return self.tx.txid

    @property
    def size(self) -> int:
        return self.tx.size

    @property
    def fee_rate(self) -> int:
        """Fee per 1000 bytes, in smallest units (Bitcoin Core's CFeeRate unit)."""
        return self.fee * 1000 // self.size

    def better_than(self, other: MempoolEntry) -> bool:
        """Higher fee per byte (compared exactly, by cross-multiplication)."""
        return self.fee * other.size > other.fee * self.size


class Mempool:
    """The pool of valid unconfirmed transactions. Thread-safe; takes the chain's lock after its own."""

    def __init__(self, chain: ChainState, max_bytes: int = 5_000_000) -> None:
        self.chain = chain
        self.params = chain.params
        self.max_bytes = max_bytes
        self._lock = threading.RLock()
        self._entries: dict[bytes, MempoolEntry] = {}  # in admission order: parents before children
        self._spenders: dict[OutPoint, bytes] = {}  # outpoint -> txid of the pooled tx spending it
        self._bytes = 0
        self._seq = 0

    # ------------------------------------------------------------ reading

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, txid: object) -> bool:
        return txid in self._entries

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def get(self, txid: bytes) -> MempoolEntry | None:
        with self._lock:
            return self._entries.get(txid)

    def entries(self) -> list[MempoolEntry]:
        with self._lock:
            return list(self._entries.values())

    def spender_of(self, outpoint: OutPoint) -> bytes | None:
        with self._lock:
            return self._spenders.get(outpoint)

    def output_coin(self, outpoint: OutPoint) -> Coin | None:
        """The coin a pooled transaction creates at ``outpoint`` (height: the next block's)."""
        with self._lock:
            entry = self._entries.get(outpoint.txid)
            if entry is None or outpoint.index >= len(entry.tx.outputs):
                return None
            txout = entry.tx.outputs[outpoint.index]
            return Coin(txout.amount, txout.pubkey_hash, self.chain.height + 1, False)

    def descendants(self, txid: bytes) -> list[bytes]:
        """``txid`` and every pooled transaction spending from it, directly or not (parents first)."""
        with self._lock:
            found: list[bytes] = []
            seen: set[bytes] = set()
            pending = [txid]
            while pending:
                current = pending.pop()
                if current in seen or current not in self._entries:
                    continue
                seen.add(current)
                found.append(current)
                tx = self._entries[current].tx
                for index in range(len(tx.outputs)):
                    child = self._spenders.get(OutPoint(current, index))
                    if child is not None:
                        pending.append(child)
            return sorted(found, key=lambda t: self._entries[t].seq)

    # ------------------------------------------------------------ admission

    def add(self, tx: Transaction, now: int | None = None) -> MempoolEntry:
        """Validate ``tx`` against the active chain plus the pool and admit it; raise with a reason code otherwise."""
        with self._lock:
            if tx.is_coinbase:
                raise PolicyError("a coinbase is only valid inside a block", "coinbase")
            check_transaction(tx, self.params)
            if tx.txid in self._entries:
                raise PolicyError(f"{tx.txid[::-1].hex()} is already in the mempool", "txn-already-known")
            if self.chain.find_transaction(tx.txid) is not None:
                raise PolicyError(f"{tx.txid[::-1].hex()} is already confirmed", "txn-already-known")
            spent, parents = self._spent_coins(tx)
            height = self.chain.height + 1
            fee = check_tx_inputs(tx, spent, height, self.params)
            verify_tx_signatures(tx, spent, self.params, self.chain.sig_cache)
            entry = MempoolEntry(tx, fee, tuple(spent), frozenset(parents), int(now or time.time()), self._seq)
            self._make_room(entry)
            self._seq += 1
            self._entries[tx.txid] = entry
            for txin in tx.inputs:
                self._spenders[txin.prevout] = tx.txid
            self._bytes += tx.size
            return entry

    def _spent_coins(self, tx: Transaction) -> tuple[list[Coin], set[bytes]]:
        spent: list[Coin] = []
        parents: set[bytes] = set()
        for index, txin in enumerate(tx.inputs):
            holder = self._spenders.get(txin.prevout)
            if holder is not None:
                raise PolicyError(
                    f"input {index} spends {txin.prevout}, already spent by pooled {holder[::-1].hex()}",
                    "txn-mempool-conflict",
                )
            coin = self.output_coin(txin.prevout)
            if coin is not None:
                parents.add(txin.prevout.txid)
            else:
                coin = self.chain.get_coin(txin.prevout)
            if coin is None:
                raise TransactionError("bad-txns-inputs-missingorspent", f"input {index} ({txin.prevout}) is unknown")
            spent.append(coin)
        return spent, parents

    def _make_room(self, entry: MempoolEntry) -> None:
        """Evict lower fee-rate transactions (with descendants) until ``entry`` fits, or raise ``mempool-full``."""
        need = self._bytes + entry.size - self.max_bytes
        if need <= 0:
            return
        protected = self._ancestors(entry.parents)
        evict: list[bytes] = []
        freed = 0
        for victim in sorted(self._entries.values(), key=lambda e: (e.fee * 1000 // e.size, -e.seq)):
            if freed >= need:
                break
            if not entry.better_than(victim):
                break
            if victim.txid in evict or victim.txid in protected:
                continue
            group = [t for t in self.descendants(victim.txid) if t not in evict]
            if protected.intersection(group):
                continue
            evict += group
            freed += sum(self._entries[t].size for t in group)
        if freed < need:
            raise PolicyError(
                f"mempool holds {self._bytes} of {self.max_bytes} bytes and nothing cheaper can make room",
                "mempool-full",
            )
        for txid in evict:
            log.info("mempool evicted %s for a better fee rate", txid[::-1].hex())
            self._remove(txid)

    def _ancestors(self, parents: Iterable[bytes]) -> set[bytes]:
        found: set[bytes] = set()
        pending = list(parents)
        while pending:
            txid = pending.pop()
            if txid in found or txid not in self._entries:
                continue
            found.add(txid)
            pending += self._entries[txid].parents
        return found

    def _remove(self, txid: bytes) -> MempoolEntry | None:
        entry = self._entries.pop(txid, None)
        if entry is None:
            return None
        for txin in entry.tx.inputs:
            if self._spenders.get(txin.prevout) == txid:
                del self._spenders[txin.prevout]
        self._bytes -= entry.size
        return entry

    def remove_with_descendants(self, txid: bytes) -> list[bytes]:
        with self._lock:
            removed = self.descendants(txid)
            for t in reversed(removed):
                self._remove(t)
            return removed

    # ------------------------------------------------------------ chain changes

    def update(self, update: ChainUpdate) -> tuple[list[Transaction], list[bytes]]:
        """Follow the chain: drop confirmed and conflicted transactions; after a reorg take back disconnected ones.

        Returns the transactions newly (re)admitted from disconnected blocks and the txids dropped.
        """
        with self._lock:
            if update.disconnected:
                return self._reorg(update.disconnected)
            dropped: list[bytes] = []
            for block in update.connected:
                for tx in block.transactions[1:]:
                    if self._remove(tx.txid) is not None:
                        continue
                    for txin in tx.inputs:
                        holder = self._spenders.get(txin.prevout)
                        if holder is not None:
                            dropped += self.remove_with_descendants(holder)
            if dropped:
                log.info("mempool dropped %d transactions conflicted by the new block", len(dropped))
            return [], dropped

    def _reorg(self, disconnected: Sequence) -> tuple[list[Transaction], list[bytes]]:
        """Re-admit the disconnected blocks' transactions (oldest first), then the old pool, against the new tip."""
        before = list(self._entries.values())
        taken_back = [tx for block in reversed(disconnected) for tx in block.transactions[1:]]
        self._entries.clear()
        self._spenders.clear()
        self._bytes = 0
        readmitted: list[Transaction] = []
        for tx in taken_back:
            try:
                self.add(tx)
            except (ValidationError, PolicyError):
                continue
            readmitted.append(tx)
        dropped: list[bytes] = []
        for entry in before:
            try:
                self.add(entry.tx, entry.time)
            except (ValidationError, PolicyError):
                dropped.append(entry.txid)
        log.info(
            "mempool after reorg: took back %d of %d transactions of disconnected blocks, dropped %d",
            len(readmitted),
            len(taken_back),
            len(dropped),
        )
        return readmitted, dropped

    # ------------------------------------------------------------ block templates

    def select(self, max_bytes: int) -> tuple[list[Transaction], int]:
        """Transactions for a block by fee rate, parents before children, fitting ``max_bytes``; and their fees."""
        with self._lock:
            included: set[bytes] = set()
            chosen: list[Transaction] = []
            fees = used = 0
            live = {e.txid: {p for p in e.parents if p in self._entries} for e in self._entries.values()}
            heap = [(-e.fee_rate, e.seq, e.txid) for e in self._entries.values() if not live[e.txid]]
            heapq.heapify(heap)
            children: dict[bytes, list[bytes]] = {}
            for txid, parents in live.items():
                for parent in parents:
                    children.setdefault(parent, []).append(txid)
            while heap:
                _, _, txid = heapq.heappop(heap)
                entry = self._entries[txid]
                if used + entry.size > max_bytes:
                    continue
                included.add(txid)
                chosen.append(entry.tx)
                fees += entry.fee
                used += entry.size
                for child in children.get(txid, ()):
                    child_entry = self._entries[child]
                    if live[child] <= included:
                        heapq.heappush(heap, (-child_entry.fee_rate, child_entry.seq, child))
            return chosen, fees
