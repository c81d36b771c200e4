"""Headers-first sync and fetch-on-demand, on background threads.

Sync from a peer: send it a block locator of our best header chain, accept the
headers it answers (``ChainState.accept_headers``), repeat while it sends full
batches, then download the blocks of the most-work header chain that we lack, in
order, a few in parallel. Announced transactions we lack are fetched in batches, as
Bitcoin's ``getdata`` carries many inventory items: whatever is queued when the fetch
thread comes back for more (up to ``MAX_GETDATA``), one request per announcing peer;
a fetch that fails (timeout, dropped connection) is tried again a little later, since
the peer will not announce those transactions again.
Invalid headers or blocks earn the peer misbehaviour points (a ban at the
threshold); a peer that times out or lacks a block just ends that round. One sync
runs at a time, so two peers cannot make us download the same block twice.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from chain.chainstate import BlockIndex, Status
from chain.errors import DecodeError, StorageError, ValidationError
from chain.transaction import Transaction
from node.errors import Forbidden, NodeError, NotFound, PeerError
from node.peers import MAX_GETDATA, MAX_HEADERS, Peer

if TYPE_CHECKING:
    from node.service import Node

log = logging.getLogger(__name__)

DOWNLOAD_BATCH = 16  # blocks fetched per round
DOWNLOAD_PARALLEL = 4  # requests in flight at once
FETCH_ATTEMPTS = 3  # a transaction fetch that fails (timeout, dropped connection) is tried twice more
FETCH_RETRY_SECONDS = 2.0  # ... after 2 s, then 4 s
INNOCENT_TX_REASONS = frozenset(
    {
        "txn-already-known",
        "txn-mempool-conflict",
        "mempool-full",
        "bad-txns-inputs-missingorspent",
        "bad-txns-premature-spend-of-coinbase",
    }
)
"""Transaction rejections an honest peer may cause (races, reorgs): no misbehaviour points."""
INNOCENT_HEADER_REASONS = frozenset({"prev-blk-not-found", "time-too-new"})


def locator_from(index: BlockIndex) -> list[bytes]:
    """A block locator walking back from ``index``: ten dense steps, then doubling ones, always ending at genesis."""
    hashes: list[bytes] = []
    step = 1
    walker = index
    while True:
        hashes.append(walker.hash)
        if walker.prev is None:
            return hashes
        if len(hashes) >= 10:
            step *= 2
        target = max(0, walker.height - step)
        while walker.height > target:
            assert walker.prev is not None
            walker = walker.prev


class Syncer:
    """Runs syncs and transaction fetches requested by handshakes, announcements and the periodic timer."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._sync_queue: queue.Queue[Peer | None] = queue.Queue()
        self._pending: set[int] = set()
        self._tx_queue: queue.Queue[tuple[Peer, bytes] | None] = queue.Queue(10_000)
        self._tx_requested: OrderedDict[bytes, None] = OrderedDict()
        self._tx_attempts: dict[bytes, int] = {}  # failed fetches so far of a txid being tried again
        self._retry_timers: set[threading.Timer] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._pool = ThreadPoolExecutor(DOWNLOAD_PARALLEL, thread_name_prefix="download")
        self.busy = False
        self._stopping = threading.Event()

    def start(self) -> None:
        for target, name in ((self._sync_loop, "sync"), (self._tx_loop, "tx-fetch")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            for timer in self._retry_timers:
                timer.cancel()
        self._sync_queue.put(None)
        with contextlib.suppress(queue.Full):
            self._tx_queue.put_nowait(None)
        for thread in self._threads:
            thread.join()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------ requests

    def request_sync(self, peer: Peer) -> None:
        with self._lock:
            if peer.id in self._pending:
                return
            self._pending.add(peer.id)
        self._sync_queue.put(peer)

    def request_transaction(self, peer: Peer, txid: bytes) -> None:
        with self._lock:
            if txid in self._tx_requested:
                return
            self._tx_requested[txid] = None
            while len(self._tx_requested) > 20_000:
                self._tx_requested.popitem(last=False)
        try:
            self._tx_queue.put_nowait((peer, txid))
        except queue.Full:
            with self._lock:
                self._tx_requested.pop(txid, None)

    # ------------------------------------------------------------ loops

    def _sync_loop(self) -> None:
        while True:
            peer = self._sync_queue.get()
            if peer is None or self._stopping.is_set():
                return
            with self._lock:
                self._pending.discard(peer.id)
            if self.node.peers.get(peer.url) is not peer:
                continue  # removed or banned meanwhile
            self.busy = True
            try:
                self.sync_from(peer)
            except (PeerError, NotFound, Forbidden) as exc:
                log.info("sync from peer %d (%s) stopped: %s", peer.id, peer.url, exc)
            except StorageError as exc:  # storing headers failed: disk full or read-only
                self.node.storage_failed(exc)
            except NodeError as exc:  # e.g. storage-failed from a block: already reported
                log.warning("sync from peer %d (%s) stopped: %s", peer.id, peer.url, exc)
            except Exception:
                log.exception("sync from peer %d (%s) failed", peer.id, peer.url)
            finally:
                self.busy = False

    def _tx_loop(self) -> None:
        while True:
            item = self._tx_queue.get()
            if item is None or self._stopping.is_set():
                return
            batch = [item]
            while len(batch) < MAX_GETDATA:  # and what else is queued now, without waiting for more
                try:
                    item = self._tx_queue.get_nowait()
                except queue.Empty:
                    break
                if item is None or self._stopping.is_set():
                    return
                batch.append(item)
            retry: list[tuple[Peer, bytes]] = []
            try:
                retry = self.fetch_announced(batch)
            except Exception:
                log.exception("fetching %d announced transactions failed", len(batch))
            finally:
                self._after_fetch(batch, retry)

    def _after_fetch(self, batch: list[tuple[Peer, bytes]], failed: list[tuple[Peer, bytes]]) -> None:
        """Forget the batch's txids (found or not: a later announcement may fetch them again), except those whose
        fetch failed (a timeout, a dropped connection): they are asked again a little later, up to
        ``FETCH_ATTEMPTS`` times in all, as the peer that announced them will not announce them again."""
        again: list[tuple[Peer, bytes]] = []
        with self._lock:
            for peer, txid in failed:
                attempts = self._tx_attempts.get(txid, 0) + 1
                if attempts < FETCH_ATTEMPTS and not self._stopping.is_set():
                    self._tx_attempts[txid] = attempts
                    again.append((peer, txid))
            kept = {txid for _, txid in again}
            for _, txid in batch:
                if txid not in kept:
                    self._tx_requested.pop(txid, None)
                    self._tx_attempts.pop(txid, None)
            if again:
                delay = FETCH_RETRY_SECONDS * max(self._tx_attempts[txid] for _, txid in again)
                timer = threading.Timer(delay, self._retry, args=(again,))
                timer.daemon = True
                self._retry_timers.add(timer)
                timer.start()
        if again:
            log.info("fetching %d transactions failed; asking again in %.0fs", len(again), delay)

    def _retry(self, items: list[tuple[Peer, bytes]]) -> None:
        with self._lock:
            self._retry_timers.discard(threading.current_thread())  # type: ignore[arg-type]
        for item in items:
            if self._stopping.is_set():
                return
            try:
                self._tx_queue.put_nowait(item)
            except queue.Full:
                with self._lock:
                    self._tx_requested.pop(item[1], None)
                    self._tx_attempts.pop(item[1], None)

    # ------------------------------------------------------------ work

    def fetch_announced(self, batch: list[tuple[Peer, bytes]]) -> list[tuple[Peer, bytes]]:
        """Fetch the announced ``(peer, txid)`` we lack, one request per peer, then submit them in announcement
        order (a parent is announced before its child, so it is admitted first). Returns those whose fetch
        failed (unreachable, timed out, an error status): worth another try.

        An answer that is not made of distinct asked-for transactions costs its peer 20 points and none of
        its transactions is used; an invalid transaction costs 10 unless its reason is innocent.
        """
        wanted: dict[Peer, dict[bytes, None]] = {}  # per peer, in announcement order
        for peer, txid in batch:
            if txid not in self.node.mempool:
                wanted.setdefault(peer, {})[txid] = None
        received: dict[tuple[int, bytes], Transaction] = {}
        failed: list[tuple[Peer, bytes]] = []
        for peer, txids in wanted.items():
            if self.node.peers.is_banned(peer.url):
                continue
            try:
                txs = self._fetch_from(peer, list(txids))
            except (NotFound, Forbidden) as exc:  # refusing us, or (one txid) lacks it
                log.debug("fetching %d transactions from peer %d refused: %s", len(txids), peer.id, exc)
                continue
            except PeerError as exc:  # unreachable or timed out
                log.debug("fetching %d transactions from peer %d failed: %s", len(txids), peer.id, exc)
                failed += [(peer, txid) for txid in txids]
                continue
            received.update(((peer.id, tx.txid), tx) for tx in txs)
        for peer, txid in batch:
            tx = received.pop((peer.id, txid), None)
            if tx is not None and not self.node.peers.is_banned(peer.url):
                self._submit(peer, tx)
        return failed

    def _fetch_from(self, peer: Peer, txids: list[bytes]) -> list[Transaction]:
        """The transactions among ``txids`` that ``peer`` sent; none when its answer was unusable (it is punished).

        One txid is fetched with ``GET /p2p/transactions/<txid>``, several with one ``POST /p2p/transactions``.
        """
        peers = self.node.peers
        if len(txids) == 1:
            try:
                tx = peers.fetch_transaction(peer, txids[0])
            except DecodeError as exc:
                peers.misbehave(peer, 20, f"undecodable transaction: {exc.reason}")
                return []
            if tx.txid != txids[0]:
                peers.misbehave(peer, 20, "sent a transaction other than the one asked for")
                return []
            return [tx]
        try:
            return peers.fetch_transactions(peer, txids)
        except DecodeError as exc:
            peers.misbehave(peer, 20, f"bad answer to a fetch of {len(txids)} transactions: {exc}")
            return []

    def _submit(self, peer: Peer, tx: Transaction) -> None:
        try:
            self.node.submit_transaction(tx, source=peer)
        except (ValidationError, NodeError) as exc:
            log.info("transaction %s from peer %d refused: %s", tx.txid[::-1].hex(), peer.id, exc.reason)
            if exc.reason not in INNOCENT_TX_REASONS:
                self.node.peers.misbehave(peer, 10, f"invalid transaction {tx.txid[::-1].hex()}: {exc.reason}")

    def sync_from(self, peer: Peer) -> None:
        """Headers first, then the blocks of the best header chain that we lack."""
        chain, peers = self.node.chain, self.node.peers
        sent: BlockIndex | None = None  # the last header of this peer's answers that we hold
        while not self._stopping.is_set():
            locator = locator_from(self.node.best_header())
            try:
                headers = peers.fetch_headers(peer, locator)
            except DecodeError as exc:
                peers.misbehave(peer, 50, f"malformed headers: {exc.message}")
                return
            if not headers:
                break
            sent = None
            try:
                chain.accept_headers(headers)
            except ValidationError as exc:
                if exc.reason in INNOCENT_HEADER_REASONS:
                    log.info("headers from peer %d stopped at %s", peer.id, exc)
                else:
                    peers.misbehave(peer, 100, f"invalid header: {exc.reason}")
                    return
            for header in reversed(headers):
                sent = chain.get_index(header.hash)
                if sent is not None:
                    break
            if len(headers) < MAX_HEADERS:
                break
        self.download(peer, sent)

    def missing_blocks(self, sent: BlockIndex | None = None) -> list[BlockIndex]:
        """Blocks we have no data for, oldest first, of the chain ending at ``sent`` (the last header a peer
        sent) or else of the most-work valid header chain, when it has more work than the tip.

        Following the peer's own chain matters when the best header is one nobody can serve: a mutated
        block's header (``bad-txnmrklroot`` does not condemn it) would otherwise stall an honest block of the
        same height, whose equal work does not displace it as best header.
        """
        best = sent if sent is not None and not sent.failed else self.node.best_header()
        if self.node.chain.weight(best) <= self.node.chain.weight(self.node.chain.tip):
            return []
        missing = []
        walker: BlockIndex | None = best
        while walker is not None and not walker.status & Status.HAVE_DATA:
            missing.append(walker)
            walker = walker.prev
        missing.reverse()
        return missing

    def download(self, peer: Peer, sent: BlockIndex | None = None) -> None:
        peers = self.node.peers
        while not self._stopping.is_set():
            missing = self.missing_blocks(sent)[:DOWNLOAD_BATCH]
            if not missing:
                return
            futures = [self._pool.submit(peers.fetch_block, peer, index.hash) for index in missing]
            for index, future in zip(missing, futures, strict=True):
                try:
                    block = future.result()
                except DecodeError as exc:
                    peers.misbehave(peer, 100, f"undecodable block: {exc}")  # {exc}: reason code and message
                    return
                if block.hash != index.hash:
                    peers.misbehave(peer, 100, "sent a block other than the one asked for")
                    return
                try:
                    self.node.submit_block(block, source=peer)
                except ValidationError as exc:
                    log.info("block %s from peer %d refused: %s", block.hash_hex, peer.id, exc.reason)
                    return
