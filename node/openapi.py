"""The OpenAPI 3.0 document of ``/api`` (served at ``/api/openapi.json``; checked by schemathesis in the tests)."""

from __future__ import annotations

from typing import Any

from node import VERSION

HASH = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
HEX = {"type": "string", "pattern": "^([0-9a-f]{2})*$"}
AMOUNT = {"type": "integer"}
NULLABLE_INT = {"type": "integer", "nullable": True}
NULLABLE_HASH = {**HASH, "nullable": True}


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required if required is not None else list(properties),
    }


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _path_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def _query_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


BAD = _error("invalid input, or a consensus/policy rule broken: `code` is the reason code")
MISSING = _error("unknown object: code `not-found`")
UNAUTHORIZED = _error("missing or wrong bearer token: code `unauthorized`")
TOO_LARGE = _error("request body above the size limit: code `too-large`")

SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": _obj({"code": {"type": "string"}, "message": {"type": "string"}})}),
    "Status": _obj(
        {
            "network": {"type": "string"},
            "height": {"type": "integer"},
            "tip": HASH,
            "chainwork": {"type": "string", "pattern": "^[0-9a-f]+$"},
            "mempool_size": {"type": "integer"},
            "mempool_bytes": {"type": "integer"},
            "peers": {"type": "integer"},
            "version": {"type": "string"},
            "syncing": {"type": "boolean"},
            "mining": {"type": "boolean"},
            "url": {"type": "string"},
            "time": {"type": "integer"},
        }
    ),
    "Faults": _obj(
        {
            "blocked_peers": {"type": "array", "items": {"type": "string"}},
            "delay_ms": {"type": "integer", "minimum": 0, "maximum": 10000},
            "clock_skew": {"type": "integer", "minimum": -604800, "maximum": 604800},
            "byzantine": {"type": "boolean"},
            "counters": _obj(
                {
                    name: {"type": "integer"}
                    for name in ("blocked_in", "blocked_out", "delayed_in", "delayed_out", "delayed_ms", "bad_blocks")
                }
            ),
        }
    ),
    "TxInput": _obj(
        {
            "txid": HASH,
            "index": {"type": "integer"},
            "pubkey": HEX,
            "signature": HEX,
            "amount": NULLABLE_INT,
            "address": {"type": "string", "nullable": True},
        },
        ["txid", "index", "pubkey", "signature"],
    ),
    "TxOutput": _obj({"amount": AMOUNT, "pubkey_hash": HEX, "address": {"type": "string"}}, ["amount", "pubkey_hash"]),
    "Transaction": _obj(
        {
            "txid": HASH,
            "version": {"type": "integer"},
            "size": {"type": "integer"},
            "coinbase": {"type": "boolean"},
            "inputs": {"type": "array", "items": _ref("TxInput")},
            "outputs": {"type": "array", "items": _ref("TxOutput")},
        }
    ),
    "TransactionDetail": {
        "allOf": [
            _ref("Transaction"),
            _obj(
                {
                    "block": NULLABLE_HASH,
                    "height": NULLABLE_INT,
                    "confirmations": {"type": "integer"},
                    "time": NULLABLE_INT,
                    "in_mempool": {"type": "boolean"},
                    "fee": NULLABLE_INT,
                }
            ),
        ]
    },
    "BlockSummary": _obj(
        {
            "hash": HASH,
            "version": {"type": "integer"},
            "prev_hash": HASH,
            "merkle_root": HASH,
            "time": {"type": "integer"},
            "bits": {"type": "string", "pattern": "^[0-9a-f]{8}$"},
            "nonce": {"type": "integer"},
            "height": {"type": "integer"},
            "size": {"type": "integer"},
            "chainwork": {"type": "string"},
            "confirmations": {"type": "integer", "description": "-1 when not on the active chain"},
            "in_active_chain": {"type": "boolean"},
            "tx_count": {"type": "integer"},
        }
    ),
    "Block": {
        "allOf": [
            _ref("BlockSummary"),
            _obj({"transactions": {"type": "array", "items": _ref("Transaction")}}),
        ]
    },
    "Utxo": _obj(
        {
            "txid": HASH,
            "index": {"type": "integer"},
            "amount": AMOUNT,
            "height": NULLABLE_INT,
            "confirmations": {"type": "integer"},
            "coinbase": {"type": "boolean"},
            "mature": {"type": "boolean"},
            "spent_in_mempool": {"type": "boolean"},
        }
    ),
    "Address": _obj(
        {
            "address": {"type": "string"},
            "confirmed": AMOUNT,
            "immature": AMOUNT,
            "unconfirmed": AMOUNT,
            "utxos": {"type": "array", "items": _ref("Utxo")},
        }
    ),
    "HistoryItem": _obj(
        {
            "txid": HASH,
            "height": NULLABLE_INT,
            "block": NULLABLE_HASH,
            "confirmations": {"type": "integer"},
            "time": NULLABLE_INT,
            "received": AMOUNT,
            "sent": AMOUNT,
        }
    ),
    "Peer": _obj(
        {
            "id": {"type": "integer"},
            "url": {"type": "string"},
            "outbound": {"type": "boolean"},
            "state": {"type": "string", "enum": ["connecting", "connected", "unreachable"]},
            "score": {"type": "integer"},
            "failures": {"type": "integer"},
            "retry_delay": {"type": "number"},
            "version": {"type": "string"},
            "height": {"type": "integer"},
            "tip": {"type": "string"},
            "queued": {"type": "integer"},
            "dropped": {"type": "integer"},
        }
    ),
    "HexBody": _obj({"hex": {"type": "string", "pattern": "^([0-9a-fA-F]{2})+$"}}),
}

