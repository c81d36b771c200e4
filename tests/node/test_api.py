"""Every /api and /p2p endpoint with good and bad input, through Flask's test client on a real node."""

from __future__ import annotations

import os
import stat

import pytest

from chain.address import encode_address
from chain.block import Block, BlockHeader
from chain.builder import ChainBuilder, Key, Spendable
from chain.hashes import hash_to_hex, hex_to_hash
from chain.merkle import MerkleProof
from chain.params import DEVNET, REGTEST
from chain.transaction import COIN, OutPoint, Transaction
from devnet.process import free_port
from node import PROTOCOL_VERSION
from node.app import create_app
from node.config import NodeConfig
from node.service import Node

PAYEE = Key()
OTHER = Key()
PAYEE_ADDRESS = encode_address(PAYEE.pubkey_hash, REGTEST)


class World:
    """A node with 13 blocks: t_conf (coin 1 -> PAYEE, 10 coins) in block 13; t_pool (PAYEE -> OTHER) pooled."""

    def __init__(self, datadir) -> None:
        self.node = Node(NodeConfig(network="regtest", datadir=datadir, port=free_port(), synchronous="OFF"))
        self.app = create_app(self.node)
        self.builder = builder = ChainBuilder(REGTEST)
        self.blocks = builder.add_chain(12)
        for block in self.blocks:
            self.node.submit_block(block)
        self.t_conf = builder.spend([builder.coinbase_spendable(self.blocks[0])], PAYEE.pubkey_hash, 10 * COIN, 1000)
        self.blocks.append(builder.add_block(transactions=[self.t_conf], fees=1000))
        self.node.submit_block(self.blocks[-1])
        paid = Spendable(OutPoint(self.t_conf.txid, 0), self.t_conf.outputs[0], PAYEE)
        self.t_pool = builder.spend([paid], OTHER.pubkey_hash, 3 * COIN, fee=500)
        self.node.submit_transaction(self.t_pool)
        self.fork = builder.add_block(parent=self.blocks[0])  # a side branch at height 2
        self.node.submit_block(self.fork)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.node.token}"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = World(tmp_path_factory.mktemp("api") / "data")
    yield world
    world.node.stop()


@pytest.fixture
def client(world):
    return world.app.test_client()


def error_code(response) -> str:
    return response.get_json()["error"]["code"]


def hexid(h: bytes) -> str:
    return hash_to_hex(h)


# ---------------------------------------------------------------- status, blocks, heights, headers


def test_status(client, world):
    body = client.get("/api/status").get_json()
    assert body["network"] == "regtest" and body["height"] == 13
    assert body["tip"] == world.blocks[-1].hash_hex
    assert body["chainwork"] == format(world.node.chain.tip.chainwork, "x")
    assert body["mempool_size"] >= 1 and body["peers"] == 0 and body["syncing"] is False
    assert isinstance(body["version"], str)


def test_blocks_list_pages_down_from_the_tip(client):
    body = client.get("/api/blocks").get_json()
    assert body["tip"] == 13 and [b["height"] for b in body["blocks"]] == list(range(13, -1, -1))
    page = client.get("/api/blocks?start=5&limit=2").get_json()["blocks"]
    assert [b["height"] for b in page] == [5, 4] and page[0]["confirmations"] == 9


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=abc", "start=-1", "start=x"])
def test_blocks_list_rejects_bad_paging(client, query):
    response = client.get(f"/api/blocks?{query}")
    assert response.status_code == 400 and error_code(response) == "bad-request"


def test_block_by_hash(client, world):
    block = world.blocks[-1]
    body = client.get(f"/api/blocks/{block.hash_hex}").get_json()
    assert body["hash"] == block.hash_hex and body["height"] == 13 and body["confirmations"] == 1
    assert body["in_active_chain"] is True and body["tx_count"] == 2
    assert [t["txid"] for t in body["transactions"]] == [hexid(tx.txid) for tx in block.transactions]
    side = client.get(f"/api/blocks/{world.fork.hash_hex}").get_json()
    assert side["in_active_chain"] is False and side["confirmations"] == -1 and side["height"] == 2


