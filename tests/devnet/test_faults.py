"""Each devnet fault, through ``python -m devnet`` on real devnet nodes (mesh topology, blocks mined by ``generate``).

- partition + mining on both sides + heal: every node ends on the most-work tip;
- byzantine: every peer bans the node for ``bad-cb-amount`` and the others keep agreeing;
- skew beyond devnet's 60 s future-time limit: the skewed node's block is refused (``time-too-new``);
- delay: the delayed node is the last to see each new block, and its own counters show the delay applied.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from chain.block import Block
from devnet.network import Devnet, DevnetError, neighbours, parse_groups, process_cmdline
from devnet.process import wait_until
from tests.devnet.conftest import DevnetCLI

pytestmark = pytest.mark.slow


def same_tip(devnet: DevnetCLI, numbers: list[int]) -> str | None:
    tips = {devnet.tip(n) for n in numbers}
    return tips.pop() if len(tips) == 1 else None


def test_partition_then_heal_converges_on_the_most_work_tip(devnet: DevnetCLI) -> None:
    out = devnet.run("up", "--nodes", "4", "--miners", "0", "--topology", "mesh").stdout
    assert "node4" in out and "height" in out
    devnet.generate(1, 2)
    base = wait_until(lambda: same_tip(devnet, [1, 2, 3, 4]), 60, "a common tip before the partition")

    devnet.run("partition", "1,2/3,4")
    left = devnet.generate(1, 3)
    right = devnet.generate(3, 2)
    wait_until(lambda: same_tip(devnet, [1, 2]) == left[-1], 60, "nodes 1 and 2 on the left branch")
    wait_until(lambda: same_tip(devnet, [3, 4]) == right[-1], 60, "nodes 3 and 4 on the right branch")
    assert not devnet.active(3, left[-1]) and not devnet.active(4, left[-1])
    assert not devnet.active(1, right[-1]) and not devnet.active(2, right[-1])
    counters = [devnet.get(n, "/api/admin/faults", admin=True)["counters"] for n in (1, 2, 3, 4)]
    assert sum(c["blocked_out"] + c["blocked_in"] for c in counters) > 0, "the partition never refused anything"

    devnet.run("heal")
    assert all(devnet.get(n, "/api/admin/faults", admin=True)["blocked_peers"] == [] for n in (1, 2, 3, 4))
    # 3 blocks beat 2 at the same difficulty (all below devnet's first retarget at height 20)
    assert wait_until(lambda: same_tip(devnet, [1, 2, 3, 4]), 90, "one tip after the heal") == left[-1]
    assert devnet.get(3, "/api/status")["height"] == 5
    assert devnet.active(4, base) and not devnet.active(4, right[-1]), "nodes 3 and 4 reorganized onto the left"


def test_byzantine_node_is_banned_and_the_others_keep_agreeing(devnet: DevnetCLI) -> None:
    devnet.run("up", "--nodes", "4", "--miners", "0", "--topology", "mesh")
    devnet.generate(1, 1)
    wait_until(lambda: same_tip(devnet, [1, 2, 3, 4]), 60, "a common tip")
    byzantine_url = devnet.node(4).url

    state = devnet.run("byzantine", "4").stdout
    assert '"byzantine": true' in state

    def banned_by(number: int) -> list[dict[str, object]]:
        return [b for b in devnet.get(number, "/api/peers")["banned"] if b["url"] == byzantine_url]

    for number in (1, 2, 3):
        bans = wait_until(lambda n=number: banned_by(n), 60, f"node{number} to ban node4")
        assert "bad-cb-amount" in str(bans[0]["reason"])
        assert byzantine_url not in {p["url"] for p in devnet.get(number, "/api/peers")["peers"]}
    assert devnet.get(4, "/api/admin/faults", admin=True)["counters"]["bad_blocks"] >= 1

    mined = devnet.generate(2, 2)
    assert wait_until(lambda: same_tip(devnet, [1, 2, 3]), 60, "nodes 1-3 to agree") == mined[-1]
    for number in (1, 2, 3):  # nobody ever took an invalid block: every active coinbase pays exactly the subsidy
        for block in devnet.get(number, "/api/blocks")["blocks"]:
            if block["height"] > 0:
                coinbase = devnet.get(number, f"/api/blocks/{block['hash']}")["transactions"][0]
                assert sum(o["amount"] for o in coinbase["outputs"]) == 50 * 10**8


def test_skewed_clock_makes_the_nodes_blocks_too_new_for_the_others(devnet: DevnetCLI) -> None:
    devnet.run("up", "--nodes", "3", "--miners", "0", "--topology", "mesh")
    devnet.generate(1, 1)
    honest = wait_until(lambda: same_tip(devnet, [1, 2, 3]), 60, "a common tip")

    devnet.run("skew", "3", "120")  # devnet's max_future_block_time is 60 s
    assert devnet.get(3, "/api/admin/faults", admin=True)["clock_skew"] == 120
    (skewed,) = devnet.generate(3, 1)
    raw = devnet.get(3, f"/api/blocks/{skewed}/raw")["hex"]
    block = Block.parse(bytes.fromhex(raw))
    assert block.header.time > time.time() + 60, "the skewed node stamped its block with its own clock"
    assert devnet.tip(3) == skewed

    logs = [devnet.node(n).log for n in (1, 2)]
    for path in logs:  # the announcement reached them and sync refused the header
        wait_until(lambda p=path: "time-too-new" in Path(p).read_text(), 60, f"time-too-new in {path}")
    assert devnet.tip(1) == honest and devnet.tip(2) == honest
    assert not devnet.active(1, skewed) and not devnet.active(2, skewed)
    answer = requests.post(f"{devnet.node(1).url}/api/blocks", json={"hex": raw}, timeout=30)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "time-too-new"
    node3_peers = {p["url"] for p in devnet.get(1, "/api/peers")["peers"]}
    assert devnet.node(3).url in node3_peers, "a block from the future is not misbehaviour: no ban"


def test_delayed_node_is_last_to_see_each_block_and_counts_the_delay(devnet: DevnetCLI) -> None:
    devnet.run("up", "--nodes", "3", "--miners", "0", "--topology", "mesh")
    devnet.run("delay", "3", "1500")
    before = devnet.get(3, "/api/admin/faults", admin=True)["counters"]
    for _ in range(2):
        (mined,) = devnet.generate(1, 1)
        first_seen: dict[int, int] = {}
        poll = 0
        while len(first_seen) < 3:
            assert poll < 600, f"block {mined} did not reach every node; seen by {first_seen}"
            for number in (1, 2, 3):
                if number not in first_seen and devnet.tip(number) == mined:
                    first_seen[number] = poll
            poll += 1
            time.sleep(0.1)
        assert first_seen[3] > first_seen[2], f"the delayed node was not last: poll rounds {first_seen}"
    after = devnet.get(3, "/api/admin/faults", admin=True)["counters"]
    delayed_in = after["delayed_in"] - before["delayed_in"]
    delayed_out = after["delayed_out"] - before["delayed_out"]
    assert delayed_in >= 2 and delayed_out >= 2  # inv in; headers and block requests out, per block
    assert after["delayed_ms"] - before["delayed_ms"] == 1500 * (delayed_in + delayed_out)
    for number in (1, 2):
        assert devnet.get(number, "/api/admin/faults", admin=True)["counters"]["delayed_in"] == 0
    devnet.run("delay", "3", "0")
    assert devnet.get(3, "/api/admin/faults", admin=True)["delay_ms"] == 0


def test_status_logs_clear_and_down(devnet: DevnetCLI) -> None:
    devnet.run("up", "--nodes", "2", "--miners", "0", "--topology", "line")
    devnet.run("skew", "2", "-30")
    devnet.run("delay", "node2", "10")
    status = devnet.run("status").stdout
    assert "clock -30s" in status and "delay 10ms" in status
    assert "node started" in devnet.run("logs", "1").stdout
    devnet.run("clear")
    assert devnet.get(2, "/api/admin/faults", admin=True)["clock_skew"] == 0
    refused = devnet.run("up", check=False)
    assert refused.returncode == 1 and "already running" in refused.stderr
    bad = devnet.run("skew", "5", "10", check=False)
    assert bad.returncode == 1 and "no node '5'" in bad.stderr
    pids = [n.pid for n in devnet.net.nodes]
    out = devnet.run("down").stdout
    assert "2 nodes stopped" in out
    for pid in pids:  # gone (or a zombie waiting for init to reap it: never running again)
        assert process_cmdline(pid) is None
    assert all(n.pid == 0 for n in devnet.net.nodes)


def test_down_leaves_a_reused_pid_alone(devnet: DevnetCLI) -> None:
    devnet.run("up", "--nodes", "1", "--miners", "0")
    node = devnet.node(1)
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        net = devnet.net
        net.state["nodes"][0]["pid"] = stranger.pid  # as if the node died and its PID went to another program
        net._save()
        assert "0 nodes stopped" in devnet.run("down").stdout
        assert stranger.poll() is None, "down signalled a process it did not start"
    finally:
        stranger.kill()
        stranger.wait()
        os.kill(node.pid, signal.SIGTERM)
        wait_until(lambda: not Devnet(devnet.root).is_ours(node), 30, "the real node to stop")


def test_regtest_devnet_mines_paced_blocks_to_the_miners_wallet(devnet: DevnetCLI) -> None:
    devnet.run("up", "--nodes", "2", "--miners", "1", "--network", "regtest", "--mine-interval", "0.5")
    miner = devnet.node(1)
    assert miner.address is not None and miner.address[0] in "mn" and os.path.exists(miner.wallet or "")
    assert oct(os.stat(devnet.root / "wallet-password").st_mode & 0o777) == "0o600"
    wait_until(lambda: devnet.get(2, "/api/status")["height"] >= 3, 60, "node2 to follow the miner")
    history = devnet.get(1, f"/api/addresses/{miner.address}")
    assert history["immature"] + history["confirmed"] >= 3 * 50 * 10**8
    with open(f"/proc/{miner.pid}/cmdline", "rb") as handle:
        assert b"--mine-interval\x000.5" in handle.read()


def test_topologies_and_groups() -> None:
    assert neighbours(4, "line") == {1: {2}, 2: {1, 3}, 3: {2, 4}, 4: {3}}
    assert neighbours(4, "ring") == {1: {2, 4}, 2: {1, 3}, 3: {2, 4}, 4: {3, 1}}
    assert neighbours(3, "mesh") == {1: {2, 3}, 2: {1, 3}, 3: {1, 2}}
    assert parse_groups("1,2/3,node4", 4) == [[1, 2], [3, 4]]
    for text in ("1,2", "1,2/2,3", "1/5", "1,2/"):
        with pytest.raises(DevnetError):
            parse_groups(text, 4)
