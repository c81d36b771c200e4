"""Lying peers for the light-client tests, each a real HTTP server on a free loopback port.

``lying_peer`` forwards GETs to an honest node and alters chosen answers (one header,
one block, one merkle branch); ``chain_peer`` serves a crafted chain of its own.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from chain.block import Block
from chain.hashes import hash_to_hex, sha256d
from chain.transaction import TxOut


@dataclass
class Lies:
    """What to alter. Hashes are Bitcoin's reversed hex."""

    header: str | None = None  # flip a bit of this header's prev-hash field wherever it is served
    block: str | None = None  # serve this block with its coinbase paying one unit more (header untouched)
    proof: bool = False  # flip a bit of the first hash of every merkle branch


def _alter_header(raw_hex: str, target: str) -> str:
    raw = bytearray(bytes.fromhex(raw_hex))
    if hash_to_hex(sha256d(bytes(raw))) == target:
        raw[4] ^= 0x01
    return raw.hex()


def _alter_block(raw_hex: str) -> str:
    block = Block.parse(bytes.fromhex(raw_hex))
    coinbase = block.transactions[0]
    first = coinbase.outputs[0]
    richer = type(coinbase)(coinbase.version, coinbase.inputs, (TxOut(first.amount + 1, first.pubkey_hash),))
    return Block(block.header, (richer, *block.transactions[1:])).serialize().hex()


class _Handler(BaseHTTPRequestHandler):
    server: _ProxyServer

    def do_GET(self) -> None:
        upstream = requests.get(self.server.upstream + self.path, timeout=30)
        body: Any = upstream.json()
        lies = self.server.lies
        if upstream.status_code == 200:
            if self.path.startswith("/api/headers") and lies.header:
                body["headers"] = [_alter_header(h, lies.header) for h in body["headers"]]
            elif lies.block and self.path == f"/api/blocks/{lies.block}/raw":
                body["hex"] = _alter_block(body["hex"])
            elif lies.proof and self.path.startswith("/api/proofs/") and body["branch"]:
                first = bytearray(bytes.fromhex(body["branch"][0]))
                first[0] ^= 0x01
                body["branch"][0] = first.hex()
        data = json.dumps(body).encode()
        self.send_response(upstream.status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, lies: Lies) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.lies = lies


@contextmanager
def lying_peer(upstream: str, lies: Lies) -> Iterator[str]:
    """Serve ``upstream``'s API with ``lies`` on a free loopback port; yields the proxy's URL."""
    server = _ProxyServer(upstream, lies)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="lying-peer", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _ChainHandler(BaseHTTPRequestHandler):
    server: _ChainServer

    def do_GET(self) -> None:  # http.server's naming
        url = urlsplit(self.path)
        blocks = self.server.blocks
        status, body = 404, {"error": {"code": "not-found", "message": self.path}}
        if url.path == "/api/status":
            status, body = 200, {"height": len(blocks) - 1, "tip": blocks[-1].hash_hex}
        elif url.path == "/api/headers":
            query = parse_qs(url.query)
            locator = [h for h in query.get("locator", [""])[0].split(",") if h]
            limit = int(query.get("limit", ["2000"])[0])
            heights = {b.hash_hex: i for i, b in enumerate(blocks)}
            start = next((heights[h] for h in locator if h in heights), 0)
            status, body = 200, {"headers": [b.header.serialize().hex() for b in blocks[start + 1 : start + 1 + limit]]}
        elif url.path.startswith("/api/blocks/") and url.path.endswith("/raw"):
            wanted = url.path.split("/")[3]
            found = next((b for b in blocks if b.hash_hex == wanted), None)
            if found is not None:
                status, body = 200, {"hex": found.serialize().hex()}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ChainServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, blocks: list[Block]) -> None:
        super().__init__(("127.0.0.1", 0), _ChainHandler)
        self.blocks = blocks


@contextmanager
def chain_peer(blocks: list[Block]) -> Iterator[str]:
    """A peer serving exactly ``blocks`` (genesis first) through the headers and raw-block API; yields its URL.

    For chains a real node would refuse to hold: properly mined headers over blocks
    that break a transaction rule, which only ``verify --full`` can catch.
    """
    server = _ChainServer(blocks)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="chain-peer", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
