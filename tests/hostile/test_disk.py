"""A full disk stops the node cleanly, with a clear error, and loses nothing it had reported accepted.

The disk fills for real as far as SQLite can tell: the hidden test option
``--debug-max-db-pages N`` sets SQLite's ``max_page_count``, past which every write
fails with SQLITE_FULL ("database or disk is full"), the very error a full
filesystem gives. (A size-limited tmpfs would need mount rights that CI may lack.)
The node is a real ``cairn-node`` process; blocks are mined through the API until
the store refuses one. Then: HTTP 503 ``storage-failed`` for that request, a
CRITICAL log line naming the cause, exit status 1 with ``Error: stopped: ...``, and
after a restart without the cap, exactly the blocks reported accepted, with a
stored UTXO set equal to one recomputed from them.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from chain.builder import ChainBuilder
from chain.params import REGTEST
from devnet.process import NodeAPIError, NodeProcess
from tests.hostile.harness import served_node


def page_count(datadir: Path) -> int:
    with sqlite3.connect(datadir / "chain.sqlite") as db:
        return int(db.execute("PRAGMA page_count").fetchone()[0])


@pytest.mark.slow
def test_full_disk_stops_the_node_cleanly_and_loses_nothing(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "node", network="regtest")
    try:
        node.start().wait_ready()
        node.generate(3)
        assert node.stop() == 0
        cap = page_count(node.datadir) + 4

        node.start(["--debug-max-db-pages", str(cap)]).wait_ready()
        accepted = node.height()
        failure = None
        for _ in range(200):  # each block adds a few hundred bytes: the cap is reached within a few dozen
            try:
                node.generate(1)
            except NodeAPIError as exc:
                failure = exc
                break
            accepted = node.height()
        assert failure is not None, "the capped database never filled"
        assert failure.status == 503 and failure.code == "storage-failed", failure.body
        assert "database or disk is full" in failure.body["error"]["message"]
        assert node.process is not None
        assert node.process.wait(60) == 1
        node.stop()
        log = node.log_path.read_text()
        assert "CRITICAL" in log and "database or disk is full" in log and "stopping the node" in log
        assert "Error: stopped: cannot write the chain" in log
        assert "Traceback" not in log
        assert accepted > 3

        node.start([]).wait_ready()
        assert node.height() == accepted, "every block reported accepted is there, and nothing else"
        check = node.admin("GET", "/api/admin/utxo-check")
        assert check["ok"] and check["expected"] == check["stored"] > 0
        node.generate(1)
        assert node.height() == accepted + 1
        assert node.stop() == 0
    finally:
        node.kill()


def test_read_only_database_answers_503_and_asks_to_stop(tmp_path: Path) -> None:
    """In process: SQLite in read-only mode (``PRAGMA query_only``) refuses every write with SQLITE_READONLY."""
    builder = ChainBuilder(REGTEST)
    blocks = builder.add_chain(3)
    stop_requested = threading.Event()
    with served_node(tmp_path / "data") as served:
        node = served.node
        node.on_fatal = stop_requested.set
        for block in blocks[:2]:
            node.submit_block(block)
        node.chain.store.db.execute("PRAGMA query_only = 1")
        answer = served.post("/api/blocks", json={"hex": blocks[2].serialized.hex()})
        assert answer.status_code == 503 and answer.json()["error"]["code"] == "storage-failed"
        assert "readonly database" in answer.json()["error"]["message"]
        assert stop_requested.is_set() and node.fatal is not None
        assert node.chain.tip.hash == blocks[1].hash
        again = served.post("/api/blocks", json={"hex": blocks[2].serialized.hex()})
        assert again.status_code == 503, "every later write is refused the same way"
        node.chain.store.db.execute("PRAGMA query_only = 0")
        assert node.chain.check_utxo_set().ok
