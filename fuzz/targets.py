"""Fuzz targets shared by the atheris harness (``scripts/fuzz``) and the hypothesis tests (tests/hostile/test_fuzz.py).

Each target takes arbitrary input and returns normally when the code under test
gave either a result or a clean rejection (one of our own exception types, or an
HTTP 4xx with a JSON error). Anything else escapes as an exception: that is a
finding. Accepted inputs are also checked for canonical round trips, so a decoder
that accepts two encodings of one object is a finding too.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from chain.address import decode_address, encode_address
from chain.block import Block, BlockHeader
from chain.encoding import Reader, varint
from chain.errors import DecodeError, HeaderError, ValidationError
from chain.hashes import hash_to_hex, hex_to_hash
from chain.params import REGTEST
from chain.pow import check_proof_of_work
from chain.transaction import Transaction
from chain.utxo import parse_undo, serialize_undo
from chain.validation import check_block, check_transaction


class Finding(AssertionError):
    """The code under test did something other than return or reject cleanly."""


def transaction(data: bytes) -> None:
    try:
        tx = Transaction.parse(data)
    except DecodeError:
        return
    if tx.serialize() != data or Transaction(tx.version, tx.inputs, tx.outputs).serialize() != data:
        raise Finding("a transaction decoded from bytes that are not its serialization")
    tx.to_json()
    with contextlib.suppress(ValidationError):
        check_transaction(tx, REGTEST)


def block(data: bytes) -> None:
    try:
        parsed = Block.parse(data)
    except DecodeError:
        return
    rebuilt = Block(parsed.header, tuple(Transaction(t.version, t.inputs, t.outputs) for t in parsed.transactions))
    if parsed.serialize() != data or rebuilt.serialize() != data:
        raise Finding("a block decoded from bytes that are not its serialization")
    parsed.to_json()
    with contextlib.suppress(ValidationError):
        check_block(parsed, REGTEST)


def header(data: bytes) -> None:
    try:
        parsed = BlockHeader.parse(data)
    except DecodeError:
        return
    if parsed.serialize() != data or BlockHeader(**_fields(parsed)).serialize() != data:
        raise Finding("a header decoded from bytes that are not its serialization")
    parsed.to_json()
    with contextlib.suppress(HeaderError):
        check_proof_of_work(parsed.hash, parsed.bits, REGTEST.pow_limit)


def _fields(h: BlockHeader) -> dict[str, Any]:
    return {k: getattr(h, k) for k in ("version", "prev_hash", "merkle_root", "time", "bits", "nonce")}


def undo(data: bytes) -> None:
    try:
        spent = parse_undo(data)
    except DecodeError:
        return
    # Semantic round trip only: undo data is the node's own record, never a peer's, and Coin.read
    # takes any non-zero coinbase flag byte as True (a non-canonical encoding found by this target).
    if parse_undo(serialize_undo(spent)) != spent:
        raise Finding("undo data does not survive a round trip")


def varints(data: bytes) -> None:
    """Read varints until the bytes run out: every accepted one is the shortest encoding of its value."""
    reader = Reader(data)
    while reader.remaining():
        start = reader.pos
        try:
            value = reader.varint()
        except DecodeError:
            return
        if varint(value) != data[start : reader.pos]:
            raise Finding(f"varint {value} accepted in a non-canonical encoding")


def address(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    try:
        pubkey_hash = decode_address(text, REGTEST)
    except ValidationError:
        return
    if encode_address(pubkey_hash, REGTEST) != text.strip():
        raise Finding("an address decoded from text that is not its encoding")


def hash_hex(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    try:
        parsed = hex_to_hash(text)
    except ValueError:
        return
    if hash_to_hex(parsed) != text.lower():
        raise Finding("a hash parsed from text that is not its hex")


def wallet_file(data: bytes) -> None:
    """Any bytes as a wallet file: read and (when it parses) opened with a password; only wallet errors."""
    from wallet.errors import WalletError
    from wallet.keystore import Wallet, WalletFile

    path = _scratch() / "fuzzed.wallet"
    path.write_bytes(data)
    try:
        stored = WalletFile.read(path)
        if stored.kdf.n * stored.kdf.r * stored.kdf.p <= 2**14:  # the harness skips costly KDFs, not the file
            Wallet.open(path, "fuzz password")
    except WalletError:
        return


# ---------------------------------------------------------------- the HTTP API

METHODS = ("GET", "POST", "DELETE", "PUT", "HEAD", "OPTIONS")
ROUTES = (
    "/api/status",
    "/api/blocks",
    "/api/blocks/",
    "/api/heights/",
    "/api/headers",
    "/api/transactions",
    "/api/transactions/",
    "/api/mempool",
    "/api/addresses/",
    "/api/proofs/",
    "/api/peers",
    "/api/peers/",
    "/api/mining/generate",
    "/api/admin/utxo-check",
    "/p2p/handshake",
    "/p2p/inv",
    "/p2p/headers",
    "/p2p/blocks/",
    "/p2p/transactions",
    "/p2p/transactions/",
    "/p2p/addresses",
    "/",
    "/nowhere/",
)
_app_lock = threading.Lock()
_app: Any = None
_scratch_dir: Path | None = None


def _scratch() -> Path:
    global _scratch_dir
    if _scratch_dir is None:
        _scratch_dir = Path(tempfile.mkdtemp(prefix="cairn-fuzz-"))
        atexit.register(shutil.rmtree, _scratch_dir, True)
    return _scratch_dir


def app() -> Any:
    """One regtest node (a few blocks, never started: no threads, no outbound connections) and its Flask app."""
    global _app
    with _app_lock:
        if _app is None:
            from chain.builder import ChainBuilder
            from node.app import create_app
            from node.config import NodeConfig
            from node.service import Node

            node = Node(NodeConfig(network="regtest", datadir=_scratch() / "node", port=1, synchronous="OFF"))
            for mined in ChainBuilder(REGTEST).add_chain(3):
                node.submit_block(mined)
            _app = create_app(node)
        return _app


def http_request(method: str, route: str, segment: str, query: str, body: bytes, peer: str | None) -> None:
    """One request through the whole Flask app: never a 5xx, and every /api or /p2p error is our JSON error."""
    # (a segment starting with "/" would make "//host..." paths, which the test client reads as a URL's host)
    path = route + quote(segment.lstrip("/"), safe="/") if route.endswith("/") else route
    headers = {"Content-Type": "application/json"}
    if peer is not None:  # a header value cannot carry control characters on the wire: the client refuses them
        headers["X-Cairn-Peer"] = "".join(c for c in peer if c.isprintable())
    response = (
        app()
        .test_client()
        .open(path, method=method, query_string=quote(query, safe="=&;,+%/:"), data=body, headers=headers)
    )
    status = response.status_code
    if status >= 500:
        raise Finding(f"{method} {path}?{query!r:.100} answered {status}: {response.get_data()[:300]!r}")
    if status >= 400 and method != "HEAD" and path.startswith(("/api/", "/p2p/")):
        document = json.loads(response.get_data())
        error = document.get("error") if isinstance(document, dict) else None
        if not isinstance(error, dict) or not isinstance(error.get("code"), str):
            raise Finding(f"{method} {path} answered {status} without a JSON error: {response.get_data()[:300]!r}")


def http(data: bytes) -> None:
    """``http_request`` driven by raw bytes (for atheris): method, route, then newline-separated fields."""
    if len(data) < 2:
        return
    method, route = METHODS[data[0] % len(METHODS)], ROUTES[data[1] % len(ROUTES)]
    parts = data[2:].split(b"\n", 3) + [b""] * 3
    segment, query, peer = (p.decode("utf-8", errors="replace") for p in parts[:3])
    http_request(method, route, segment, query.replace("\0", ""), parts[3], peer or None)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "transaction": transaction,
    "block": block,
    "header": header,
    "undo": undo,
    "varint": varints,
    "address": address,
    "hash": hash_hex,
    "wallet": wallet_file,
    "http": http,
}


def seeds() -> dict[str, list[bytes]]:
    """Valid inputs for every target, to start the fuzzer from real objects rather than from nothing."""
    from chain.builder import ChainBuilder, Key
    from chain.transaction import COIN, OutPoint
    from chain.utxo import Coin

    builder = ChainBuilder(REGTEST)
    blocks = builder.add_chain(11)
    tx = builder.spend([builder.coinbase_spendable(blocks[0])], Key().pubkey_hash, COIN, fee=1000)
    with_tx = builder.add_block(transactions=[tx], fees=1000)
    undo_data = serialize_undo([(OutPoint(tx.txid, 0), Coin(COIN, bytes(20), 3, True))])
    address_text = encode_address(Key().pubkey_hash, REGTEST).encode()
    hello = {"network": "regtest", "url": "http://127.0.0.1:1", "height": 0, "chainwork": "2", "tip": "00" * 32}
    return {
        "transaction": [tx.serialized, with_tx.transactions[0].serialized],
        "block": [with_tx.serialized, blocks[0].serialized],
        "header": [with_tx.header.serialized],
        "undo": [undo_data, serialize_undo([])],
        "varint": [varint(n) for n in (0, 0xFC, 0xFD, 0xFFFF, 0x10000, 0x2000000)],
        "address": [address_text],
        "hash": [with_tx.hash_hex.encode()],
        "wallet": [_seed_wallet()],
        "http": [
            bytes([1, 5]) + b"\n\n\n" + json.dumps({"hex": tx.serialized.hex()}).encode(),
            bytes([1, 1]) + b"\n\n\n" + json.dumps({"hex": with_tx.serialized.hex()}).encode(),
            bytes([0, 4]) + b"\nlocator=" + with_tx.hash_hex.encode() + b"&limit=5\n\n",
            bytes([1, 14]) + b"\n\n\n" + json.dumps(hello).encode(),
            bytes([0, 8]) + address_text + b"\n\n\n",
        ],
    }


def _seed_wallet() -> bytes:
    from wallet.keystore import SCRYPT_N_ENV, Wallet

    path = _scratch() / "seed.wallet"
    if not path.exists():
        saved = os.environ.get(SCRYPT_N_ENV)
        os.environ[SCRYPT_N_ENV] = "1024"  # the documented test knob, only while creating (the file records it)
        try:
            Wallet.create(path, "regtest", "fuzz password")
        finally:
            if saved is None:
                del os.environ[SCRYPT_N_ENV]
            else:
                os.environ[SCRYPT_N_ENV] = saved
    return path.read_bytes()