def test_block_raw_round_trips(client, world):
    block = world.blocks[3]
    body = client.get(f"/api/blocks/{block.hash_hex}/raw").get_json()
    assert Block.parse(bytes.fromhex(body["hex"])) == block


@pytest.mark.parametrize("path", ["/api/blocks/{}", "/api/blocks/{}/raw"])
def test_block_bad_and_unknown_hash(client, path):
    response = client.get(path.format("zz" * 32))
    assert response.status_code == 400 and error_code(response) == "bad-hash"
    response = client.get(path.format("12" * 31))
    assert response.status_code == 400 and error_code(response) == "bad-hash"
    response = client.get(path.format("ab" * 32))
    assert response.status_code == 404 and error_code(response) == "not-found"


def test_heights(client, world):
    assert client.get("/api/heights/0").get_json() == {"height": 0, "hash": hexid(REGTEST.genesis_hash)}
    assert client.get("/api/heights/13").get_json()["hash"] == world.blocks[-1].hash_hex
    response = client.get("/api/heights/14")
    assert response.status_code == 404 and error_code(response) == "not-found"
    for bad in ("-1", "ten", "1.5"):
        response = client.get(f"/api/heights/{bad}")
        assert response.status_code == 400 and error_code(response) == "bad-request"


def test_headers_follow_the_first_known_locator_hash(client, world):
    all_headers = client.get("/api/headers").get_json()["headers"]
    assert [BlockHeader.parse(bytes.fromhex(h)).hash for h in all_headers] == [b.hash for b in world.blocks]
    unknown, tenth = "ab" * 32, world.blocks[9].hash_hex
    after = client.get(f"/api/headers?locator={unknown},{tenth}").get_json()["headers"]
    assert [BlockHeader.parse(bytes.fromhex(h)).hash for h in after] == [b.hash for b in world.blocks[10:]]
    assert len(client.get("/api/headers?limit=2").get_json()["headers"]) == 2
    assert client.get(f"/api/headers?locator={world.blocks[-1].hash_hex}").get_json() == {"headers": []}
    # a side-branch block is not on the active chain: start from genesis
    assert len(client.get(f"/api/headers?locator={world.fork.hash_hex}").get_json()["headers"]) == 13


@pytest.mark.parametrize(
    ("query", "code"), [("locator=nothex", "bad-hash"), ("limit=0", "bad-request"), ("limit=2001", "bad-request")]
)
def test_headers_bad_input(client, query, code):
    response = client.get(f"/api/headers?{query}")
    assert response.status_code == 400 and error_code(response) == code


# ---------------------------------------------------------------- posting blocks


def test_post_block_duplicate_orphan_and_side_branch(client, world):
    response = client.post("/api/blocks", json={"hex": world.blocks[2].serialized.hex()})
    assert response.status_code == 200 and response.get_json()["status"] == "duplicate"
    stranger = ChainBuilder(REGTEST)
    orphan = stranger.add_chain(2)[1]  # its parent is on nobody's chain here
    response = client.post("/api/blocks", json={"hex": orphan.serialized.hex()})
    assert response.get_json() == {"hash": orphan.hash_hex, "status": "orphan"}
    side = world.builder.next_block(parent=world.blocks[1])
    assert client.post("/api/blocks", json={"hex": side.serialized.hex()}).get_json()["status"] == "stored"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"hex": "00"}, 400, "bad-encoding"),
        ({"hex": "not hex"}, 400, "bad-request"),
        ({"hex": 5}, 400, "bad-request"),
        ({}, 400, "bad-request"),
        ([], 400, "bad-request"),
    ],
)
def test_post_block_bad_input(client, body, status, code):
    response = client.post("/api/blocks", json=body)
    assert response.status_code == status and error_code(response) == code


def test_post_block_bad_json_and_too_large(client, world):
    response = client.post("/api/blocks", data=b"{not json", content_type="application/json")
    assert response.status_code == 400 and error_code(response) == "bad-request"
    huge = b'{"hex": "' + b"00" * world.node.config.max_body_bytes + b'"}'
    response = client.post("/api/blocks", data=huge, content_type="application/json")
    assert response.status_code == 413 and error_code(response) == "too-large"


