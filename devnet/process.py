"""Real ``cairn-node`` processes on loopback, and a client of their JSON API.

One module for everything that starts nodes from this checkout: the devnet tool, the
experiment lab, netlab, the soak, the benchmarks and the tests (in the spirit of Bitcoin
Core's functional test framework). Each ``NodeProcess`` is ``python -m node.cli run``
with its own datadir under its directory, a free loopback port and a log file::

    node = NodeProcess(tmp_dir, network="regtest").start().wait_ready()
    node.api("GET", "/api/status")     # decoded JSON; NodeAPIError on non-2xx, with .status, .code, .body
    node.generate(1, address)          # admin calls carry the bearer token of <datadir>/auth.token
    node.stop()                        # SIGTERM, wait, SIGKILL if it hangs; node.kill() is a crash

``NodeClient`` is the API half alone, for a node some other program started. In pytest,
use the ``node_factory`` fixture of ``tests/node/conftest.py``, which stops every node at
teardown and prints the tail of each log when a test fails.

``wait_until(predicate, timeout, describe)`` polls and, on timeout, fails naming what it
waited for and the last value seen. ``sync_blocks(nodes)`` waits for one tip everywhere,
``sync_mempools(nodes)`` for the same mempool, ``connect(a, b)`` joins two nodes.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from chain.address import encode_address
from chain.params import get_network

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TIMEOUT = 60.0


class NodeProcessError(RuntimeError):
    """A node did not do what was asked: it exited, did not start, answered an error, or a wait timed out."""


class NodeAPIError(NodeProcessError):
    """A node answered with a non-2xx status; ``code`` is the error code of its JSON body."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        error = body.get("error") if isinstance(body, dict) else None
        self.code: str | None = error.get("code") if isinstance(error, dict) else None
        self.message: str = str(error.get("message", "")) if isinstance(error, dict) else str(body)[:200]
        super().__init__(f"{method} {path} -> HTTP {status}: {body!r:.2000}")


def free_port() -> int:
    """A loopback port that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env() -> dict[str, str]:
    """The environment of a node or wallet started from here: this checkout first on the path, nothing
    inherited that would point it at the user's own datadir or wallet password."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("CAIRN_DATADIR", None)
    env.pop("CAIRN_WALLET_PASSWORD", None)
    return env


