"""Real ``cairn-node`` processes for the lab: start, stop, crash, restart, and talk to their HTTP API.

Each ``LabNode`` is ``python -m node.cli run`` on a free loopback port with its own
datadir and log under the run's output folder. ``Cluster`` owns all of them and stops
every one it started (SIGTERM, then SIGKILL) when the ``with`` block ends, whatever
happened. Faults go through the node's admin ``/api/admin/faults`` endpoint.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]


class LabError(RuntimeError):
    """Something in the lab's network did not do what the scenario needed."""


class NodeAPIError(LabError):
    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        error = body.get("error") if isinstance(body, dict) else None
        self.status = status
        self.code = error.get("code") if isinstance(error, dict) else None
        super().__init__(f"{method} {path} -> HTTP {status}: {body!r:.300}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll until ``predicate()`` is truthy (exceptions count as not yet); LabError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:  # a node restarting, a refused connection: try again
            last = exc
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r:.300}")
        time.sleep(interval)


class LabNode:
    """One node process of the lab."""

    def __init__(self, name: str, directory: Path, network: str, extra_args: list[str]) -> None:
        self.name = name
        self.directory = directory
        self.datadir = directory / "data"
        self.log_path = directory / "node.log"
        self.network = network
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        self.session = requests.Session()
        self._log: Any = None

    def __repr__(self) -> str:
        return f"<LabNode {self.name} {self.url}>"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "node.cli", "run", "--network", self.network, "--datadir", str(self.datadir)]
        args += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "INFO", *self.extra_args]
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        env.pop("CAIRN_DATADIR", None)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (open for the life of the process)
        self.process = subprocess.Popen(args, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        log.info("started %s (pid %d)", self, self.process.pid)

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise LabError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            return bool(self.status()) and (self.datadir / "auth.token").exists()

        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready():
                    return
            except LabError:
                raise
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise LabError(f"{self.name} did not start within {timeout}s; see {self.log_path}")
            time.sleep(0.1)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, *, kill: bool = False, timeout: float = 30.0) -> None:
        """SIGTERM (or SIGKILL with ``kill``, a crash) and wait for the process to end."""
        if self.process is not None and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        self.session.close()
        self.session = requests.Session()

    # ------------------------------------------------------------ HTTP

    def api(self, method: str, path: str, json: Any = None, *, admin: bool = False, timeout: float = 60.0) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if admin else None
        response = self.session.request(method, self.url + path, json=json, headers=headers, timeout=timeout)
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if not 200 <= response.status_code < 300:
            raise NodeAPIError(method, path, response.status_code, body)
        return body

    @property
    def token(self) -> str:
        return (self.datadir / "auth.token").read_text().strip()

    def status(self) -> dict[str, Any]:
        return self.api("GET", "/api/status", timeout=10.0)  # type: ignore[no-any-return]

    def generate(self, address: str, blocks: int = 1) -> list[str]:
        return self.api("POST", "/api/mining/generate", {"blocks": blocks, "address": address}, admin=True)["blocks"]  # type: ignore[no-any-return]

    def connect(self, other: LabNode) -> None:
        self.api("POST", "/api/peers", {"url": other.url}, admin=True)

    def connected_urls(self) -> set[str]:
        return {p["url"] for p in self.api("GET", "/api/peers")["peers"] if p["state"] == "connected"}

    def banned_urls(self) -> set[str]:
        return {b["url"] for b in self.api("GET", "/api/peers")["banned"]}

    def faults(self, **faults: Any) -> dict[str, Any]:
        return self.api("POST", "/api/admin/faults", faults, admin=True)  # type: ignore[no-any-return]

    def clear_faults(self) -> None:
        self.api("DELETE", "/api/admin/faults", admin=True)

    def block(self, block_hash: str) -> dict[str, Any]:
        return self.api("GET", f"/api/blocks/{block_hash}", timeout=10.0)  # type: ignore[no-any-return]

    def raw_block(self, block_hash: str) -> str:
        return str(self.api("GET", f"/api/blocks/{block_hash}/raw")["hex"])

    def submit_block(self, hex_block: str) -> dict[str, Any]:
        return self.api("POST", "/api/blocks", {"hex": hex_block})  # type: ignore[no-any-return]

    def send_transaction(self, hex_tx: str) -> str:
        return str(self.api("POST", "/api/transactions", {"hex": hex_tx})["txid"])

    def transaction(self, txid: str) -> dict[str, Any] | None:
        try:
            return self.api("GET", f"/api/transactions/{txid}")  # type: ignore[no-any-return]
        except NodeAPIError as exc:
            if exc.status == 404:
                return None
            raise

    def chain_from_top(self, page_size: int = 100) -> Iterator[tuple[int, str]]:
        """``(height, hash)`` of the active chain from the tip down to genesis, read a page at a time as needed."""
        start = None
        while True:
            query = f"?limit={page_size}" + (f"&start={start}" if start is not None else "")
            page = self.api("GET", "/api/blocks" + query)["blocks"]
            for block in page:
                yield block["height"], block["hash"]
            lowest = page[-1]["height"] if page else 0
            if lowest == 0:
                return
            start = lowest - 1

    def active_chain(self) -> list[str]:
        """Every block hash of the active chain, genesis first."""
        hashes = [block_hash for _, block_hash in self.chain_from_top()]
        hashes.reverse()
        return hashes

    def chain_above(self, height: int) -> list[str]:
        """The active chain's block hashes above ``height``, oldest first (only those pages are read)."""
        hashes = []
        for block_height, block_hash in self.chain_from_top(page_size=20):
            if block_height <= height:
                break
            hashes.append(block_hash)
        hashes.reverse()
        return hashes

    def missing_from(self, target: LabNode) -> list[str]:
        """The blocks of this node's active chain that ``target``'s active chain lacks, oldest first.

        Both chains are read from their tips down only until they meet (the same hash at the
        same height: everything below is shared), so this costs a page or two, not the chain.
        """
        theirs: dict[int, str] = {}
        their_blocks = target.chain_from_top(page_size=20)
        their_lowest: int | None = None
        missing: list[str] = []
        for height, block_hash in self.chain_from_top(page_size=20):
            while their_lowest is None or their_lowest > height:
                found = next(their_blocks, None)
                if found is None:
                    break
                their_lowest = found[0]
                theirs[found[0]] = found[1]
            if theirs.get(height) == block_hash:
                break
            missing.append(block_hash)
        missing.reverse()
        return missing

    def metrics(self) -> dict[str, Any]:
        """``/metrics`` decoded: ``{name: value}`` for plain samples, ``{name: {label: value}}`` for labelled ones."""
        response = self.session.get(self.url + "/metrics", timeout=10.0)
        response.raise_for_status()
        result: dict[str, Any] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.labels:
                    key = ",".join(f"{v}" for k, v in sorted(sample.labels.items()))
                    result.setdefault(sample.name, {})[key] = sample.value
                else:
                    result[sample.name] = sample.value
        return result