def test_post_invalid_block_gives_the_rule(client, world):
    good = world.builder.next_block(parent=world.blocks[-1])
    wrong_root = Block(good.header, good.transactions + good.transactions[:1])
    response = client.post("/api/blocks", json={"hex": wrong_root.serialized.hex()})
    assert response.status_code == 400 and error_code(response) == "bad-txnmrklroot"
    overpaid = world.builder.next_block(parent=world.blocks[-1], fees=1)
    response = client.post("/api/blocks", json={"hex": overpaid.serialized.hex()})
    assert response.status_code == 400 and error_code(response) == "bad-cb-amount"
    assert world.node.chain.tip.hash == world.blocks[-1].hash


# ---------------------------------------------------------------- transactions and mempool


def test_post_transaction_and_its_rejections(client, world):
    coin = world.builder.coinbase_spendable(world.blocks[1])
    tx = world.builder.spend([coin], OTHER.pubkey_hash, COIN, fee=2000)
    response = client.post("/api/transactions", json={"hex": tx.serialized.hex()})
    assert response.status_code == 200 and response.get_json() == {"txid": hexid(tx.txid), "fee": 2000}
    rival = world.builder.spend([coin], OTHER.pubkey_hash, 2 * COIN, fee=2000)
    immature = world.builder.spend([world.builder.coinbase_spendable(world.blocks[8])], OTHER.pubkey_hash, COIN)
    for bad, code in [
        (tx, "txn-already-known"),
        (rival, "txn-mempool-conflict"),
        (immature, "bad-txns-premature-spend-of-coinbase"),
        (world.t_conf, "txn-already-known"),
        (world.blocks[4].transactions[0], "coinbase"),
    ]:
        response = client.post("/api/transactions", json={"hex": bad.serialized.hex()})
        assert response.status_code == 400 and error_code(response) == code, code
    response = client.post("/api/transactions", json={"hex": tx.serialized.hex() + "00"})
    assert response.status_code == 400 and error_code(response) == "bad-encoding"
    response = client.post("/api/transactions", json={"tx": tx.serialized.hex()})
    assert response.status_code == 400 and error_code(response) == "bad-request"


def test_confirmed_transaction_annotated(client, world):
    body = client.get(f"/api/transactions/{hexid(world.t_conf.txid)}").get_json()
    assert body["block"] == world.blocks[-1].hash_hex and body["height"] == 13 and body["confirmations"] == 1
    assert body["in_mempool"] is False and body["time"] == world.blocks[-1].header.time and body["fee"] == 1000
    miner_address = encode_address(world.builder.miner.pubkey_hash, REGTEST)
    assert [(i["amount"], i["address"]) for i in body["inputs"]] == [(50 * COIN, miner_address)]
    assert body["outputs"][0] == {"amount": 10 * COIN, "pubkey_hash": PAYEE.pubkey_hash.hex(), "address": PAYEE_ADDRESS}


def test_mempool_transaction_and_coinbase(client, world):
    body = client.get(f"/api/transactions/{hexid(world.t_pool.txid)}").get_json()
    assert body["in_mempool"] is True and body["block"] is None and body["height"] is None
    assert body["confirmations"] == 0 and body["fee"] == 500
    assert body["inputs"][0]["amount"] == 10 * COIN and body["inputs"][0]["address"] == PAYEE_ADDRESS
    coinbase = world.blocks[5].transactions[0]
    body = client.get(f"/api/transactions/{hexid(coinbase.txid)}").get_json()
    assert body["coinbase"] is True and body["inputs"][0]["amount"] is None and body["fee"] is None


def test_transaction_bad_and_unknown(client):
    assert error_code(client.get("/api/transactions/xyz")) == "bad-hash"
    response = client.get(f"/api/transactions/{'cd' * 32}")
    assert response.status_code == 404 and error_code(response) == "not-found"