def wait_until(
    predicate: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT, describe: str = "condition", interval: float = 0.1
) -> Any:
    """Poll ``predicate`` until it returns something truthy and return that; on timeout raise
    NodeProcessError naming ``describe`` and the last value. Exceptions of the predicate count as
    "not yet" (a node still starting, a refused connection); the last one is reported."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise NodeProcessError(f"timed out after {timeout:.0f}s waiting for {describe}; last value: {last!r:.2000}")
        time.sleep(interval)


def burn_address(network: str) -> str:
    """An address nobody holds the key of (pubkey hash of 20 x 0x11), for rewards nobody spends."""
    return encode_address(bytes([0x11]) * 20, get_network(network))


class NodeClient:
    """The JSON API of the node at ``url``; admin calls read the token from ``<datadir>/auth.token``."""

    def __init__(self, url: str, datadir: Path | str | None = None, *, name: str | None = None) -> None:
        self.url = url
        self.datadir = Path(datadir) if datadir is not None else None
        self.name = name or url
        self.session = requests.Session()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.url}>"

    @property
    def token(self) -> str:
        if self.datadir is None:
            raise NodeProcessError(f"{self.name}: admin calls need the node's datadir (for auth.token)")
        return (self.datadir / "auth.token").read_text().strip()

    def api(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        admin: bool = False,
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Any:
        """One request; the decoded JSON body, or NodeAPIError on a non-2xx status. Connection errors are
        ``requests``' own."""
        if admin:
            headers = {**(headers or {}), "Authorization": f"Bearer {self.token}"}
        response = self.session.request(method, self.url + path, json=json, headers=headers, timeout=timeout)
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if not 200 <= response.status_code < 300:
            raise NodeAPIError(method, path, response.status_code, body)
        return body

    def admin(self, method: str, path: str, json: Any = None, *, timeout: float = 120.0) -> Any:
        """``api`` with the bearer token."""
        return self.api(method, path, json, admin=True, timeout=timeout)

    # ------------------------------------------------------------ reads

    def status(self) -> dict[str, Any]:
        return self.api("GET", "/api/status", timeout=10.0)  # type: ignore[no-any-return]

    def tip(self) -> str:
        return str(self.status()["tip"])

    def height(self) -> int:
        return int(self.status()["height"])

    def block(self, block_hash: str) -> dict[str, Any]:
        return self.api("GET", f"/api/blocks/{block_hash}", timeout=10.0)  # type: ignore[no-any-return]

    def raw_block(self, block_hash: str) -> str:
        return str(self.api("GET", f"/api/blocks/{block_hash}/raw")["hex"])

    def transaction(self, txid: str) -> dict[str, Any] | None:
        """The transaction as the node shows it, or None when it knows no such transaction."""
        try:
            return self.api("GET", f"/api/transactions/{txid}")  # type: ignore[no-any-return]
        except NodeAPIError as exc:
            if exc.status == 404:
                return None
            raise

    def mempool(self) -> set[str]:
        return {t["txid"] for t in self.api("GET", "/api/mempool")["transactions"]}

    def peer_urls(self, state: str = "connected") -> list[str]:
        return [p["url"] for p in self.api("GET", "/api/peers")["peers"] if p["state"] == state]

    def banned_urls(self) -> set[str]:
        return {b["url"] for b in self.api("GET", "/api/peers")["banned"]}

    def metrics(self) -> dict[str, Any]:
        """``/metrics`` decoded: ``{name: value}`` for plain samples, ``{name: {label: value}}`` for labelled ones
        (labels joined by commas in the order of their names)."""
        response = self.session.get(self.url + "/metrics", timeout=10.0)
        response.raise_for_status()
        result: dict[str, Any] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.labels:
                    key = ",".join(f"{v}" for _, v in sorted(sample.labels.items()))
                    result.setdefault(sample.name, {})[key] = sample.value
                else:
                    result[sample.name] = sample.value
        return result

    # ------------------------------------------------------------ writes

    def send_transaction(self, hex_tx: str) -> str:
        return str(self.api("POST", "/api/transactions", {"hex": hex_tx})["txid"])

    def submit_block(self, hex_block: str) -> dict[str, Any]:
        return self.api("POST", "/api/blocks", {"hex": hex_block})  # type: ignore[no-any-return]

    def generate(self, n: int, address: str) -> list[str]:
        """Mine ``n`` blocks now, rewards to ``address``; their hashes."""
        return self.admin("POST", "/api/mining/generate", {"blocks": n, "address": address})["blocks"]  # type: ignore[no-any-return]

    def connect(self, other: NodeClient | str) -> dict[str, Any]:
        url = other.url if isinstance(other, NodeClient) else other
        return self.admin("POST", "/api/peers", {"url": url})["peer"]  # type: ignore[no-any-return]

    def faults(self, **faults: Any) -> dict[str, Any]:
        """Set fault injection (``blocked_peers``, ``delay_ms``, ``clock_skew``, ``byzantine``); the faults now."""
        return self.admin("POST", "/api/admin/faults", faults)  # type: ignore[no-any-return]

    def clear_faults(self) -> None:
        self.admin("DELETE", "/api/admin/faults")


