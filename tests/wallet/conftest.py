"""Fixtures of the wallet tests: the CLI run in-process with Click's CliRunner, and real regtest nodes.

Every wallet here is made with the documented test knob ``CAIRN_WALLET_SCRYPT_N=1024``
(the file records the cost used); the default cost is tested to be strong.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from chain.block import BlockHeader
from chain.pow import decode_compact
from devnet.process import NodeProcess, connect
from wallet.cli import cli
from wallet.keystore import SCRYPT_N_ENV

PASSWORD = "test password"
TEST_ENV = {SCRYPT_N_ENV: "1024", "CAIRN_WALLET_PASSWORD": None, "CAIRN_WALLET": None, "CAIRN_NODE": None}


def run(
    *args: str, input: str | None = None, password: str | None = PASSWORD, env: dict[str, Any] | None = None
) -> Result:
    """``cairn-wallet ARGS`` in-process; the password comes from the environment unless ``password`` is None."""
    environment = {**TEST_ENV, **(env or {})}
    if password is not None:
        environment["CAIRN_WALLET_PASSWORD"] = password
    result = CliRunner().invoke(cli, list(args), input=input, env=environment, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"cairn-wallet {' '.join(args)} raised instead of failing cleanly") from result.exception
    assert "Traceback" not in result.output
    return result


def ok(*args: str, **kwargs: Any) -> Result:
    result = run(*args, **kwargs)
    assert result.exit_code == 0, f"cairn-wallet {' '.join(args)} exited {result.exit_code}:\n{result.output}"
    return result


def ok_json(*args: str, **kwargs: Any) -> Any:
    return json.loads(ok(*args, "--json", **kwargs).stdout)


def fails(*args: str, exit_code: int = 1, **kwargs: Any) -> Result:
    result = run(*args, **kwargs)
    assert result.exit_code == exit_code, f"cairn-wallet {' '.join(args)} exited {result.exit_code}:\n{result.output}"
    return result


def fails_json(*args: str, **kwargs: Any) -> dict[str, Any]:
    """The ``{"error": {"code", "message"}}`` printed by a failing command run with --json."""
    result = fails(*args, "--json", **kwargs)
    return json.loads(result.stdout)["error"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def node_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    """Two connected regtest nodes (real processes on loopback), stopped after the module."""
    base = tmp_path_factory.mktemp("nodes")
    first = NodeProcess(base / "node0", name="node0")
    second = NodeProcess(base / "node1", name="node1")
    try:
        first.start()
        second.start()
        first.wait_ready()
        second.wait_ready()
        connect(second, first)
        yield first, second
    except BaseException:
        for node in (first, second):
            print(f"\n===== {node.name} ({node.url}) log tail =====\n{node.log_tail(60)}")
        raise
    finally:
        first.stop()
        second.stop()


def wallet_address(path: Path) -> str:
    return str(ok_json("--network", "regtest", "--wallet", str(path), "addresses")["addresses"][0]["address"])


def high_hash(raw: bytes) -> bytes:
    """The same header with a nonce whose hash misses the target."""
    header = BlockHeader.parse(raw)
    target, _, _ = decode_compact(header.bits)
    nonce = header.nonce
    while True:
        nonce = (nonce + 1) & 0xFFFFFFFF
        candidate = replace(header, nonce=nonce)
        if int.from_bytes(candidate.hash, "little") > target:
            return candidate.serialize()
