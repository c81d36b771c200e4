"""Fixtures of the devnet tests: ``devnet`` runs ``python -m devnet`` against a devnet under ``tmp_path``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devnet.network import Devnet, DevnetError, NodeInfo, tail
from tests.conftest import REPO


class DevnetCLI:
    """``python -m devnet --root ROOT ...`` as a subprocess, plus direct reads of the nodes' APIs."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "devnet", "--root", str(self.root), *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if check:
            command = " ".join(args)
            assert done.returncode == 0, f"devnet {command} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        return done

    @property
    def net(self) -> Devnet:
        return Devnet(self.root)  # re-read state.json each time: the CLI writes it

    def node(self, number: int) -> NodeInfo:
        return self.net.node(number)

    def get(self, number: int, path: str, *, admin: bool = False) -> Any:
        return self.net.api(self.node(number), "GET", path, admin=admin)

    def tip(self, number: int) -> str:
        return str(self.get(number, "/api/status")["tip"])

    def active(self, number: int, block_hash: str) -> bool:
        """Is ``block_hash`` on node ``number``'s active chain?"""
        try:
            return bool(self.get(number, f"/api/blocks/{block_hash}")["in_active_chain"])
        except DevnetError as exc:
            if "HTTP 404" in str(exc):
                return False
            raise

    def generate(self, number: int, count: int = 1) -> list[str]:
        return self.run("generate", str(number), str(count)).stdout.split()


@pytest.fixture
def devnet(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DevnetCLI]:
    """A devnet CLI rooted in ``tmp_path``; every node it started is stopped at teardown (logs printed on failure)."""
    cli = DevnetCLI(tmp_path / "devnet")
    yield cli
    net = cli.net
    if net.nodes:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            for node in net.nodes:
                print(f"\n===== {node.name} ({node.url}) log tail =====\n{tail(node.log, 60)}")
        net.down()
        assert not net.running(), "devnet down left nodes running"


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)
