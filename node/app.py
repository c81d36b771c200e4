"""The HTTP face of a node: ``create_app(node)`` with the ``api`` and ``p2p`` blueprints.

Views only decode the request, call the ``Node`` and encode the answer. One set of
error handlers turns ``chain.errors.ValidationError`` (HTTP 400, the rule's reason
code), ``node.errors.NodeError`` (its own status and code) and HTTP errors into
``{"error": {"code": ..., "message": ...}}``. ``/`` is the block explorer's (``node/explorer.py``, HTML).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from chain.address import decode_address
from chain.block import Block
from chain.errors import ValidationError
from chain.hashes import hash_to_hex
from chain.transaction import Transaction
from node.args import int_arg, parse_hash, parse_height
from node.errors import BadRequest, NodeError, NotFound, Unauthorized
from node.explorer import explorer
from node.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from node.miner import generate
from node.openapi import openapi_document
from node.peers import MAX_GETDATA, MAX_HEADERS, PEER_HEADER, encode_transactions, normalize_url, parse_hash_list
from node.service import Node

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

MAX_GENERATE = 1000
MAX_BLOCKS_PAGE = 100

api = Blueprint("api", __name__, url_prefix="/api")
p2p = Blueprint("p2p", __name__, url_prefix="/p2p")


def create_app(node: Node) -> Flask:
    """The Flask application serving ``node``; nothing is created at import time."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = node.config.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["cairn_node"] = node
    app.register_blueprint(api)
    app.register_blueprint(p2p)
    app.register_blueprint(explorer)  # HTML pages at / (node/explorer.py)
    app.add_url_rule("/metrics", "metrics", _metrics)  # Prometheus text format (node/metrics.py)
    app.register_error_handler(ValidationError, _validation_error)
    app.register_error_handler(NodeError, _node_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def _node() -> Node:
    return current_app.extensions["cairn_node"]  # type: ignore[no-any-return]


def _metrics() -> Response:
    return Response(_node().metrics.render(), content_type=METRICS_CONTENT_TYPE)


# ---------------------------------------------------------------- errors


def error_response(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify({"error": {"code": code, "message": message}}), status


def _validation_error(exc: ValidationError) -> tuple[Response, int]:
    return error_response(400, exc.reason, exc.message)


def _node_error(exc: NodeError) -> tuple[Response, int]:
    return error_response(exc.status, exc.code, exc.message)


_HTTP_CODES = {404: "not-found", 405: "method-not-allowed", 413: "too-large", 400: "bad-request"}


def _http_error(exc: HTTPException) -> tuple[Response, int]:
    status = exc.code or 500
    response, _ = error_response(status, _HTTP_CODES.get(status, "http-error"), exc.description or exc.name)
    for name, value in exc.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value  # e.g. Allow on a 405, as RFC 9110 requires
    return response, status


def _unexpected_error(exc: Exception) -> tuple[Response, int]:
    log.exception("unexpected error serving %s %s", request.method, request.path)
    return error_response(500, "internal-error", f"{type(exc).__name__}: the node failed to answer")


# ---------------------------------------------------------------- decoding


def _body() -> dict[str, Any]:
    """The request body as a JSON object; ``bad-request`` otherwise (``too-large`` above the size limit)."""
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _hex_field(body: dict[str, Any], name: str = "hex") -> bytes:
    value = body.get(name)
    if not isinstance(value, str):
        raise BadRequest(f"field {name!r} must be a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise BadRequest(f"field {name!r} is not hex") from None


def _int_field(body: dict[str, Any], name: str, low: int, high: int) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise BadRequest(f"field {name!r} must be an integer from {low} to {high}")
    return value


def admin(view: F) -> F:
    """Require ``Authorization: Bearer <token>`` with the token of ``<datadir>/auth.token``."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token or not _node().check_token(token.strip()):
            raise Unauthorized("this endpoint needs Authorization: Bearer <the token in <datadir>/auth.token>")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# ---------------------------------------------------------------- /api


@api.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document(_node().params.name))


@api.get("/status")
def status() -> Response:
    return jsonify(_node().status())


@api.get("/blocks")
def blocks() -> Response:
    node = _node()
    start = int_arg("start", None, 0, 2**31 - 1)
    limit = int_arg("limit", 20, 1, MAX_BLOCKS_PAGE)
    assert limit is not None
    return jsonify({"tip": node.chain.height, "blocks": node.blocks_json(start, limit)})


@api.get("/blocks/<block_hash>")
def block(block_hash: str) -> Response:
    return jsonify(_node().block_json(parse_hash(block_hash)))


@api.get("/blocks/<block_hash>/raw")
def block_raw(block_hash: str) -> Response:
    _, found = _node().block(parse_hash(block_hash))
    return jsonify({"hex": found.serialized.hex()})


@api.post("/blocks")
def post_block() -> Response:
    block = Block.parse(_hex_field(_body()))
    result = _node().submit_block(block)
    return jsonify({"hash": hash_to_hex(result.hash), "status": result.status})


@api.get("/heights/<height>")
def height(height: str) -> Response:
    value = parse_height(height)
    return jsonify({"height": value, "hash": hash_to_hex(_node().hash_at(value))})


def _locator() -> list[bytes]:
    text = request.args.get("locator", "")
    parts = text.split(",") if text else []
    if len(parts) > 101:
        raise BadRequest("a locator has at most 101 hashes")
    return [parse_hash(p) for p in parts]


def _headers_answer(p2p_call: bool = False) -> Response:
    locator = _locator()
    limit = int_arg("limit", MAX_HEADERS, 1, MAX_HEADERS)
    assert limit is not None
    headers = _node().chain.headers_after(locator, limit)
    if p2p_call:  # a byzantine node (fault injection) adds its invalid block
        headers = _node().faults.headers_answer(headers)
    return jsonify({"headers": [h.serialized.hex() for h in headers]})


@api.get("/headers")
def headers() -> Response:
    return _headers_answer()


@api.post("/transactions")
def post_transaction() -> Response:
    tx = Transaction.parse(_hex_field(_body()))
    entry = _node().submit_transaction(tx)
    return jsonify({"txid": hash_to_hex(entry.txid), "fee": entry.fee})


@api.get("/transactions/<txid>")
def transaction(txid: str) -> Response:
    return jsonify(_node().transaction_json(parse_hash(txid)))


@api.get("/mempool")
def mempool() -> Response:
    return jsonify(_node().mempool_json())


@api.get("/addresses/<address>")
def address(address: str) -> Response:
    return jsonify(_node().address_json(address))


@api.get("/addresses/<address>/history")
def address_history(address: str) -> Response:
    return jsonify(_node().history_json(address))


@api.get("/proofs/<txid>")
def proof(txid: str) -> Response:
    return jsonify(_node().proof_json(parse_hash(txid)))


@api.get("/peers")
def peers() -> Response:
    return jsonify(_node().peers_json())


@api.post("/peers")
@admin
def connect_peer() -> Response:
    url = _body().get("url")
    peer = _node().peers.add(normalize_url(url))
    return jsonify({"peer": peer.to_json()})


@api.delete("/peers/<peer_id>")
@admin
def disconnect_peer(peer_id: str) -> Response:
    try:
        number = int(peer_id)
    except ValueError:
        raise BadRequest(f"{peer_id!r:.40} is not a peer id") from None
    ban = request.args.get("ban", "false")
    if ban not in ("true", "false"):
        raise BadRequest("ban must be true or false")
    node = _node()
    peer = node.peers.by_id(number)
    node.peers.remove(peer, ban=ban == "true", reason="banned by admin" if ban == "true" else "disconnected by admin")
    return jsonify({"removed": peer.id, "url": peer.url, "banned": ban == "true"})


def _reward_address(body: dict[str, Any]) -> bytes:
    node = _node()
    address = body.get("address", node.config.mine_to)
    if address is None:
        raise BadRequest("give an address to pay the block rewards to (or start the node with --mine-to)")
    if not isinstance(address, str):
        raise BadRequest("field 'address' must be a string")
    return decode_address(address, node.params)


@api.post("/mining/generate")
@admin
def mining_generate() -> Response:
    body = _body()
    count = _int_field(body, "blocks", 1, MAX_GENERATE)
    node = _node()
    reward_to = _reward_address(body)
    mined = generate(node, reward_to, count, lambda: node.stopping)
    return jsonify({"blocks": [b.hash_hex for b in mined]})


@api.post("/mining/start")
@admin
def mining_start() -> Response:
    node = _node()
    node.miner.start(_reward_address(_body()))
    return jsonify({"mining": True})


@api.post("/mining/stop")
@admin
def mining_stop() -> Response:
    node = _node()
    node.miner.stop()
    return jsonify({"mining": False})


@api.get("/admin/faults")
@admin
def faults_get() -> Response:
    return jsonify(_node().faults.to_json())


@api.post("/admin/faults")
@admin
def faults_set() -> Response:
    return jsonify(_node().faults.update(_body()))


@api.delete("/admin/faults")
@admin
def faults_reset() -> Response:
    return jsonify(_node().faults.reset())


@api.get("/admin/utxo-check")
@admin
def utxo_check() -> Response:
    check = _node().chain.check_utxo_set()
    return jsonify(
        {
            "ok": check.ok,
            "expected": check.expected,
            "stored": check.stored,
            "missing": len(check.missing),
            "unexpected": len(check.unexpected),
            "differing": len(check.differing),
        }
    )


# ---------------------------------------------------------------- /p2p


def _peer_url() -> str:
    url = request.headers.get(PEER_HEADER)
    if url is None:
        raise BadRequest(f"p2p requests carry the sender's listen URL in {PEER_HEADER}")
    return normalize_url(url)


@p2p.before_request
def _known_peers_only() -> None:
    """Every p2p call but the handshake must come from a connected peer when it names its sender."""
    _node().faults.before_inbound(request.headers.get(PEER_HEADER))  # fault injection: partition, delay
    if request.endpoint != "p2p.handshake":
        _node().peers.check_caller(request.headers.get(PEER_HEADER))


@p2p.post("/handshake")
def handshake() -> Response:
    return jsonify(_node().peers.inbound_handshake(_body()))


@p2p.post("/inv")
def inventory() -> Response:
    body = _body()
    blocks = parse_hash_list(body.get("blocks"), "blocks")
    txids = parse_hash_list(body.get("transactions"), "transactions")
    _node().on_inventory(_peer_url(), blocks, txids)
    return jsonify({"ok": True})


@p2p.get("/headers")
def p2p_headers() -> Response:
    return _headers_answer(p2p_call=True)


@p2p.get("/blocks/<block_hash>")
def p2p_block(block_hash: str) -> Response:
    bad = _node().faults.bad_block(parse_hash(block_hash))  # fault injection: a byzantine node's invalid block
    if bad is not None:
        return Response(bad.serialized, mimetype="application/octet-stream")
    _, found = _node().block(parse_hash(block_hash))
    return Response(found.serialized, mimetype="application/octet-stream")


@p2p.get("/transactions/<txid>")
def p2p_transaction(txid: str) -> Response:
    entry = _node().mempool.get(parse_hash(txid))
    if entry is None:
        raise NotFound(f"{txid} is not in the mempool")
    return Response(entry.tx.serialized, mimetype="application/octet-stream")


@p2p.post("/transactions")
def p2p_transactions() -> Response:
    """Bitcoin's getdata for transactions: ``{"txids": [...]}`` -> a varint count, then the asked transactions
    that are in the mempool, serialized back to back in the order asked; one not in the mempool is absent."""
    mempool = _node().mempool
    found = [entry.tx for entry in map(mempool.get, _txids_field(_body())) if entry is not None]
    return Response(encode_transactions(found), mimetype="application/octet-stream")


def _txids_field(body: dict[str, Any]) -> list[bytes]:
    """Field ``txids``: at most MAX_GETDATA txids, duplicates dropped; ``bad-request`` unless it is a list,
    ``too-many-txids`` above the maximum, ``bad-hash`` for one that is not a 64-character hex string."""
    txids = body.get("txids")
    if not isinstance(txids, list):
        raise BadRequest("field 'txids' must be a list of txids")
    if len(txids) > MAX_GETDATA:
        raise BadRequest(f"at most {MAX_GETDATA} txids per request, not {len(txids)}", "too-many-txids")
    wanted: dict[bytes, None] = {}
    for txid in txids:
        if not isinstance(txid, str):
            raise BadRequest(f"{txid!r:.80} is not a 64-character hex hash", "bad-hash")
        wanted[parse_hash(txid)] = None
    return list(wanted)


@p2p.get("/addresses")
def p2p_addresses() -> Response:
    return jsonify({"peers": _node().peers.addresses()})
