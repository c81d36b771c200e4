"""``/api/admin/faults`` in-process (Flask test client on a real ``Node`` with a real SQLite chain), and node options.

What a byzantine node makes is checked against the consensus rules themselves: its block
is refused ``bad-cb-amount`` by a fresh ``ChainState``. The multi-process behaviour of each
fault is in ``test_faults.py``.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from chain.block import BlockHeader
from chain.chainstate import ChainState
from chain.errors import ValidationError
from chain.params import DEVNET
from devnet.process import free_port
from node.app import create_app
from node.config import NodeConfig
from node.service import Node
from tests.conftest import REPO


@pytest.fixture
def node(tmp_path):
    node = Node(NodeConfig(network="devnet", datadir=tmp_path / "data", port=free_port(), synchronous="OFF"))
    yield node
    node.stop()


def auth(node: Node) -> dict[str, str]:
    return {"Authorization": f"Bearer {node.token}"}


def test_faults_need_the_token_and_start_cleared(node: Node) -> None:
    client = create_app(node).test_client()
    for method in ("get", "post", "delete"):
        response = getattr(client, method)("/api/admin/faults", json={})
        assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"
    state = client.get("/api/admin/faults", headers=auth(node)).get_json()
    assert state == {
        "blocked_peers": [],
        "delay_ms": 0,
        "clock_skew": 0,
        "byzantine": False,
        "counters": {
            "blocked_in": 0,
            "blocked_out": 0,
            "delayed_in": 0,
            "delayed_out": 0,
            "delayed_ms": 0,
            "bad_blocks": 0,
        },
    }


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"partition": True}, "unknown-fault"),
        ({"delay_ms": -1}, "bad-request"),
        ({"delay_ms": 10_001}, "bad-request"),
        ({"delay_ms": True}, "bad-request"),
        ({"clock_skew": 1.5}, "bad-request"),
        ({"byzantine": "yes"}, "bad-request"),
        ({"blocked_peers": "http://127.0.0.1:1"}, "bad-request"),
        ({"blocked_peers": ["ftp://x"]}, "bad-request"),
    ],
)
def test_malformed_faults_are_refused(node: Node, body: dict[str, object], code: str) -> None:
    client = create_app(node).test_client()
    response = client.post("/api/admin/faults", json=body, headers=auth(node))
    assert response.status_code == 400 and response.get_json()["error"]["code"] == code
    assert client.get("/api/admin/faults", headers=auth(node)).get_json()["delay_ms"] == 0


def test_set_merge_and_reset(node: Node) -> None:
    client = create_app(node).test_client()
    state = client.post(
        "/api/admin/faults", json={"blocked_peers": ["http://127.0.0.1:9/"], "delay_ms": 5}, headers=auth(node)
    ).get_json()
    assert state["blocked_peers"] == ["http://127.0.0.1:9"] and state["delay_ms"] == 5
    state = client.post("/api/admin/faults", json={"clock_skew": -90}, headers=auth(node)).get_json()
    assert (state["blocked_peers"], state["delay_ms"], state["clock_skew"]) == (["http://127.0.0.1:9"], 5, -90)
    status = client.get("/api/status").get_json()
    assert status["time"] < time.time() - 60  # 90 s behind, with 30 s to spare
    # a partitioned peer's p2p request is answered 503 (an unreachable node to it), and counted
    response = client.get("/p2p/headers", headers={"X-Cairn-Peer": "http://127.0.0.1:9"})
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "partitioned"
    assert client.get("/p2p/headers").status_code == 200  # anyone else is served, 5 ms late
    state = client.delete("/api/admin/faults", headers=auth(node)).get_json()
    assert (state["blocked_peers"], state["delay_ms"], state["clock_skew"], state["byzantine"]) == ([], 0, 0, False)
    assert state["counters"]["blocked_in"] == 1 and state["counters"]["delayed_in"] == 1


def test_byzantine_blocks_break_the_coinbase_rule_and_are_served_over_p2p(node: Node, tmp_path) -> None:
    bad = node.faults.make_bad_block()
    honest = ChainState(DEVNET, tmp_path / "honest.sqlite", synchronous="OFF")
    try:
        with pytest.raises(ValidationError) as exc:
            honest.accept_block(bad)
        assert exc.value.reason == "bad-cb-amount"
        assert honest.height == 0
    finally:
        honest.close()
    client = create_app(node).test_client()
    node.faults.update({"byzantine": True})
    try:
        made = None
        deadline = time.monotonic() + 60
        while made is None and time.monotonic() < deadline:
            response = client.get("/p2p/headers", query_string={"locator": DEVNET.genesis_header.hash_hex})
            headers = [BlockHeader.parse(bytes.fromhex(h)) for h in response.get_json()["headers"]]
            made = headers[-1] if headers else None
            time.sleep(0.05)
        assert made is not None and made.prev_hash == DEVNET.genesis_hash
        served = client.get(f"/p2p/blocks/{made.hash_hex}")
        assert served.status_code == 200 and served.data[:80] == made.serialized
        assert node.chain.height == 0, "the byzantine node never takes its own invalid blocks"
    finally:
        node.faults.update({"byzantine": False})
    assert client.get(f"/api/blocks/{made.hash_hex}").status_code == 404


def test_fork_choice_by_length_is_refused_outside_devnet(tmp_path) -> None:
    command = [sys.executable, "-m", "node.cli", "run", "--network", "regtest", "--datadir", str(tmp_path / "d")]
    done = subprocess.run(
        [*command, "--port", str(free_port()), "--fork-choice", "length"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0 and "--fork-choice length is a devnet-only teaching switch" in done.stderr
    node = Node(NodeConfig(network="devnet", datadir=tmp_path / "dev", port=free_port(), fork_choice="length"))
    try:
        assert node.chain.fork_choice == "length"
    finally:
        node.stop()
