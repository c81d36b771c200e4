"""SQLite storage of the block tree, block data, undo data, the active chain and the UTXO set.

WAL mode; every change of state is one transaction (``with store.transaction():``),
so a crash at any instant leaves either the old state or the new one. SQLite errors
become ``StorageError`` with the database's own explanation (disk full, read-only).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from chain.errors import StorageError
from chain.transaction import OutPoint
from chain.utxo import Coin

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS block_index (
    hash BLOB PRIMARY KEY,
    height INTEGER NOT NULL,
    header BLOB NOT NULL,
    chainwork TEXT NOT NULL,        -- hex: work does not fit SQLite's 64-bit integers
    status INTEGER NOT NULL,
    seq INTEGER NOT NULL            -- arrival order: first seen wins ties
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS block_data (hash BLOB PRIMARY KEY, data BLOB NOT NULL, undo BLOB) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS active_chain (height INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS utxo (
    txid BLOB NOT NULL,
    vout INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    pubkey_hash BLOB NOT NULL,
    height INTEGER NOT NULL,
    coinbase INTEGER NOT NULL,
    PRIMARY KEY (txid, vout)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS utxo_by_pubkey_hash ON utxo (pubkey_hash);
-- indexes of the active chain, kept in the same transactions as the UTXO set
CREATE TABLE IF NOT EXISTS tx_index (txid BLOB PRIMARY KEY, block_hash BLOB NOT NULL, position INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS address_index (  -- clustered by height: a new block appends, it never scatters
    pubkey_hash BLOB NOT NULL,
    height INTEGER NOT NULL,
    txid BLOB NOT NULL,
    PRIMARY KEY (pubkey_hash, height, txid)
) WITHOUT ROWID;
"""