class NodeProcess(NodeClient):
    """One ``cairn-node run`` subprocess on a free loopback port, its datadir and log under ``directory``."""

    def __init__(
        self,
        directory: Path,
        *,
        name: str = "node",
        network: str = "regtest",
        peers: Sequence[NodeClient | str] = (),
        mine: bool = False,
        mine_to: str | None = None,
        extra_args: Sequence[str] = (),
        port: int | None = None,
        log_level: str = "DEBUG",
    ) -> None:
        self.directory = Path(directory)
        self.port = port or free_port()
        super().__init__(f"http://127.0.0.1:{self.port}", self.directory / "data", name=name)
        self.network = network
        self.params = get_network(network)
        self.log_path = self.directory / "node.log"
        self.peers = [p.url if isinstance(p, NodeClient) else p for p in peers]
        self.mine = mine
        self.mine_to = mine_to
        self.extra_args = list(extra_args)
        self.log_level = log_level
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    # ------------------------------------------------------------ lifecycle

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "node.cli", "run", "--network", self.network, "--datadir", str(self.datadir)]
        args += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", self.log_level]
        for url in self.peers:
            args += ["--peer", url]
        if self.mine:
            args.append("--mine")
        if self.mine_to:
            args += ["--mine-to", self.mine_to]
        return args + self.extra_args

    def start(self, extra_args: Sequence[str] | None = None) -> NodeProcess:
        """Start the process (again, after a stop or kill, with the same datadir and port)."""
        if self.running:
            raise NodeProcessError(f"{self} is already running")
        if extra_args is not None:
            self.extra_args = list(extra_args)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 (kept open for the life of the process)
        self._log_file.write(f"==== start: {' '.join(self.command())}\n".encode())
        self._log_file.flush()
        self.process = subprocess.Popen(
            self.command(), cwd=REPO, env=child_env(), stdout=self._log_file, stderr=subprocess.STDOUT
        )
        log.info("started %s (pid %d)", self, self.process.pid)
        return self

    def wait_ready(self, timeout: float = DEFAULT_TIMEOUT) -> NodeProcess:
        """Wait until ``/api/status`` answers and the admin token is written; fail at once if the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise NodeProcessError(f"{self} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if self.status() and self.token:
                    return self
            except (OSError, requests.RequestException, NodeAPIError):
                pass  # not listening yet, or the token not written yet
            if time.monotonic() > deadline:
                raise NodeProcessError(f"{self} did not answer /api/status within {timeout}s:\n{self.log_tail()}")
            time.sleep(0.1)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait for a clean exit; SIGKILL if it does not come. Returns the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s ignored SIGTERM for %.0fs: SIGKILL", self, timeout)
                self.process.kill()
                self.process.wait()
        return self._closed()

    def kill(self) -> int | None:
        """SIGKILL: no chance to clean up, as in a power cut."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        return self._closed()

    def _closed(self) -> int | None:
        assert self.process is not None
        code = self.process.returncode
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self.session.close()
        self.session = requests.Session()
        return code

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)

    def generate(self, n: int = 1, address: str | None = None) -> list[str]:
        """Mine ``n`` blocks now; rewards to ``address``, else ``mine_to``, else the network's burn address."""
        return super().generate(n, address or self.mine_to or burn_address(self.network))


def tail(path: Path | str, lines: int) -> str:
    """The last ``lines`` lines of a log file, or a note that there is none yet."""
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return "(no log yet)"
    return "\n".join(text.splitlines()[-lines:])


def start_all(nodes: Sequence[NodeProcess], timeout: float = DEFAULT_TIMEOUT, *, peers: int = 0) -> None:
    """Start every node (side by side, not one after another), wait until each answers, then until each lists
    at least ``peers`` connected peers."""
    for node in nodes:
        node.start()
    for node in nodes:
        node.wait_ready(timeout)
    for node in nodes:
        wait_until(lambda n=node: len(n.peer_urls()) >= peers, timeout, f"{node.name} to have {peers} peers")


def connect(a: NodeClient, b: NodeClient, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Make ``a`` connect to ``b`` and wait until each lists the other as connected."""
    a.connect(b)
    wait_until(
        lambda: b.url in a.peer_urls() and a.url in b.peer_urls(),
        timeout,
        f"{a.name} and {b.name} to be connected",
    )


def sync_blocks(nodes: Sequence[NodeClient], timeout: float = DEFAULT_TIMEOUT) -> str:
    """Wait until every node has the same tip; return it."""

    def same_tip() -> Any:
        tips = {node.tip() for node in nodes}
        return tips.pop() if len(tips) == 1 else False

    def heights() -> str:
        found = []
        for node in nodes:
            try:
                found.append(f"{node.name}={node.height()}")
            except (OSError, requests.RequestException, NodeAPIError) as exc:
                found.append(f"{node.name}: {type(exc).__name__}")
        return ", ".join(found)

    try:
        return wait_until(same_tip, timeout, "the same tip on " + ", ".join(n.name for n in nodes), 0.2)  # type: ignore[no-any-return]
    except NodeProcessError as exc:
        raise NodeProcessError(f"{exc}\nheights: {heights()}") from None


def sync_mempools(nodes: Sequence[NodeClient], timeout: float = DEFAULT_TIMEOUT) -> set[str]:
    """Wait until every node's mempool holds the same txids; return them."""

    def same() -> list[set[str]] | None:
        pools = [node.mempool() for node in nodes]
        return pools if all(p == pools[0] for p in pools) else None  # a list of sets: truthy even when empty

    pools = wait_until(same, timeout, "the same mempool on " + ", ".join(n.name for n in nodes))
    return pools[0]  # type: ignore[no-any-return]
