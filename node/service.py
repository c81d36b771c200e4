"""The ``Node``: one object owning the chain state, mempool, miner, peers and sync, and reacting to chain updates.

``submit_block`` and ``submit_transaction`` are the only ways anything changes. After
``ChainState.accept_block`` returns a ``ChainUpdate`` the node tells the mempool (drop
confirmed and conflicted transactions, take back those of disconnected blocks), the
miner (abandon stale work) and the peers (announce the new tip), and logs one line
per event. Lock order: ``Node.lock`` -> mempool -> chain (the chain never calls out).
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chain.address import decode_address, encode_address
from chain.block import Block
from chain.chainstate import BlockIndex, ChainState, ChainUpdate, Status
from chain.errors import HeaderError, StorageError, ValidationError
from chain.hashes import hash_to_hex
from chain.merkle import merkle_proof
from chain.params import get_network
from chain.transaction import OutPoint, Transaction
from node import VERSION
from node.config import NodeConfig
from node.errors import Conflict, NodeError, NotFound
from node.faults import Faults
from node.mempool import Mempool, MempoolEntry
from node.metrics import NodeMetrics
from node.miner import Miner
from node.peers import Peer, PeerManager
from node.sync import Syncer

log = logging.getLogger(__name__)

MAX_ORPHANS = 100


class StorageFailed(NodeError):
    """The block store cannot be written (disk full, read-only): the node is stopping."""

    status = 503
    code = "storage-failed"


@dataclass(frozen=True)
class BlockResult:
    """What became of a submitted block: ``active`` (on the best chain), ``stored``, ``duplicate`` or ``orphan``."""

    hash: bytes
    status: str
    update: ChainUpdate


class Node:
    """A running Cairn node."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.params = get_network(config.network)
        config.datadir.mkdir(parents=True, exist_ok=True)
        self.faults = Faults(self)  # before the chain: its clock is the node's (possibly skewed) clock
        self.chain = ChainState(
            self.params,
            config.datadir / "chain.sqlite",
            assume_valid=config.assume_valid,
            synchronous=config.synchronous,
            clock=self.faults.now,
            fork_choice=config.fork_choice,
        )
        if config.max_db_pages:  # a test knob: SQLite answers SQLITE_FULL past this size, as on a full disk
            self.chain.store.db.execute(f"PRAGMA max_page_count={int(config.max_db_pages)}")
        self.lock = threading.RLock()
        self.nonce = secrets.randbits(63)
        self.mempool = Mempool(self.chain, config.mempool_bytes)
        self.peers = PeerManager(self)
        self.syncer = Syncer(self)
        self.miner = Miner(self, config.miner_processes)
        self.metrics = NodeMetrics(self)  # Prometheus counters at GET /metrics
        self.orphans: OrderedDict[bytes, tuple[Block, Peer | None]] = OrderedDict()
        self.token = self._write_token()
        self.started_at = time.time()
        self._stopping = threading.Event()
        self.fatal: str | None = None  # why the node must stop (set once, by ``storage_failed``)
        self.on_fatal: Callable[[], None] | None = None  # set by the CLI: stops the server

    def _write_token(self) -> str:
        """A fresh admin token in ``<datadir>/auth.token``, readable by the owner only (mode 0600)."""
        token = secrets.token_hex(32)
        path = self.config.datadir / "auth.token"
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
        os.chmod(path, 0o600)
        return token

    def check_token(self, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self.token.encode())

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.syncer.start()
        self.peers.start()
        for url in self.config.peers:
            try:
                self.peers.add(url)
            except Exception as exc:
                log.warning("cannot add peer %s: %s", url, exc)
        if self.config.mine:
            if self.config.mine_to is None:
                raise Conflict("--mine needs --mine-to ADDRESS", "no-mining-address")
            self.miner.start(decode_address(self.config.mine_to, self.params))
        log.info("node started: %s at height %d, listening at %s", self.params.name, self.chain.height, self.config.url)

    def stop(self) -> None:
        """Stop mining, peers and sync, then close the database (after any transaction in progress)."""
        self._stopping.set()
        self.faults.stop()
        self.miner.stop()
        self.syncer.stop()
        self.peers.stop()
        with self.lock:
            self.chain.close()
        log.info("node stopped")

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def storage_failed(self, exc: StorageError) -> StorageFailed:
        """The datadir cannot be written (disk full, read-only): log it clearly and stop the node.

        Every write is one SQLite transaction that was rolled back, so the chain on disk is
        the last state reported accepted. Returns the error to raise to the caller.
        """
        with self.lock:
            first = self.fatal is None
            if first:
                self.fatal = f"cannot write the chain in {self.config.datadir}: {exc}"
        if first:
            log.critical("%s; stopping the node (nothing half-written: the last accepted state is on disk)", self.fatal)
            if self.on_fatal is not None:
                self.on_fatal()
        return StorageFailed(f"the node is stopping: {self.fatal}")

    # ------------------------------------------------------------ changes

    def submit_block(self, block: Block, source: Peer | None = None) -> BlockResult:
        """Validate and store ``block``; follow the chain update. ValidationError names the rule broken."""
        error: ValidationError | None = None
        with self.lock:
            try:
                update = self.chain.accept_block(block)
            except HeaderError as exc:
                if exc.reason == "prev-blk-not-found":
                    self._add_orphan(block, source)
                    return BlockResult(block.hash, "orphan", ChainUpdate(is_new=False))
                self._punish(source, exc, f"invalid block {block.hash_hex}")
                raise
            except StorageError as exc:
                raise self.storage_failed(exc) from exc
            except ValidationError as exc:
                self._punish(source, exc, f"invalid block {block.hash_hex}")
                if not isinstance(exc.chain_update, ChainUpdate):
                    raise
                # found invalid while connecting: the chain may have moved anyway (to a valid
                # ancestor with more work), and the mempool and peers must follow that
                update, error = exc.chain_update, exc
            readmitted, _ = self.mempool.update(update)
            self._log_update(update)
            self.metrics.on_block(block, update, source is not None, self.chain.is_active(block.hash))
        if update.connected:
            self.miner.tip_changed()
            self.peers.announce("blocks", self.chain.tip.hash, exclude=source)
            for tx in readmitted:
                self.peers.announce("transactions", tx.txid)
        if error is not None:
            raise error
        if update.connected or update.is_new:
            self._adopt_orphans(block.hash)
        if not update.is_new:
            status = "duplicate"
        elif self.chain.is_active(block.hash):
            status = "active"
        else:
            status = "stored"
        return BlockResult(block.hash, status, update)

    def _punish(self, source: Peer | None, error: ValidationError, what: str) -> None:
        self.metrics.on_rejected(error.reason)
        if source is None or error.reason == "time-too-new":
            return
        self.peers.misbehave(source, 100, f"{what}: {error.reason}")

    def _log_update(self, update: ChainUpdate) -> None:
        for block_hash, error in update.invalid:
            log.warning("block %s invalid: %s", hash_to_hex(block_hash), error)
        if update.disconnected:
            old_tip = update.disconnected[0]
            new_tip = update.connected[-1] if update.connected else None
            log.warning(
                "reorg from %s to %s, depth %d (%d blocks connected)",
                old_tip.hash_hex,
                new_tip.hash_hex if new_tip else "?",
                update.reorg_depth,
                len(update.connected),
            )
        for block in update.connected:
            index = self.chain.get_index(block.hash)
            log.info(
                "block connected height %d %s txs %d",
                index.height if index else -1,
                block.hash_hex,
                len(block.transactions),
            )

    def _add_orphan(self, block: Block, source: Peer | None) -> None:
        if block.hash in self.orphans:
            return
        self.orphans[block.hash] = (block, source)
        held = sum(b.size for b, _ in self.orphans.values())
        while self.orphans and (len(self.orphans) > MAX_ORPHANS or held > self.config.max_orphan_bytes):
            dropped, _ = self.orphans.popitem(last=False)[1]  # the oldest first
            held -= dropped.size
        log.info(
            "orphan block %s (parent %s unknown): fetching its chain",
            block.hash_hex,
            hash_to_hex(block.header.prev_hash),
        )
        for peer in [source] if source is not None else self.peers.connected():
            self.syncer.request_sync(peer)

    def _adopt_orphans(self, parent: bytes) -> None:
        pending = [parent]
        while pending:
            current = pending.pop()
            with self.lock:
                children = [(h, b, s) for h, (b, s) in self.orphans.items() if b.header.prev_hash == current]
                for h, _, _ in children:
                    del self.orphans[h]
            for _, block, source in children:
                try:
                    self.submit_block(block, source)
                except ValidationError:
                    continue
                pending.append(block.hash)

    def submit_transaction(self, tx: Transaction, source: Peer | None = None) -> MempoolEntry:
        """Admit ``tx`` to the mempool and announce it; ValidationError or PolicyError with the reason otherwise."""
        with self.lock:
            entry = self.mempool.add(tx)
        log.info("transaction accepted %s fee %d size %d", hash_to_hex(tx.txid), entry.fee, tx.size)
        self.metrics.on_transaction()
        self.peers.announce("transactions", tx.txid, exclude=source)
        return entry

    # ------------------------------------------------------------ peer events

    def on_peer_connected(self, peer: Peer) -> None:
        self.syncer.request_sync(peer)
        for entry in self.mempool.entries()[:1000]:
            self.peers.announce("transactions", entry.txid, only=peer)

    def on_inventory(self, url: str, blocks: list[bytes], txids: list[bytes]) -> None:
        """A peer announced blocks and transactions: sync or fetch what we lack, never what we have."""
        peer = self.peers.get(url)
        if peer is None:
            return  # the p2p blueprint only lets connected peers through; it was removed meanwhile
        need_sync = False
        for block_hash in blocks:
            self.peers.mark_known(peer, block_hash)
            index = self.chain.get_index(block_hash)
            if index is None or not index.status & Status.HAVE_DATA:
                need_sync = True
        if need_sync:
            self.syncer.request_sync(peer)
        for txid in txids:
            self.peers.mark_known(peer, txid)
            if txid not in self.mempool and self.chain.find_transaction(txid) is None:
                self.syncer.request_transaction(peer, txid)

    # ------------------------------------------------------------ reading

    def best_header(self) -> BlockIndex:
        """The valid-so-far header the fork choice ranks first (at least the active tip)."""
        return self.chain.best_header()

    @property
    def syncing(self) -> bool:
        return self.syncer.busy or self.chain.weight(self.best_header()) > self.chain.weight(self.chain.tip)

    def status(self) -> dict[str, Any]:
        tip = self.chain.tip
        return {
            "network": self.params.name,
            "height": tip.height,
            "tip": tip.header.hash_hex,
            "chainwork": format(tip.chainwork, "x"),
            "mempool_size": len(self.mempool),
            "mempool_bytes": self.mempool.total_bytes,
            "peers": len(self.peers.connected()),
            "version": VERSION,
            "syncing": self.syncing,
            "mining": self.miner.running,
            "url": self.config.url,
            "time": int(self.faults.now()),
        }

    def block_index(self, block_hash: bytes) -> BlockIndex:
        index = self.chain.get_index(block_hash)
        if index is None:
            raise NotFound(f"no block {hash_to_hex(block_hash)}")
        return index

    def block(self, block_hash: bytes) -> tuple[BlockIndex, Block]:
        index = self.block_index(block_hash)
        block = self.chain.get_block(block_hash)
        if block is None:
            raise NotFound(f"block {hash_to_hex(block_hash)} is known by its header only")
        return index, block

    def confirmations(self, index: BlockIndex) -> int:
        """Blocks on top of ``index`` plus one on the active chain; -1 when it is not on the active chain."""
        if not self.chain.is_active(index.hash):
            return -1
        return self.chain.height - index.height + 1

    def block_json(self, block_hash: bytes, *, with_transactions: bool = True) -> dict[str, Any]:
        index, block = self.block(block_hash)
        result = {
            **block.header.to_json(),
            "height": index.height,
            "size": block.size,
            "chainwork": format(index.chainwork, "x"),
            "confirmations": self.confirmations(index),
            "in_active_chain": self.chain.is_active(index.hash),
            "tx_count": len(block.transactions),
        }
        if with_transactions:
            result["transactions"] = [tx.to_json() for tx in block.transactions]
        return result

    def blocks_json(self, start: int | None, limit: int) -> list[dict[str, Any]]:
        top = self.chain.height if start is None else min(start, self.chain.height)
        result = []
        for height in range(top, max(top - limit, -1), -1):
            index = self.chain.active_index(height)
            if index is not None:
                result.append(self.block_json(index.hash, with_transactions=False))
        return result

    def hash_at(self, height: int) -> bytes:
        index = self.chain.active_index(height)
        if index is None:
            raise NotFound(f"no block at height {height}; the tip is at {self.chain.height}")
        return index.hash

    def _confirmed(self, txid: bytes) -> tuple[BlockIndex, Transaction, int] | None:
        found = self.chain.find_transaction(txid)
        if found is None:
            return None
        index, position = found
        block = self.chain.get_block(index.hash)
        if block is None:
            return None
        return index, block.transactions[position], position

    def _address(self, pubkey_hash: bytes) -> str:
        return encode_address(pubkey_hash, self.params)

    def transaction_json(self, txid: bytes) -> dict[str, Any]:
        entry = self.mempool.get(txid)
        if entry is not None:
            tx, index, spent = entry.tx, None, list(entry.spent)
        else:
            confirmed = self._confirmed(txid)
            if confirmed is None:
                raise NotFound(f"no transaction {hash_to_hex(txid)} in the active chain or the mempool")
            index, tx, _ = confirmed
            spent = [] if tx.is_coinbase else [self._spent_output(txin.prevout) for txin in tx.inputs]
        result = tx.to_json()
        for position, txin_json in enumerate(result["inputs"]):
            coin = spent[position] if position < len(spent) else None
            txin_json["amount"] = coin.amount if coin is not None else None
            txin_json["address"] = self._address(coin.pubkey_hash) if coin is not None else None
        for txout_json, txout in zip(result["outputs"], tx.outputs, strict=True):
            txout_json["address"] = self._address(txout.pubkey_hash)
        result.update(
            {
                "block": index.header.hash_hex if index else None,
                "height": index.height if index else None,
                "confirmations": self.confirmations(index) if index else 0,
                "time": index.header.time if index else None,
                "in_mempool": entry is not None,
                "fee": entry.fee if entry is not None else self._fee(tx, spent),
            }
        )
        return result

    def _fee(self, tx: Transaction, spent: list[Any]) -> int | None:
        if tx.is_coinbase or any(c is None for c in spent):
            return None
        return sum(c.amount for c in spent) - sum(o.amount for o in tx.outputs)

    def _spent_output(self, outpoint: Any) -> Any:
        """The output an input of an active-chain or mempool transaction spends (as a Coin-like TxOut)."""
        confirmed = self._confirmed(outpoint.txid)
        if confirmed is not None:
            tx = confirmed[1]
        else:
            entry = self.mempool.get(outpoint.txid)
            if entry is None:
                return None
            tx = entry.tx
        return tx.outputs[outpoint.index] if outpoint.index < len(tx.outputs) else None

    def mempool_json(self) -> dict[str, Any]:
        entries = self.mempool.entries()
        return {
            "size": len(entries),
            "bytes": self.mempool.total_bytes,
            "transactions": [
                {"txid": hash_to_hex(e.txid), "size": e.size, "fee": e.fee, "fee_rate": e.fee_rate, "time": e.time}
                for e in entries
            ],
        }

    def address_json(self, address: str) -> dict[str, Any]:
        pubkey_hash = decode_address(address, self.params)
        height = self.chain.height
        coins = self.chain.coins_for(pubkey_hash)
        maturity = self.params.coinbase_maturity
        confirmed = immature = 0
        utxos = []
        spent_in_mempool = 0
        for outpoint, coin in sorted(coins, key=lambda c: (c[1].height, c[0].txid, c[0].index)):
            mature = not coin.is_coinbase or height + 1 - coin.height >= maturity
            spender = self.mempool.spender_of(outpoint)
            if mature:
                confirmed += coin.amount
            else:
                immature += coin.amount
            if spender is not None:
                spent_in_mempool += coin.amount
            utxos.append(self._utxo_json(outpoint, coin.amount, coin.height, coin.is_coinbase, mature, spender, height))
        received_unconfirmed = 0
        for entry in self.mempool.entries():
            for position, coin in enumerate(entry.spent):
                if coin.pubkey_hash == pubkey_hash and entry.tx.inputs[position].prevout.txid in self.mempool:
                    spent_in_mempool += coin.amount  # an unconfirmed coin of ours spent by another pooled tx
            for index, txout in enumerate(entry.tx.outputs):
                if txout.pubkey_hash != pubkey_hash:
                    continue
                received_unconfirmed += txout.amount
                outpoint = OutPoint(entry.txid, index)
                spender = self.mempool.spender_of(outpoint)
                utxos.append(self._utxo_json(outpoint, txout.amount, None, False, True, spender, height))
        return {
            "address": address,
            "confirmed": confirmed,
            "immature": immature,
            "unconfirmed": received_unconfirmed - spent_in_mempool,
            "utxos": utxos,
        }

    @staticmethod
    def _utxo_json(
        outpoint: Any,
        amount: int,
        coin_height: int | None,
        coinbase: bool,
        mature: bool,
        spender: bytes | None,
        tip: int,
    ) -> dict[str, Any]:
        return {
            "txid": hash_to_hex(outpoint.txid),
            "index": outpoint.index,
            "amount": amount,
            "height": coin_height,
            "confirmations": 0 if coin_height is None else tip - coin_height + 1,
            "coinbase": coinbase,
            "mature": mature,
            "spent_in_mempool": spender is not None,
        }

    def history_json(self, address: str) -> dict[str, Any]:
        pubkey_hash = decode_address(address, self.params)
        items = []
        for entry in reversed(self.mempool.entries()):
            received = sum(o.amount for o in entry.tx.outputs if o.pubkey_hash == pubkey_hash)
            sent = sum(c.amount for c in entry.spent if c.pubkey_hash == pubkey_hash)
            if received or sent or any(c.pubkey_hash == pubkey_hash for c in entry.spent):
                items.append(self._history_item(entry.txid, None, received, sent))
        for txid, _height in reversed(self.chain.address_history(pubkey_hash)):
            confirmed = self._confirmed(txid)
            if confirmed is None:
                continue
            index, tx, _ = confirmed
            received = sum(o.amount for o in tx.outputs if o.pubkey_hash == pubkey_hash)
            sent = 0
            if not tx.is_coinbase:
                for txin in tx.inputs:
                    spent = self._spent_output(txin.prevout)
                    if spent is not None and spent.pubkey_hash == pubkey_hash:
                        sent += spent.amount
            items.append(self._history_item(txid, index, received, sent))
        return {"address": address, "transactions": items}

    def _history_item(self, txid: bytes, index: BlockIndex | None, received: int, sent: int) -> dict[str, Any]:
        return {
            "txid": hash_to_hex(txid),
            "height": index.height if index else None,
            "block": index.header.hash_hex if index else None,
            "confirmations": self.confirmations(index) if index else 0,
            "time": index.header.time if index else None,
            "received": received,
            "sent": sent,
        }

    def proof_json(self, txid: bytes) -> dict[str, Any]:
        found = self.chain.find_transaction(txid)
        if found is None:
            raise NotFound(f"no transaction {hash_to_hex(txid)} on the active chain")
        index, position = found
        block = self.chain.get_block(index.hash)
        if block is None:
            raise NotFound(f"block {index.header.hash_hex} has no data")
        proof = merkle_proof([tx.txid for tx in block.transactions], position)
        return {
            "txid": hash_to_hex(txid),
            "block": index.header.hash_hex,
            "height": index.height,
            "merkle_root": hash_to_hex(block.header.merkle_root),
            "index": proof.index,
            "tx_count": proof.tx_count,
            "branch": [hash_to_hex(h) for h in proof.branch],
        }

    def peers_json(self) -> dict[str, Any]:
        return {
            "peers": [p.to_json() for p in self.peers.peers()],
            "banned": [{"url": url, **ban} for url, ban in sorted(self.peers.bans().items())],
            "max_peers": self.peers.max_peers,
        }
