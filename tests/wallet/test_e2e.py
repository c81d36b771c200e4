"""The wallet against real regtest node processes on loopback: pay, check balances on two nodes, verify, prove.

The module's fixture makes two wallets, mines 11 blocks to the first, and sends 12.5
coins to the second with ``--wait`` while a helper thread mines the next block once
the payment reaches the mempool. Tests then read that state; the last test adds an
unconfirmed payment and a block, so it stays last.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chain.hashes import hash_to_hex
from chain.params import REGTEST
from chain.transaction import COIN
from devnet.process import NodeProcess, burn_address, sync_blocks, sync_mempools, wait_until
from tests.wallet.conftest import fails, fails_json, high_hash, ok, ok_json, run, wallet_address
from tests.wallet.proxy import Lies, lying_peer

pytestmark = pytest.mark.slow

AMOUNT = 1_250_000_000  # 12.5 coins
SUBSIDY = 50 * COIN


def rw(path: Path, node: NodeProcess, *args: str) -> list[str]:
    return ["--network", "regtest", "--wallet", str(path), "--node", node.url, *args]


def mine_when_in_mempool(node: NodeProcess, errors: list[BaseException]) -> Callable[[], None]:
    def miner() -> None:
        try:
            wait_until(lambda: node.mempool(), 60, "the payment in the mempool")
            node.generate(1)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    return miner


@dataclass(frozen=True)
class Payment:
    node0: NodeProcess
    node1: NodeProcess
    a: Path
    b: Path
    address_a: str
    address_b: str
    sent: dict[str, Any]
    base: Path


@pytest.fixture(scope="module")
def payment(node_pair: tuple[NodeProcess, NodeProcess], tmp_path_factory: pytest.TempPathFactory) -> Payment:
    node0, node1 = node_pair
    base = tmp_path_factory.mktemp("wallets")
    a, b = base / "a.wallet", base / "b.wallet"
    ok(*rw(a, node0, "create"))
    ok(*rw(b, node1, "create"))
    address_a, address_b = wallet_address(a), wallet_address(b)
    node0.generate(11, address_a)
    sync_blocks([node0, node1])
    before = ok_json(*rw(a, node0, "balance"))
    # at height 11 a coinbase of height h may be spent in block 12 when 12 - h >= 10: heights 1 and 2
    assert (before["confirmed"], before["immature"], before["height"]) == (2 * SUBSIDY, 9 * SUBSIDY, 11)
    errors: list[BaseException] = []
    thread = threading.Thread(target=mine_when_in_mempool(node0, errors))
    thread.start()
    try:
        sent = ok_json(*rw(a, node0, "send", address_b, "12.5", "--wait", "--timeout", "60"))
    finally:
        thread.join()
    assert not errors, errors
    sync_blocks([node0, node1])
    return Payment(node0, node1, a, b, address_a, address_b, sent, base)


def test_send_waits_for_the_block_and_pays_change_to_a_new_address(payment: Payment) -> None:
    sent, node0 = payment.sent, payment.node0
    assert sent["height"] == 12 and sent["block"] == node0.tip()
    assert sent["amount"] == AMOUNT and sent["to"] == payment.address_b
    assert sent["size"] == 195 and sent["fee"] == 195  # 1 unit per byte of one input and two outputs
    assert sent["change"] == SUBSIDY - AMOUNT - sent["fee"]
    addresses = ok_json(*rw(payment.a, node0, "addresses"))["addresses"]
    assert [(x["index"], x["change"]) for x in addresses] == [(0, False), (1, True)]
    assert sent["change_address"] == addresses[1]["address"]
    tx = node0.api("GET", f"/api/transactions/{sent['txid']}")
    assert tx["confirmations"] == 1 and tx["block"] == sent["block"] and tx["fee"] == sent["fee"]
    assert sorted((o["address"], o["amount"]) for o in tx["outputs"]) == sorted(
        [(payment.address_b, AMOUNT), (sent["change_address"], sent["change"])]
    )


@pytest.mark.parametrize("which", [0, 1])
def test_balances_agree_on_two_nodes(payment: Payment, which: int) -> None:
    node = (payment.node0, payment.node1)[which]
    a = ok_json(*rw(payment.a, node, "balance"))
    b = ok_json(*rw(payment.b, node, "balance"))
    # height 12: coinbases of heights 1-3 are mature, 4-11 are not; one mature coin paid 12.5 + fee
    assert a["height"] == b["height"] == 12
    assert (a["confirmed"], a["immature"], a["unconfirmed"]) == (
        3 * SUBSIDY - AMOUNT - payment.sent["fee"],
        8 * SUBSIDY,
        0,
    )
    assert (b["confirmed"], b["immature"], b["unconfirmed"]) == (AMOUNT, 0, 0)
    text = ok(*rw(payment.b, node, "balance")).output
    assert text.splitlines()[0].split() == ["confirmed:", "12.50000000"]


def test_history_shows_amounts_in_and_out(payment: Payment) -> None:
    txid = payment.sent["txid"]
    b = ok_json(*rw(payment.b, payment.node1, "history"))["transactions"]
    assert [(t["txid"], t["received"], t["sent"], t["confirmations"], t["height"]) for t in b] == [
        (txid, AMOUNT, 0, 1, 12)
    ]
    assert b[0]["time"] == payment.node1.api("GET", f"/api/blocks/{payment.sent['block']}")["time"]
    a = ok_json(*rw(payment.a, payment.node1, "history"))["transactions"]
    assert len(a) == 12 and a[0]["txid"] == txid  # newest first: the payment, then 11 coinbases
    assert (a[0]["sent"], a[0]["received"], a[0]["net"]) == (SUBSIDY, payment.sent["change"], -AMOUNT - 195)
    assert all(t["received"] == SUBSIDY and t["sent"] == 0 for t in a[1:])
    assert [t["height"] for t in a] == list(range(12, 0, -1))
    text = ok(*rw(payment.a, payment.node1, "history", "--limit", "2")).output
    assert txid in text and "50.00000000" in text and len(text.strip().splitlines()) == 3


def test_restore_scans_the_node_for_used_addresses(payment: Payment) -> None:
    for original in (payment.a, payment.b):
        seed = ok_json(*rw(original, payment.node1, "backup"))["seed"]
        restored = payment.base / f"restored-{original.name}"
        data = ok_json(*rw(restored, payment.node1, "restore", "--gap", "5"), input=f"{seed}\n", password="other")
        expected = [x["address"] for x in ok_json(*rw(original, payment.node1, "addresses"))["addresses"]]
        assert data["keys"] == len(expected)  # a: receive + change, b: one
        assert [x["address"] for x in ok_json(*rw(restored, payment.node1, "addresses"))["addresses"]] == expected
        balance = ok_json(*rw(restored, payment.node1, "balance"))
        assert balance == ok_json(*rw(original, payment.node1, "balance"))


def test_send_with_insufficient_funds_is_refused(payment: Payment) -> None:
    before = payment.b.read_bytes()
    error = fails_json(*rw(payment.b, payment.node1, "send", payment.address_a, "12.5"))
    assert error["code"] == "insufficient-funds"
    assert "12.50000000 needs at least 12.50000167" in error["message"]
    assert "only 12.50000000 is spendable" in error["message"]
    assert payment.b.read_bytes() == before  # no change address was derived for a payment that was not made


# ---------------------------------------------------------------- verify against real nodes


def verify_json(*args: str, exit_code: int) -> dict[str, Any]:
    result = run("--network", "regtest", "verify", *args, "--json")
    assert result.exit_code == exit_code, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def by_source(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["source"]: s for s in data["sources"]}


def test_verify_honest_peers_with_full_block_validation(payment: Payment) -> None:
    node0, node1 = payment.node0, payment.node1
    tip = node0.tip()
    data = verify_json("--tip", tip, "--peer", node0.url, "--peer", node1.url, "--full", exit_code=0)
    assert data["valid"] is True and data["height"] == 12 and data["bad_sources"] == []
    for source in data["sources"]:
        assert source["valid"] and source["height"] == 12 and source["blocks_checked"] == 12 and source["tip"] == tip
    result = ok("--network", "regtest", "verify", "--tip", tip, "--peer", node1.url)
    assert f"ok  {node1.url}: valid: reaches the trusted tip at height 12" in result.output


def test_verify_names_the_peer_serving_a_tampered_header(payment: Payment) -> None:
    node0 = payment.node0
    tip = node0.tip()
    bad = node0.api("GET", "/api/heights/5")["hash"]
    with lying_peer(node0.url, Lies(header=bad)) as liar:
        data = verify_json("--tip", tip, "--peer", liar, "--peer", node0.url, exit_code=0)
        sources = by_source(data)
        assert data["bad_sources"] == [liar]
        assert (sources[liar]["reason"], sources[liar]["bad_height"], sources[liar]["height"]) == ("bad-prevblk", 5, 4)
        assert sources[node0.url]["valid"] is True
        text = ok("--network", "regtest", "verify", "--tip", tip, "--peer", liar, "--peer", node0.url).output
        assert f"BAD {liar}: INVALID at height 5: bad-prevblk" in text and "VALID" in text
        alone = fails("--network", "regtest", "verify", "--tip", tip, "--peer", liar)
        assert f"BAD {liar}: INVALID at height 5" in alone.output
        assert "no source served a valid chain" in alone.output


def test_verify_full_catches_a_tampered_block_behind_valid_headers(payment: Payment) -> None:
    node0 = payment.node0
    tip = node0.tip()
    bad = node0.api("GET", "/api/heights/7")["hash"]
    with lying_peer(node0.url, Lies(block=bad)) as liar:
        verify_json("--tip", tip, "--peer", liar, exit_code=0)  # its headers are honest
        data = verify_json("--tip", tip, "--peer", liar, "--peer", node0.url, "--full", exit_code=0)
        sources = by_source(data)
        assert (sources[liar]["reason"], sources[liar]["bad_height"]) == ("bad-txnmrklroot", 7)
        assert sources[node0.url]["valid"] and sources[node0.url]["blocks_checked"] == 12
        assert data["bad_sources"] == [liar]
        verify_json("--tip", tip, "--peer", liar, "--full", exit_code=1)


def test_verify_fails_when_no_peer_knows_the_trusted_tip(payment: Payment) -> None:
    unknown = "22" * 32
    data = verify_json("--tip", unknown, "--peer", payment.node0.url, "--peer", payment.node1.url, exit_code=1)
    assert data["valid"] is False and len(data["bad_sources"]) == 2
    for source in data["sources"]:
        assert source["reason"] == "trusted-tip-not-found" and source["height"] == 12
    result = fails("--network", "regtest", "verify", "--tip", unknown, "--peer", payment.node0.url)
    assert "does not reach the trusted tip" in result.output


def test_verify_names_a_peer_on_a_different_chain(payment: Payment) -> None:
    other = NodeProcess(payment.base / "loner", name="loner")
    try:
        other.start().wait_ready()
        other.generate(3)
        data = verify_json("--tip", payment.node0.tip(), "--peer", other.url, "--peer", payment.node0.url, exit_code=0)
        loner = by_source(data)[other.url]
        assert (loner["reason"], loner["height"], loner["fork_height"]) == ("trusted-tip-not-found", 3, 1)
        assert data["bad_sources"] == [other.url]
    finally:
        other.stop()


def test_verify_under_the_wrong_network_fails_at_height_1(payment: Payment) -> None:
    result = run("verify", "--network", "devnet", "--tip", payment.node0.tip(), "--peer", payment.node0.url, "--json")
    assert result.exit_code == 1
    source = json.loads(result.stdout)["sources"][0]
    assert (source["reason"], source["bad_height"]) == ("bad-prevblk", 1)


def test_exported_headers_verify_and_a_tampered_copy_fails(payment: Payment) -> None:
    node0 = payment.node0
    out = payment.base / "exported.headers"
    exported = ok_json("--network", "regtest", "--node", node0.url, "headers", "export", "--out", str(out))
    tip = node0.tip()
    assert exported == {"file": str(out), "height": 12, "last": tip}
    raw = out.read_bytes()
    assert len(raw) == 13 * 80 and raw[:80] == REGTEST.genesis_header.serialize()
    data = verify_json("--tip", tip, "--headers-file", str(out), exit_code=0)
    assert data["height"] == 12
    tampered = bytearray(raw)
    tampered[6 * 80 + 4] ^= 0x01
    copy = payment.base / "tampered.headers"
    copy.write_bytes(bytes(tampered))
    data = verify_json("--tip", tip, "--headers-file", str(copy), exit_code=1)
    assert (data["sources"][0]["reason"], data["sources"][0]["bad_height"]) == ("bad-prevblk", 6)
    error = fails_json("--network", "devnet", "--node", node0.url, "headers", "export", "--out", str(copy))
    assert error["code"] == "wrong-network"


# ---------------------------------------------------------------- prove


def prove(payment: Payment, txid: str, tip: str, peer: str, exit_code: int) -> dict[str, Any]:
    result = run("--network", "regtest", "prove", txid, "--tip", tip, "--peer", peer, "--json")
    assert result.exit_code == exit_code, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_prove_a_confirmed_payment(payment: Payment) -> None:
    node1 = payment.node1
    tip = node1.tip()
    proof = prove(payment, payment.sent["txid"], tip, node1.url, exit_code=0)
    assert proof["valid"] is True and proof["block"] == payment.sent["block"] and proof["height"] == 12
    assert (proof["index"], proof["tx_count"]) == (1, 2)
    assert proof["confirmations"] == node1.height() - 12 + 1
    coinbase = node1.api("GET", "/api/heights/3")["hash"]
    coinbase_txid = node1.api("GET", f"/api/blocks/{coinbase}")["transactions"][0]["txid"]
    assert prove(payment, coinbase_txid, tip, node1.url, exit_code=0)["height"] == 3
    text = ok("--network", "regtest", "prove", payment.sent["txid"], "--tip", tip, "--peer", node1.url).output
    assert f"PROVEN: transaction {payment.sent['txid']}" in text and "at height 12" in text


def test_prove_fails_for_a_forged_branch(payment: Payment) -> None:
    tip = payment.node0.tip()
    with lying_peer(payment.node0.url, Lies(proof=True)) as liar:
        error = prove(payment, payment.sent["txid"], tip, liar, exit_code=1)["error"]
        assert error["code"] == "bad-merkle-proof" and "forged" in error["message"]
        result = fails("--network", "regtest", "prove", payment.sent["txid"], "--tip", tip, "--peer", liar)
        assert "does not lead to the merkle root" in result.output


def test_prove_fails_when_the_headers_are_tampered(payment: Payment) -> None:
    node0 = payment.node0
    bad = node0.api("GET", "/api/heights/9")["hash"]
    with lying_peer(node0.url, Lies(header=bad)) as liar:
        error = prove(payment, payment.sent["txid"], node0.tip(), liar, exit_code=1)["error"]
    assert error["code"] == "bad-prevblk" and "height 9" in error["message"]


def test_prove_fails_outside_the_trusted_chain(payment: Payment) -> None:
    node0 = payment.node0
    early_tip = node0.api("GET", "/api/heights/8")["hash"]
    error = prove(payment, payment.sent["txid"], early_tip, node0.url, exit_code=1)["error"]
    assert error["code"] == "block-not-in-chain"
    error = prove(payment, payment.sent["txid"], "33" * 32, node0.url, exit_code=1)["error"]
    assert error["code"] == "trusted-tip-not-found"
    error = prove(payment, hash_to_hex(bytes(range(32))), node0.tip(), node0.url, exit_code=1)["error"]
    assert error["code"] == "not-found" and "the node refused" in error["message"]


# ---------------------------------------------------------------- last: changes the chain


def test_unconfirmed_payment_shows_until_mined(payment: Payment) -> None:
    node0, node1 = payment.node0, payment.node1
    error = fails_json(*rw(payment.b, node1, "send", payment.address_a, "1", "--wait", "--timeout", "1"))
    assert error["code"] == "not-confirmed" and "was sent but not confirmed within 1s" in error["message"]
    (txid,) = sync_mempools([node0, node1])
    fee = node1.api("GET", f"/api/transactions/{txid}")["fee"]
    assert fee == 195
    for node in (node0, node1):
        b = ok_json(*rw(payment.b, node, "balance"))
        assert (b["confirmed"], b["unconfirmed"]) == (AMOUNT, -(COIN + fee))  # 12.5 out, 11.5 - fee back as change
        history = ok_json(*rw(payment.b, node, "history"))["transactions"]
        assert (history[0]["txid"], history[0]["confirmations"], history[0]["height"]) == (txid, 0, None)
        a = ok_json(*rw(payment.a, node, "balance"))
        assert a["unconfirmed"] == COIN
    node0.generate(1, burn_address("regtest"))
    sync_blocks([node0, node1])
    b = ok_json(*rw(payment.b, node1, "balance"))
    assert (b["confirmed"], b["unconfirmed"]) == (AMOUNT - COIN - fee, 0)


def test_headers_exported_from_a_running_devnet_node(tmp_path: Path) -> None:
    """Devnet (the default network, real proof of work at its easiest target): export, verify, tamper."""
    node = NodeProcess(tmp_path / "devnet", name="devnet", network="devnet")
    try:
        node.start().wait_ready()
        node.generate(6)
        tip = node.tip()
        out = tmp_path / "devnet.headers"
        assert ok_json("--node", node.url, "headers", "export", "--out", str(out))["height"] == 6
        data = json.loads(ok("verify", "--tip", tip, "--headers-file", str(out), "--json").stdout)
        assert data["network"] == "devnet" and data["height"] == 6
        raw = out.read_bytes()
        out.write_bytes(raw[: 3 * 80] + high_hash(raw[3 * 80 : 4 * 80]) + raw[4 * 80 :])  # header 3 misses its target
        result = run("verify", "--tip", tip, "--headers-file", str(out), "--json")
        assert result.exit_code == 1
        source = json.loads(result.stdout)["sources"][0]
        assert source["bad_height"] == 3 and source["reason"] == "high-hash"
    finally:
        node.stop()