HASH_IN = {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}
HASH_PARAM = _path_param("hash", HASH_IN, "a block hash in reversed hex")
TXID_PARAM = _path_param("txid", HASH_IN, "a txid in reversed hex")
ADDRESS_PARAM = _path_param(
    "address", {"type": "string", "pattern": "^[1-9A-HJ-NP-Za-km-z]{25,40}$"}, "a Base58Check address of this network"
)
ADMIN = [{"bearer": []}]


def _get(summary: str, ok: dict[str, Any], *, params: list[Any] | None = None, errors: dict[str, Any] | None = None):
    operation: dict[str, Any] = {"summary": summary, "responses": {"200": ok, **(errors or {})}}
    if params:
        operation["parameters"] = params
    return operation


def _post(summary: str, body: dict[str, Any], ok: dict[str, Any], errors: dict[str, Any], *, secured: bool = False):
    operation: dict[str, Any] = {
        "summary": summary,
        "requestBody": _body(body),
        "responses": {"200": ok, "400": BAD, "413": TOO_LARGE, **errors},
    }
    if secured:
        operation["security"] = ADMIN
        operation["responses"]["401"] = UNAUTHORIZED
    return operation


def openapi_document(network: str) -> dict[str, Any]:
    """The document for a node of ``network``."""
    paths: dict[str, Any] = {
        "/api/status": {"get": _get("Chain tip, mempool and peer counts", _json(_ref("Status"), "status"))},
        "/api/blocks": {
            "get": _get(
                "Active-chain blocks from height `start` (default: the tip) downwards",
                _json(
                    _obj({"tip": {"type": "integer"}, "blocks": {"type": "array", "items": _ref("BlockSummary")}}),
                    "blocks, newest first",
                ),
                params=[
                    _query_param("start", {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}, "highest height"),
                    _query_param("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "at most this many"),
                ],
                errors={"400": BAD},
            ),
            "post": _post(
                "Submit a block (raw hex)",
                _ref("HexBody"),
                _json(
                    _obj(
                        {
                            "hash": HASH,
                            "status": {"type": "string", "enum": ["active", "stored", "duplicate", "orphan"]},
                        }
                    ),
                    "accepted: on the active chain, stored on a side branch, already known, or waiting for its parent",
                ),
                {},
            ),
        },
        "/api/blocks/{hash}": {
            "get": _get(
                "A block with its transactions",
                _json(_ref("Block"), "the block"),
                params=[HASH_PARAM],
                errors={"400": BAD, "404": MISSING},
            )
        },
        "/api/blocks/{hash}/raw": {
            "get": _get(
                "A block's serialization",
                _json(_obj({"hex": HEX}), "raw block"),
                params=[HASH_PARAM],
                errors={"400": BAD, "404": MISSING},
            )
        },
        "/api/heights/{height}": {
            "get": _get(
                "The active chain's block hash at a height",
                _json(_obj({"height": {"type": "integer"}, "hash": HASH}), "the hash"),
                params=[_path_param("height", {"type": "integer", "minimum": 0}, "a height")],
                errors={"400": BAD, "404": MISSING},
            )
        },
        "/api/headers": {
            "get": _get(
                "Raw 80-byte headers after the first locator hash on the active chain (genesis if none)",
                _json(
                    _obj({"headers": {"type": "array", "items": {"type": "string", "pattern": "^[0-9a-f]{160}$"}}}),
                    "headers",
                ),
                params=[
                    _query_param(
                        "locator",
                        {"type": "string", "pattern": "^([0-9a-fA-F]{64}(,[0-9a-fA-F]{64}){0,100})?$"},
                        "comma-separated block hashes, newest first",
                    ),
                    _query_param("limit", {"type": "integer", "minimum": 1, "maximum": 2000}, "at most this many"),
                ],
                errors={"400": BAD},
            )
        },
        "/api/transactions": {
            "post": _post(
                "Submit a transaction (raw hex) to the mempool",
                _ref("HexBody"),
                _json(_obj({"txid": HASH, "fee": AMOUNT}), "accepted"),
                {},
            )
        },
        "/api/transactions/{txid}": {
            "get": _get(
                "A transaction of the active chain or the mempool, inputs annotated with what they spend",
                _json(_ref("TransactionDetail"), "the transaction"),
                params=[TXID_PARAM],
                errors={"400": BAD, "404": MISSING},
            )
        },
        "/api/mempool": {
            "get": _get(
                "Transactions waiting to be mined",
                _json(
                    _obj(
                        {
                            "size": {"type": "integer"},
                            "bytes": {"type": "integer"},
                            "transactions": {
                                "type": "array",
                                "items": _obj(
                                    {
                                        "txid": HASH,
                                        "size": {"type": "integer"},
                                        "fee": AMOUNT,
                                        "fee_rate": {"type": "integer"},
                                        "time": {"type": "integer"},
                                    }
                                ),
                            },
                        }
                    ),
                    "the mempool",
                ),
            )
        },
        "/api/addresses/{address}": {
            "get": _get(
                "Balances and unspent outputs of an address",
                _json(_ref("Address"), "balances"),
                params=[ADDRESS_PARAM],
                errors={"400": BAD},
            )
        },
        "/api/addresses/{address}/history": {
            "get": _get(
                "Transactions paying or spending an address, newest first, mempool included",
                _json(
                    _obj(
                        {"address": {"type": "string"}, "transactions": {"type": "array", "items": _ref("HistoryItem")}}
                    ),
                    "history",
                ),
                params=[ADDRESS_PARAM],
                errors={"400": BAD},
            )
        },
        "/api/proofs/{txid}": {
            "get": _get(
                "Merkle branch proving a confirmed transaction is in its block",
                _json(
                    _obj(
                        {
                            "txid": HASH,
                            "block": HASH,
                            "height": {"type": "integer"},
                            "merkle_root": HASH,
                            "index": {"type": "integer"},
                            "tx_count": {"type": "integer"},
                            "branch": {"type": "array", "items": HASH},
                        }
                    ),
                    "the proof",
                ),
                params=[TXID_PARAM],
                errors={"400": BAD, "404": MISSING},
            )
        },
        "/api/peers": {
            "get": _get(
                "Peers and bans",
                _json(
                    _obj(
                        {
                            "peers": {"type": "array", "items": _ref("Peer")},
                            "banned": {
                                "type": "array",
                                "items": _obj(
                                    {
                                        "url": {"type": "string"},
                                        "until": {"type": "number"},
                                        "reason": {"type": "string"},
                                    }
                                ),
                            },
                            "max_peers": {"type": "integer"},
                        }
                    ),
                    "peers",
                ),
            ),
            "post": _post(
                "Connect to a peer (admin)",
                _obj({"url": {"type": "string"}}),
                _json(_obj({"peer": _ref("Peer")}), "the peer, connecting in the background"),
                {"403": _error("the URL is banned: code `banned`"), "409": _error("too many peers")},
                secured=True,
            ),
        },
        "/api/peers/{id}": {
            "delete": {
                "summary": "Disconnect a peer, and with ban=true ban it (admin)",
                "security": ADMIN,
                "parameters": [
                    _path_param("id", {"type": "integer"}, "the peer's id"),
                    _query_param("ban", {"type": "string", "enum": ["true", "false"]}, "ban it too"),
                ],
                "responses": {
                    "200": _json(
                        _obj(
                            {"removed": {"type": "integer"}, "url": {"type": "string"}, "banned": {"type": "boolean"}}
                        ),
                        "removed",
                    ),
                    "400": BAD,
                    "401": UNAUTHORIZED,
                    "404": MISSING,
                },
            }
        },
        "/api/mining/generate": {
            "post": _post(
                "Mine blocks now, with real proof of work (admin)",
                _obj(
                    {"blocks": {"type": "integer", "minimum": 1, "maximum": 1000}, "address": {"type": "string"}},
                    ["blocks"],
                ),
                _json(_obj({"blocks": {"type": "array", "items": HASH}}), "hashes of the blocks mined"),
                {},
                secured=True,
            )
        },
        "/api/mining/start": {
            "post": _post(
                "Start the background miner (admin)",
                _obj({"address": {"type": "string"}}, []),
                _json(_obj({"mining": {"type": "boolean"}}), "mining"),
                {},
                secured=True,
            )
        },
        "/api/mining/stop": {
            "post": {
                "summary": "Stop the background miner (admin)",
                "security": ADMIN,
                "responses": {"200": _json(_obj({"mining": {"type": "boolean"}}), "stopped"), "401": UNAUTHORIZED},
            }
        },
        "/api/admin/faults": {
            "get": {
                "summary": "The fault-injection state and its counters (admin)",
                "security": ADMIN,
                "responses": {"200": _json(_ref("Faults"), "faults"), "401": UNAUTHORIZED},
            },
            "post": _post(
                "Set faults: blocked_peers (partition), delay_ms, clock_skew, byzantine; others unchanged (admin)",
                _obj(
                    {
                        "blocked_peers": {"type": "array", "items": {"type": "string"}},
                        "delay_ms": {"type": "integer", "minimum": 0, "maximum": 10000},
                        "clock_skew": {"type": "integer", "minimum": -604800, "maximum": 604800},
                        "byzantine": {"type": "boolean"},
                    },
                    [],
                ),
                _json(_ref("Faults"), "the new state"),
                {},
                secured=True,
            ),
            "delete": {
                "summary": "Clear every fault; the counters keep counting (admin)",
                "security": ADMIN,
                "responses": {"200": _json(_ref("Faults"), "the cleared state"), "401": UNAUTHORIZED},
            },
        },
        "/api/admin/utxo-check": {
            "get": {
                "summary": "Recompute the UTXO set from the active chain and compare it with the stored one (admin)",
                "security": ADMIN,
                "responses": {
                    "200": _json(
                        _obj(
                            {
                                "ok": {"type": "boolean"},
                                "expected": {"type": "integer"},
                                "stored": {"type": "integer"},
                                "missing": {"type": "integer"},
                                "unexpected": {"type": "integer"},
                                "differing": {"type": "integer"},
                            }
                        ),
                        "the comparison",
                    ),
                    "401": UNAUTHORIZED,
                },
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": f"cairn-node ({network})",
            "version": VERSION,
            "description": "JSON API of a Cairn node. Hashes are Bitcoin's reversed hex; amounts are integers in "
            'smallest units. Errors are {"error": {"code", "message"}}.',
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
