"""``cairn-node``'s command line: options, user errors, defaults, and a clean exit on SIGTERM and SIGINT."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from chain.address import encode_address
from chain.params import DEVNET
from devnet.process import NodeProcess, wait_until
from node.cli import main
from node.config import DEFAULT_PORTS, NodeConfig, default_datadir


def test_help_lists_every_option():
    result = CliRunner().invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    for option in (
        "--network",
        "--datadir",
        "--host",
        "--port",
        "--peer",
        "--mine",
        "--mine-to",
        "--miner-processes",
        "--assume-valid",
        "--log-level",
    ):
        assert option in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mine"], "--mine needs --mine-to"),
        (["--mine-to", "nope"], "--mine-to:"),
        (["--network", "regtest", "--mine-to", encode_address(bytes(20), DEVNET)], "not a regtest address"),
        (["--peer", "ftp://somewhere"], "--peer:"),
        (["--assume-valid", "abc"], "--assume-valid:"),
    ],
)
def test_user_errors_exit_1_with_a_message(tmp_path, args, message):
    result = CliRunner().invoke(main, ["run", "--datadir", str(tmp_path), *args])
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output


def test_unknown_network_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["run", "--datadir", str(tmp_path), "--network", "bitcoin"])
    assert result.exit_code == 2 and "bitcoin" in result.output


def test_busy_port_is_reported(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            main, ["run", "--network", "regtest", "--datadir", str(tmp_path), "--port", str(port)]
        )
    assert result.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in result.output


def test_defaults(monkeypatch):
    monkeypatch.delenv("CAIRN_DATADIR", raising=False)
    assert default_datadir("regtest") == Path.home() / ".cairn" / "regtest"
    monkeypatch.setenv("CAIRN_DATADIR", "/srv/cairn")
    assert default_datadir("devnet") == Path("/srv/cairn")
    assert DEFAULT_PORTS == {"devnet": 8700, "regtest": 8701}
    config = NodeConfig()
    assert config.network == "devnet" and config.port == 8700 and config.url == "http://127.0.0.1:8700"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_shuts_down_cleanly(tmp_path, sig):
    node = NodeProcess(tmp_path, network="regtest")
    try:
        node.start().wait_ready()
        node.generate(2)
        assert node.process is not None
        node.process.send_signal(sig)
        assert node.process.wait(60) == 0
    finally:
        node.kill()
    log = node.log_path.read_text()
    assert "shutting down" in log and "node stopped" in log and "Traceback" not in log
    node.start().wait_ready()
    try:
        assert node.height() == 2
    finally:
        assert node.stop() == 0


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat_fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat_fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
def test_miner_worker_processes_mine_and_stop_with_the_node(tmp_path):
    node = NodeProcess(
        tmp_path,
        network="devnet",
        mine=True,
        mine_to=encode_address(bytes(20), DEVNET),
        extra_args=["--miner-processes", "2"],
    )
    try:
        node.start().wait_ready()
        assert node.process is not None
        wait_until(lambda: node.height() >= 2, 120, "two devnet blocks from the worker processes")
        workers = _children(node.process.pid)
        assert len(workers) >= 2, "the node runs its worker processes"
        assert node.stop() == 0
        wait_until(lambda: all(_gone(pid) for pid in workers), 30, "the worker processes to exit")
    finally:
        node.kill()
    assert "miner started with 2 worker processes" in node.log_path.read_text()