@contextmanager
def _storage_errors(what: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise StorageError(f"{what}: {exc}") from exc


class BlockStore:
    """The SQLite file behind a ChainState. Not thread-safe on its own: ChainState holds the lock."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        if synchronous not in ("OFF", "NORMAL", "FULL"):
            raise ValueError(f"synchronous must be OFF, NORMAL or FULL, not {synchronous!r}")
        self.path = str(path)
        with _storage_errors(f"cannot open {self.path}"):
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            if self.path != ":memory:":
                self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA synchronous={synchronous}")
            self.db.execute("PRAGMA cache_size=-65536")  # 64 MiB of page cache: keep the UTXO set hot
            self.db.executescript(_SCHEMA)
        self._in_transaction = False

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all."""
        if self._in_transaction:
            raise RuntimeError("nested transaction")
        self._in_transaction = True
        try:
            with _storage_errors("write failed"):
                self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
                with _storage_errors("commit failed"):
                    self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
        finally:
            self._in_transaction = False

    # -- meta

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with _storage_errors("cannot write meta"):
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- block index and data

    def put_index(self, block_hash: bytes, height: int, header: bytes, chainwork: int, status: int, seq: int) -> None:
        with _storage_errors("cannot store header"):
            self.db.execute(
                "INSERT OR REPLACE INTO block_index (hash, height, header, chainwork, status, seq)"
                " VALUES (?,?,?,?,?,?)",
                (block_hash, height, header, format(chainwork, "x"), status, seq),
            )

    def set_status(self, block_hash: bytes, status: int) -> None:
        self.set_statuses([(block_hash, status)])

    def set_statuses(self, statuses: Iterable[tuple[bytes, int]]) -> None:
        with _storage_errors("cannot update block status"):
            self.db.executemany("UPDATE block_index SET status = ? WHERE hash = ?", ((s, h) for h, s in statuses))

    def load_index(self) -> list[tuple[bytes, int, bytes, int, int, int]]:
        with _storage_errors("cannot read the block index"):
            rows = self.db.execute("SELECT hash, height, header, chainwork, status, seq FROM block_index").fetchall()
        return [(h, height, header, int(work, 16), status, seq) for h, height, header, work, status, seq in rows]

    def put_block(self, block_hash: bytes, data: bytes) -> None:
        with _storage_errors("cannot store block"):
            self.db.execute("INSERT OR IGNORE INTO block_data (hash, data) VALUES (?, ?)", (block_hash, data))

    def get_block(self, block_hash: bytes) -> bytes | None:
        row = self.db.execute("SELECT data FROM block_data WHERE hash = ?", (block_hash,)).fetchone()
        return row[0] if row else None

    def put_undo(self, block_hash: bytes, undo: bytes) -> None:
        self.put_undos([(block_hash, undo)])

    def put_undos(self, undos: Iterable[tuple[bytes, bytes]]) -> None:
        with _storage_errors("cannot store undo data"):
            self.db.executemany("UPDATE block_data SET undo = ? WHERE hash = ?", ((u, h) for h, u in undos))

    def get_undo(self, block_hash: bytes) -> bytes | None:
        row = self.db.execute("SELECT undo FROM block_data WHERE hash = ?", (block_hash,)).fetchone()
        return row[0] if row else None

    # -- active chain

    def load_active_chain(self) -> list[bytes]:
        rows = self.db.execute("SELECT height, hash FROM active_chain ORDER BY height").fetchall()
        for expected, (height, _) in enumerate(rows):
            if height != expected:
                raise StorageError(f"active chain has a gap at height {expected}")
        return [h for _, h in rows]

    def set_active_from(self, height: int, hashes: Iterable[bytes]) -> None:
        """Replace the active chain above ``height - 1`` with ``hashes``."""
        with _storage_errors("cannot update the active chain"):
            self.db.execute("DELETE FROM active_chain WHERE height >= ?", (height,))
            self.db.executemany(
                "INSERT INTO active_chain (height, hash) VALUES (?, ?)", enumerate(hashes, start=height)
            )

    # -- UTXO set

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        row = self.db.execute(
            "SELECT amount, pubkey_hash, height, coinbase FROM utxo WHERE txid = ? AND vout = ?",
            (outpoint.txid, outpoint.index),
        ).fetchone()
        return Coin(row[0], row[1], row[2], bool(row[3])) if row else None

    def apply_coins(self, spent: Iterable[OutPoint], added: Iterable[tuple[OutPoint, Coin]]) -> None:
        with _storage_errors("cannot update the UTXO set"):
            self.db.executemany("DELETE FROM utxo WHERE txid = ? AND vout = ?", ((op.txid, op.index) for op in spent))
            self.db.executemany(
                "INSERT INTO utxo (txid, vout, amount, pubkey_hash, height, coinbase) VALUES (?,?,?,?,?,?)",
                ((op.txid, op.index, c.amount, c.pubkey_hash, c.height, int(c.is_coinbase)) for op, c in added),
            )

    def coins_by_pubkey_hash(self, pubkey_hash: bytes) -> list[tuple[OutPoint, Coin]]:
        rows = self.db.execute(
            "SELECT txid, vout, amount, pubkey_hash, height, coinbase FROM utxo WHERE pubkey_hash = ?",
            (pubkey_hash,),
        ).fetchall()
        return [(OutPoint(r[0], r[1]), Coin(r[2], r[3], r[4], bool(r[5]))) for r in rows]

    def all_coins(self) -> dict[OutPoint, Coin]:
        rows = self.db.execute("SELECT txid, vout, amount, pubkey_hash, height, coinbase FROM utxo")
        return {OutPoint(r[0], r[1]): Coin(r[2], r[3], r[4], bool(r[5])) for r in rows}

    # -- transaction and address indexes of the active chain

    def index_transactions(
        self, block_hash: bytes, height: int, txids: list[bytes], touched: Iterable[tuple[bytes, bytes]]
    ) -> None:
        """Record where ``txids`` are and which pubkey hashes (``(pubkey_hash, txid)``) they touch."""
        with _storage_errors("cannot update the transaction index"):
            self.db.executemany(
                "INSERT OR REPLACE INTO tx_index (txid, block_hash, position) VALUES (?, ?, ?)",
                ((txid, block_hash, position) for position, txid in enumerate(txids)),
            )
            self.db.executemany(
                "INSERT OR IGNORE INTO address_index (pubkey_hash, height, txid) VALUES (?, ?, ?)",
                ((pubkey_hash, height, txid) for pubkey_hash, txid in touched),
            )

    def unindex_transactions(self, height: int, txids: list[bytes], touched: Iterable[tuple[bytes, bytes]]) -> None:
        with _storage_errors("cannot update the transaction index"):
            self.db.executemany("DELETE FROM tx_index WHERE txid = ?", ((txid,) for txid in txids))
            self.db.executemany(
                "DELETE FROM address_index WHERE pubkey_hash = ? AND height = ? AND txid = ?",
                ((pubkey_hash, height, txid) for pubkey_hash, txid in touched),
            )

    def find_transaction(self, txid: bytes) -> tuple[bytes, int] | None:
        """``(block_hash, position)`` of a transaction on the active chain."""
        row = self.db.execute("SELECT block_hash, position FROM tx_index WHERE txid = ?", (txid,)).fetchone()
        return (row[0], row[1]) if row else None

    def address_history(self, pubkey_hash: bytes) -> list[tuple[bytes, int]]:
        """``(txid, height)`` of every active-chain transaction paying or spending ``pubkey_hash``, oldest first."""
        return self.db.execute(
            "SELECT txid, height FROM address_index WHERE pubkey_hash = ? ORDER BY height, txid", (pubkey_hash,)
        ).fetchall()