def test_mempool_listing(client, world):
    body = client.get("/api/mempool").get_json()
    listed = {t["txid"]: t for t in body["transactions"]}
    assert listed[hexid(world.t_pool.txid)]["fee"] == 500
    assert body["size"] == len(body["transactions"]) and body["bytes"] >= world.t_pool.size


# ---------------------------------------------------------------- addresses, history, proofs


def test_address_balances_and_utxos(client, world):
    body = client.get(f"/api/addresses/{PAYEE_ADDRESS}").get_json()
    change = world.t_pool.outputs[1].amount
    assert change == 7 * COIN - 500
    assert body["confirmed"] == 10 * COIN and body["immature"] == 0
    assert body["unconfirmed"] == change - 10 * COIN
    utxos = {(u["txid"], u["index"]): u for u in body["utxos"]}
    confirmed = utxos[(hexid(world.t_conf.txid), 0)]
    assert confirmed == {
        "txid": hexid(world.t_conf.txid),
        "index": 0,
        "amount": 10 * COIN,
        "height": 13,
        "confirmations": 1,
        "coinbase": False,
        "mature": True,
        "spent_in_mempool": True,
    }
    pooled = utxos[(hexid(world.t_pool.txid), 1)]
    assert pooled["height"] is None and pooled["confirmations"] == 0 and pooled["amount"] == change


def test_address_of_a_miner_counts_immature_coinbases(client, world):
    address = encode_address(world.builder.miner.pubkey_hash, REGTEST)
    body = client.get(f"/api/addresses/{address}").get_json()
    by_height = {u["height"]: u for u in body["utxos"] if u["coinbase"]}
    assert by_height[4]["mature"] is True and by_height[5]["mature"] is False  # next block is 14: 14 - 4 = 10
    assert body["immature"] == sum(u["amount"] for u in body["utxos"] if u["coinbase"] and not u["mature"])


@pytest.mark.parametrize(
    ("address", "code"),
    [("notanaddress", "bad-address"), (encode_address(PAYEE.pubkey_hash, DEVNET), "wrong-network")],
)
def test_address_bad_input(client, address, code):
    for path in (f"/api/addresses/{address}", f"/api/addresses/{address}/history"):
        response = client.get(path)
        assert response.status_code == 400 and error_code(response) == code


def test_address_history_newest_first_with_mempool(client, world):
    body = client.get(f"/api/addresses/{PAYEE_ADDRESS}/history").get_json()
    assert body["address"] == PAYEE_ADDRESS
    assert body["transactions"] == [
        {
            "txid": hexid(world.t_pool.txid),
            "height": None,
            "block": None,
            "confirmations": 0,
            "time": None,
            "received": 7 * COIN - 500,
            "sent": 10 * COIN,
        },
        {
            "txid": hexid(world.t_conf.txid),
            "height": 13,
            "block": world.blocks[-1].hash_hex,
            "confirmations": 1,
            "time": world.blocks[-1].header.time,
            "received": 10 * COIN,
            "sent": 0,
        },
    ]


def test_merkle_proof_verifies_against_the_header(client, world):
    body = client.get(f"/api/proofs/{hexid(world.t_conf.txid)}").get_json()
    assert body["block"] == world.blocks[-1].hash_hex and body["index"] == 1 and body["tx_count"] == 2
    proof = MerkleProof(
        hex_to_hash(body["txid"]), body["index"], body["tx_count"], tuple(hex_to_hash(h) for h in body["branch"])
    )
    assert proof.verify(world.blocks[-1].header.merkle_root)
    response = client.get(f"/api/proofs/{hexid(world.t_pool.txid)}")
    assert response.status_code == 404 and error_code(response) == "not-found"
    assert error_code(client.get("/api/proofs/nothex")) == "bad-hash"


# ---------------------------------------------------------------- admin


def test_token_file_is_private(world):
    path = world.node.config.datadir / "auth.token"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text().strip() == world.node.token


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/peers"),
        ("delete", "/api/peers/1"),
        ("post", "/api/mining/generate"),
        ("post", "/api/mining/start"),
        ("post", "/api/mining/stop"),
        ("get", "/api/admin/utxo-check"),
    ],
)
@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic abc", "Bearer "])
def test_admin_endpoints_need_the_token(client, method, path, header):
    headers = {"Authorization": header} if header else {}
    response = getattr(client, method)(path, json={"blocks": 1}, headers=headers)
    assert response.status_code == 401 and error_code(response) == "unauthorized"


