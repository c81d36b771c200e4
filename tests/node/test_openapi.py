"""The node over real waitress: a few requests by hand, then schemathesis against /api/openapi.json.

schemathesis generates requests from the OpenAPI document (valid and invalid ones)
and checks that the server never fails with a 5xx, answers only documented status
codes and content types, and that every body matches the documented schema.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from waitress import create_server

from chain.address import encode_address
from chain.builder import ChainBuilder, Key
from chain.params import REGTEST
from chain.transaction import COIN
from devnet.process import free_port
from node.app import create_app
from node.config import NodeConfig
from node.openapi import openapi_document
from node.service import Node
from tests.hostile.harness import stop_server

PAYEE = Key()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A started node served by waitress on a free loopback port, with a little chain and a pooled transaction."""
    port = free_port()
    node = Node(
        NodeConfig(network="regtest", datadir=tmp_path_factory.mktemp("waitress"), port=port, synchronous="OFF")
    )
    builder = ChainBuilder(REGTEST)
    blocks = builder.add_chain(11)
    for block in blocks:
        node.submit_block(block)
    node.submit_transaction(builder.spend([builder.coinbase_spendable(blocks[0])], PAYEE.pubkey_hash, COIN, 1000))
    wsgi = create_server(create_app(node), host="127.0.0.1", port=port, threads=8)
    node.start()
    thread = threading.Thread(target=wsgi.run, daemon=True)
    thread.start()
    yield node, f"http://127.0.0.1:{port}", builder, blocks
    stop_server(wsgi, thread)
    node.stop()


def test_waitress_serves_the_api(server):
    node, url, builder, blocks = server
    status = requests.get(f"{url}/api/status", timeout=10).json()
    assert status["height"] == 11 and status["tip"] == blocks[-1].hash_hex
    tx = builder.spend([builder.coinbase_spendable(blocks[1])], PAYEE.pubkey_hash, COIN, 1000)
    answer = requests.post(f"{url}/api/transactions", json={"hex": tx.serialized.hex()}, timeout=10)
    assert answer.status_code == 200 and tx.txid in node.mempool
    too_big = b'{"hex": "' + b"00" * node.config.max_body_bytes + b'"}'
    answer = requests.post(f"{url}/api/blocks", data=too_big, headers={"Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "too-large"
    explorer = requests.get(f"{url}/", timeout=10)  # / is the block explorer (node/explorer.py)
    assert explorer.status_code == 200 and explorer.headers["Content-Type"].startswith("text/html")


def test_waitress_answers_requests_in_parallel(server):
    _, url, _, _ = server
    address = encode_address(PAYEE.pubkey_hash, REGTEST)
    paths = ["/api/status", "/api/mempool", f"/api/addresses/{address}", "/api/blocks", "/api/headers"] * 8
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda p: requests.get(url + p, timeout=30).status_code, paths))
    assert codes == [200] * len(paths)


def test_served_document_is_the_one_checked_below(server):
    _, url, _, _ = server
    assert requests.get(f"{url}/api/openapi.json", timeout=10).json() == openapi_document("regtest")


schema = schemathesis.openapi.from_dict(openapi_document("regtest"))


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_server_matches_its_openapi_document(case, server):
    _, url, _, _ = server
    # Not positive_data_acceptance: a schema cannot say "a transaction that spends an existing coin" or "an
    # address with a valid checksum", so schema-valid requests are rightly refused with a reason code (400).
    case.call_and_validate(base_url=url, excluded_checks=[schemathesis.checks.positive_data_acceptance])