class Cluster:
    """The nodes of one run; stops every process it started on exit."""

    def __init__(self, directory: Path, network: str) -> None:
        if directory.exists():  # the nodes of an earlier run into the same folder: start afresh
            shutil.rmtree(directory)
        self.directory = directory
        self.network = network
        self.nodes: dict[str, LabNode] = {}

    def add(self, name: str, extra_args: list[str]) -> LabNode:
        node = LabNode(name, self.directory / name, self.network, extra_args)
        self.nodes[name] = node
        return node

    def __getitem__(self, name: str) -> LabNode:
        return self.nodes[name]

    def __iter__(self) -> Iterator[LabNode]:
        return iter(self.nodes.values())

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start_all(self) -> None:
        for node in self:
            node.start()
        for node in self:
            node.wait_ready()

    def stop(self) -> None:
        for node in self:
            node.stop()

    def connect(self, a: str, b: str, timeout: float = 60.0) -> None:
        first, second = self.nodes[a], self.nodes[b]
        first.connect(second)
        wait_for(
            lambda: second.url in first.connected_urls() and first.url in second.connected_urls(),
            timeout,
            f"{a} and {b} to connect",
        )

    def same_tip(self, names: list[str], timeout: float) -> str:
        def tip() -> str | None:
            tips = {self.nodes[n].status()["tip"] for n in names}
            return tips.pop() if len(tips) == 1 else None

        return str(wait_for(tip, timeout, "the same tip on " + ", ".join(names), interval=0.2))