def test_peers_connect_disconnect_and_ban(client, world):
    assert client.get("/api/peers").get_json()["peers"] == []
    for body, code in [
        ({"url": "ftp://x"}, "bad-request"),
        ({}, "bad-request"),
        ({"url": world.node.config.url}, "self-connection"),
    ]:
        response = client.post("/api/peers", json=body, headers=world.auth)
        assert response.status_code == 400 and error_code(response) == code
    nowhere = f"http://127.0.0.1:{free_port()}"
    peer = client.post("/api/peers", json={"url": nowhere}, headers=world.auth).get_json()["peer"]
    assert peer["url"] == nowhere and peer["state"] == "connecting"
    assert [p["url"] for p in client.get("/api/peers").get_json()["peers"]] == [nowhere]
    response = client.delete(f"/api/peers/{peer['id']}?ban=maybe", headers=world.auth)
    assert response.status_code == 400
    response = client.delete("/api/peers/nine", headers=world.auth)
    assert response.status_code == 400 and error_code(response) == "bad-request"
    response = client.delete("/api/peers/999", headers=world.auth)
    assert response.status_code == 404 and error_code(response) == "not-found"
    body = client.delete(f"/api/peers/{peer['id']}?ban=true", headers=world.auth).get_json()
    assert body == {"removed": peer["id"], "url": nowhere, "banned": True}
    listing = client.get("/api/peers").get_json()
    assert listing["peers"] == [] and [b["url"] for b in listing["banned"]] == [nowhere]
    response = client.post("/api/peers", json={"url": nowhere}, headers=world.auth)
    assert response.status_code == 403 and error_code(response) == "banned"


def test_utxo_check(client, world):
    body = client.get("/api/admin/utxo-check", headers=world.auth).get_json()
    assert body["ok"] is True and body["expected"] == body["stored"] == 13 - 1 + 2  # t_conf spent a coinbase, made 2


def test_generate_and_miner_switch(tmp_path):
    node = Node(NodeConfig(network="regtest", datadir=tmp_path, port=free_port(), synchronous="OFF"))
    try:
        client = create_app(node).test_client()
        auth = {"Authorization": f"Bearer {node.token}"}
        address = encode_address(PAYEE.pubkey_hash, REGTEST)
        for body, code in [
            ({"blocks": 0, "address": address}, "bad-request"),
            ({"blocks": 1001, "address": address}, "bad-request"),
            ({"blocks": "2", "address": address}, "bad-request"),
            ({"blocks": True, "address": address}, "bad-request"),
            ({"blocks": 1}, "bad-request"),
            ({"blocks": 1, "address": "nope"}, "bad-address"),
            ({"blocks": 1, "address": encode_address(PAYEE.pubkey_hash, DEVNET)}, "wrong-network"),
        ]:
            response = client.post("/api/mining/generate", json=body, headers=auth)
            assert response.status_code == 400 and error_code(response) == code, body
        hashes = client.post("/api/mining/generate", json={"blocks": 3, "address": address}, headers=auth).get_json()
        assert hashes["blocks"] == [hash_to_hex(node.hash_at(h)) for h in (1, 2, 3)]
        assert client.get(f"/api/addresses/{address}").get_json()["immature"] == 150 * COIN
        assert client.post("/api/mining/start", json={}, headers=auth).status_code == 400
        assert client.post("/api/mining/start", json={"address": address}, headers=auth).get_json() == {"mining": True}
        assert client.get("/api/status").get_json()["mining"] is True
        assert client.post("/api/mining/stop", headers=auth).get_json() == {"mining": False}
        assert client.get("/api/status").get_json()["mining"] is False
    finally:
        node.stop()


# ---------------------------------------------------------------- routing errors


