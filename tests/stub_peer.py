"""A scripted p2p peer for tests: a real HTTP server on a loopback port that answers as a subclass says.

Subclasses implement ``get(path)`` and ``post(path, body)``, each returning a ``Reply``;
``hello()`` is the handshake a regtest peer sends, claiming whatever height, tip and work
the test needs.
"""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

from chain.hashes import hash_to_hex
from chain.params import REGTEST
from node import PROTOCOL_VERSION


class Reply(NamedTuple):
    status: int
    body: bytes
    content_type: str = "application/json"


def json_reply(value: Any, status: int = 200) -> Reply:
    return Reply(status, json.dumps(value).encode())


def raw_reply(data: bytes) -> Reply:
    return Reply(200, data, "application/octet-stream")


NOT_FOUND = Reply(404, b'{"error": {"code": "not-found", "message": "not here"}}')
OK = Reply(200, b'{"ok": true}')


class StubPeer:
    """Base of the scripted peers; the server runs from construction until ``close``."""

    version = "stub"
    claimed_height = 0  # what hello() claims: a peer may claim more than it has
    claimed_tip: str | None = None  # None: the regtest genesis
    claimed_work = "2"

    def __init__(self) -> None:
        self.nonce = secrets.randbits(63)
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, reply: Reply) -> None:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def do_GET(self) -> None:
                self._reply(peer.get(self.path))
                peer.answered("GET", self.path)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._reply(peer.post(self.path, body))
                peer.answered("POST", self.path)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def get(self, path: str) -> Reply:
        return NOT_FOUND

    def post(self, path: str, body: bytes) -> Reply:
        return json_reply(self.hello()) if path == "/p2p/handshake" else OK

    def answered(self, method: str, path: str) -> None:
        """Called after each reply went out (so a test sees only answered requests)."""

    def hello(self) -> dict[str, Any]:
        return {
            "network": "regtest",
            "magic": REGTEST.magic.hex(),
            "genesis": hash_to_hex(REGTEST.genesis_hash),
            "version": self.version,
            "protocol": PROTOCOL_VERSION,
            "url": self.url,
            "nonce": self.nonce,
            "height": self.claimed_height,
            "tip": self.claimed_tip if self.claimed_tip is not None else hash_to_hex(REGTEST.genesis_hash),
            "chainwork": self.claimed_work,
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
