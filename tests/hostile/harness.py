"""A real node served by waitress in this process, and a scripted hostile peer that is a real HTTP server.

The hostile peer speaks Cairn's p2p protocol exactly as an honest node would
(handshake, address list, headers, block and transaction downloads, inventory
announcements) but serves whatever the test tells it to: invalid headers, invalid
blocks, undecodable bytes. The node under test fetches from it over loopback HTTP.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from waitress import create_server, wasyncore

from chain.block import BlockHeader
from devnet.process import free_port
from node.app import create_app
from node.config import NodeConfig
from node.service import Node
from tests.stub_peer import NOT_FOUND, Reply, StubPeer, json_reply, raw_reply


class HostilePeer(StubPeer):
    """A p2p server serving ``headers``, ``blocks`` (hash hex -> raw bytes) and ``transactions`` (txid hex -> raw)."""

    version = "hostile"
    claimed_height = 1_000_000
    claimed_tip = "00" * 32
    claimed_work = "ffffffffffff"

    def __init__(self) -> None:
        self.headers: list[BlockHeader] = []
        self.blocks: dict[str, bytes] = {}
        self.transactions: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.gate = threading.Event()  # cleared by ``hold_announcements``: inventory POSTs wait on it
        self.gate.set()
        self.held = 0  # inventory POSTs waiting at the gate now
        super().__init__()

    def get(self, path: str) -> Reply:
        path = path.split("?")[0]
        if path == "/p2p/addresses":
            return json_reply({"peers": []})
        if path == "/p2p/headers":
            return json_reply({"headers": [h.serialized.hex() for h in self.headers]})
        if path.startswith("/p2p/blocks/") and path[12:] in self.blocks:
            return raw_reply(self.blocks[path[12:]])
        if path.startswith("/p2p/transactions/") and path[18:] in self.transactions:
            return raw_reply(self.transactions[path[18:]])
        return NOT_FOUND

    def post(self, path: str, body: bytes) -> Reply:
        self.requests.append(f"POST {path}")
        if path == "/p2p/inv" and not self.gate.is_set():
            self.held += 1
            self.gate.wait(60)
            self.held -= 1
        return super().post(path, body)

    def answered(self, method: str, path: str) -> None:
        if method == "GET":
            self.requests.append(f"GET {path}")  # after answering: the test sees answered requests

    def handshake_with(self, node_url: str) -> requests.Response:
        return requests.post(f"{node_url}/p2p/handshake", json=self.hello(), timeout=30)

    def announce(
        self, node_url: str, blocks: Sequence[str] = (), transactions: Sequence[str] = ()
    ) -> requests.Response:
        return requests.post(
            f"{node_url}/p2p/inv",
            json={"blocks": list(blocks), "transactions": list(transactions)},
            headers={"X-Cairn-Peer": self.url},
            timeout=30,
        )

    def hold_announcements(self) -> None:
        """Make the node's announcements to this peer hang (a slow or stuck peer) until ``release``."""
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def close(self) -> None:
        self.gate.set()
        super().close()


@dataclass
class Served:
    """A started node and the URL its waitress server answers at."""

    node: Node
    url: str

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.post(self.url + path, timeout=60, **kwargs)


@contextmanager
def served_node(datadir: Path, **config: Any) -> Iterator[Served]:
    """A regtest ``Node`` started and served by waitress on a free loopback port, as cairn-node serves it."""
    port = free_port()
    settings: dict[str, Any] = {"network": "regtest", "datadir": datadir, "port": port, "synchronous": "OFF"}
    node = Node(NodeConfig(**{**settings, **config}))
    wsgi = create_server(
        create_app(node),
        host="127.0.0.1",
        port=port,
        threads=node.config.threads,
        connection_limit=node.config.connection_limit,
    )
    thread = threading.Thread(target=wsgi.run, name="waitress", daemon=True)
    node.start()
    thread.start()
    try:
        yield Served(node, f"http://127.0.0.1:{port}")
    finally:
        stop_server(wsgi, thread)
        node.stop()


def stop_server(wsgi: Any, thread: threading.Thread) -> None:
    """Stop a waitress server running in ``thread`` at once, without waiting for idle keep-alive connections.

    The worker threads finish first; then the loop thread, through waitress's trigger,
    empties its socket map (its loop runs while the map is not empty) and leaves the loop;
    then this thread closes the sockets and the trigger, once no other thread uses them.

    The thunk must not close the trigger itself: ``pull_trigger`` appends the thunk, then
    writes the trigger's pipe, and a wake-up byte already in the pipe (a worker pulls the
    trigger at the end of every request, after its answer is sent) can make the loop run the
    thunk in between, so that the write goes to a closed descriptor (EBADF) or to whatever
    file or socket another thread has opened under that number since.
    """
    wsgi.task_dispatcher.shutdown()
    watched: dict[int, Any] = {}

    def leave_loop() -> None:
        watched.update(wsgi._map)
        wsgi._map.clear()

    wsgi.trigger.pull_trigger(leave_loop)
    thread.join(30)
    assert not thread.is_alive(), "waitress did not stop"
    wasyncore.close_all(watched)


class LogLines(logging.Handler):
    """Every record logged under ``node`` while installed, formatted, for tests to wait on."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            self.lines.append(record.getMessage())

    def matching(self, *needles: str) -> list[str]:
        with self._lock:
            return [line for line in self.lines if all(n in line for n in needles)]


@contextmanager
def node_log() -> Iterator[LogLines]:
    handler = LogLines()
    logger = logging.getLogger("node")
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