def test_unknown_route_and_method_are_json(client):
    response = client.get("/api/nothing")
    assert response.status_code == 404 and error_code(response) == "not-found"
    response = client.put("/api/status")
    assert response.status_code == 405 and error_code(response) == "method-not-allowed"


def test_openapi_lists_exactly_the_served_routes(client, world):
    document = client.get("/api/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    served = {}
    for rule in world.app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            path = (
                rule.rule.replace("<", "{")
                .replace(">", "}")
                .replace("{block_hash}", "{hash}")
                .replace("{peer_id}", "{id}")
            )
            served.setdefault(path, set()).update(m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})
    served.pop("/api/openapi.json")
    documented = {path: set(ops) for path, ops in document["paths"].items()}
    assert documented == served


# ---------------------------------------------------------------- /p2p


def hello(**changes):
    base = {
        "network": "regtest",
        "magic": REGTEST.magic.hex(),
        "genesis": hash_to_hex(REGTEST.genesis_hash),
        "version": "test",
        "protocol": PROTOCOL_VERSION,
        "url": f"http://127.0.0.1:{free_port()}",
        "nonce": 1,
        "height": 0,
        "tip": hash_to_hex(REGTEST.genesis_hash),
        "chainwork": "2",
    }
    return {**base, **changes}


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"network": "devnet"}, 403, "wrong-network"),
        ({"magic": "00000000"}, 403, "wrong-network"),
        ({"genesis": "00" * 32}, 403, "wrong-genesis"),
        ({"protocol": 99}, 403, "bad-version"),
        ({"height": "zero"}, 400, "bad-request"),
        ({"chainwork": "xyz"}, 400, "bad-request"),
        ({"url": "not a url"}, 400, "bad-request"),
    ],
)
def test_handshake_refusals(client, changes, status, code):
    response = client.post("/p2p/handshake", json=hello(**changes))
    assert response.status_code == status and error_code(response) == code


def test_handshake_then_p2p_fetches(client, world):
    own = client.post("/p2p/handshake", json=hello(nonce=world.node.nonce))
    assert response_code(own) == (403, "self-connection")
    caller = hello()
    answer = client.post("/p2p/handshake", json=caller).get_json()
    assert answer["network"] == "regtest" and answer["height"] == world.node.chain.height
    assert answer["genesis"] == hash_to_hex(REGTEST.genesis_hash) and answer["url"] == world.node.config.url
    peer_header = {"X-Cairn-Peer": caller["url"]}
    assert client.get("/p2p/addresses", headers=peer_header).get_json() == {"peers": [caller["url"]]}
    raw = client.get(f"/p2p/blocks/{world.blocks[2].hash_hex}", headers=peer_header)
    assert raw.mimetype == "application/octet-stream" and Block.parse(raw.data) == world.blocks[2]
    raw = client.get(f"/p2p/transactions/{hexid(world.t_pool.txid)}", headers=peer_header)
    assert Transaction.parse(raw.data) == world.t_pool
    missing = client.get(f"/p2p/transactions/{hexid(world.t_conf.txid)}", headers=peer_header)
    assert response_code(missing) == (404, "not-found")
    headers = client.get(f"/p2p/headers?locator={world.blocks[11].hash_hex}", headers=peer_header).get_json()
    assert headers == {"headers": [world.blocks[12].header.serialized.hex()]}
    inv = client.post("/p2p/inv", json={"blocks": [world.blocks[1].hash_hex], "transactions": []}, headers=peer_header)
    assert inv.get_json() == {"ok": True}
    assert response_code(client.post("/p2p/inv", json={"blocks": ["xx"]}, headers=peer_header)) == (400, "bad-request")
    assert response_code(client.post("/p2p/inv", json={"blocks": "x"}, headers=peer_header)) == (400, "bad-request")
    assert response_code(client.post("/p2p/inv", json={"blocks": []})) == (400, "bad-request")
    stranger = {"X-Cairn-Peer": f"http://127.0.0.1:{free_port()}"}
    assert response_code(client.post("/p2p/inv", json={}, headers=stranger)) == (403, "handshake-required")


def response_code(response) -> tuple[int, str]:
    return response.status_code, error_code(response)
