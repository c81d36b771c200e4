"""Run real ``cairn-node`` processes on loopback and drive them, in the spirit of Bitcoin Core's functional tests.

Each ``NodeProcess`` is a ``python -m node.cli run`` subprocess with its own datadir
under ``tmp_path``, a free loopback port and a log file. Use the ``node_factory``
fixture of ``tests/node/conftest.py``, which stops every node at teardown and prints
the tail of each log when a test fails::

    @pytest.mark.slow
    def test_line(node_factory):
        # node0 <-- node1 <-- node2
        node0 = node_factory()
        node1 = node_factory(peers=[node0])
        node2 = node_factory(peers=[node1])
        node0.generate(5)
        sync_blocks([node0, node1, node2])

Outside pytest::

    node = NodeProcess(tmp_dir, network="regtest").start()
    node.wait_ready()
    node.api("GET", "/api/status")     # decoded JSON; NodeAPIError on non-2xx, with .status, .code, .body
    node.admin("POST", "/api/mining/generate", json={"blocks": 1, "address": addr})
    node.stop()                        # SIGTERM, wait, SIGKILL if it hangs

``wait_until(predicate, timeout, describe)`` polls and, on timeout, fails naming
what it waited for and the last value seen. ``sync_blocks(nodes)`` waits for one
tip everywhere, ``sync_mempools(nodes)`` for the same mempool, ``connect(a, b)``
tells ``a`` to connect to ``b``.
"""

from __future__ import annotations

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

from chain.address import encode_address
from chain.params import get_network

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TIMEOUT = 60.0


class NodeAPIError(Exception):
    """A node answered with a non-2xx status; ``code`` is the error code of its JSON body."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        error = body.get("error") if isinstance(body, dict) else None
        self.code = error.get("code") if isinstance(error, dict) else None
        super().__init__(f"{method} {path} -> HTTP {status}: {body}")


def free_port() -> int:
    """A loopback port that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT, describe: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``describe`` and the last value on timeout.

    Exceptions raised by the predicate count as "not yet" (the last one is reported).
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:  # a node still starting, a connection refused: try again
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {describe}; last value: {last!r:.2000}")
        time.sleep(0.1)


class NodeProcess:
    """One ``cairn-node run`` subprocess on a free loopback port."""

    def __init__(
        self,
        directory: Path,
        *,
        name: str = "node",
        network: str = "regtest",
        peers: Sequence[NodeProcess | str] = (),
        mine: bool = False,
        mine_to: str | None = None,
        extra_args: Sequence[str] = (),
        port: int | None = None,
    ) -> None:
        self.name = name
        self.network = network
        self.params = get_network(network)
        self.directory = Path(directory)
        self.datadir = self.directory / "data"
        self.log_path = self.directory / "node.log"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.peers = [p.url if isinstance(p, NodeProcess) else p for p in peers]
        self.mine = mine
        self.mine_to = mine_to
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None
        self.session = requests.Session()
        self._log_file: Any = None

    def __repr__(self) -> str:
        return f"<NodeProcess {self.name} {self.url}>"

    # ------------------------------------------------------------ lifecycle

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "node.cli", "run", "--network", self.network, "--datadir", str(self.datadir)]
        args += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "DEBUG"]
        for url in self.peers:
            args += ["--peer", url]
        if self.mine:
            args.append("--mine")
        if self.mine_to:
            args += ["--mine-to", self.mine_to]
        return args + self.extra_args

    def start(self, extra_args: Sequence[str] | None = None) -> NodeProcess:
        """Start the process (again, after a stop or kill, with the same datadir and port)."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"{self} is already running")
        if extra_args is not None:
            self.extra_args = list(extra_args)
        self.directory.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        env.pop("CAIRN_DATADIR", None)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 (kept open for the life of the process)
        self._log_file.write(f"==== start: {' '.join(self.command())}\n".encode())
        self._log_file.flush()
        self.process = subprocess.Popen(
            self.command(), cwd=REPO, env=env, stdout=self._log_file, stderr=subprocess.STDOUT
        )
        return self

    def wait_ready(self, timeout: float = DEFAULT_TIMEOUT) -> NodeProcess:
        """Wait until ``/api/status`` answers (and the admin token is written)."""

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"{self} exited with {self.process.returncode}:\n{self.log_tail()}")
            return bool(self.status()) and (self.datadir / "auth.token").exists()

        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready():
                    return self
            except AssertionError:
                raise
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{self} did not answer /api/status within {timeout}s:\n{self.log_tail()}")
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
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # ------------------------------------------------------------ HTTP

    def api(
        self, method: str, path: str, json: Any = None, *, headers: dict[str, str] | None = None, timeout: float = 60.0
    ) -> Any:
        """One request; the decoded JSON body, or NodeAPIError on a non-2xx status."""
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

    def admin(self, method: str, path: str, json: Any = None, *, timeout: float = 120.0) -> Any:
        """Like ``api`` with the bearer token from ``<datadir>/auth.token``."""
        return self.api(method, path, json, headers={"Authorization": f"Bearer {self.token}"}, timeout=timeout)

    def status(self) -> dict[str, Any]:
        return self.api("GET", "/api/status", timeout=5.0)  # type: ignore[no-any-return]

    def tip(self) -> str:
        return str(self.status()["tip"])

    def height(self) -> int:
        return int(self.status()["height"])

    def generate(self, n: int = 1, address: str | None = None) -> list[str]:
        """Mine ``n`` blocks now; rewards to ``address`` (default: a fixed throwaway address of the network)."""
        address = address or self.mine_to or burn_address(self.network)
        return self.admin("POST", "/api/mining/generate", {"blocks": n, "address": address})["blocks"]  # type: ignore[no-any-return]

    def connect(self, other: NodeProcess) -> dict[str, Any]:
        return self.admin("POST", "/api/peers", {"url": other.url})["peer"]  # type: ignore[no-any-return]

    def peer_urls(self, state: str = "connected") -> list[str]:
        return [p["url"] for p in self.api("GET", "/api/peers")["peers"] if p["state"] == state]

    def mempool(self) -> set[str]:
        return {t["txid"] for t in self.api("GET", "/api/mempool")["transactions"]}

    def send_transaction(self, hex_tx: str) -> str:
        return str(self.api("POST", "/api/transactions", {"hex": hex_tx})["txid"])

    def submit_block(self, hex_block: str) -> dict[str, Any]:
        return self.api("POST", "/api/blocks", {"hex": hex_block})  # type: ignore[no-any-return]


def burn_address(network: str) -> str:
    """An address nobody holds the key of (pubkey hash of 20 x 0x11), for rewards a test does not spend."""
    return encode_address(bytes([0x11]) * 20, get_network(network))


def connect(a: NodeProcess, b: NodeProcess, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Make ``a`` connect to ``b`` and wait until each lists the other as connected."""
    a.connect(b)
    wait_until(
        lambda: b.url in a.peer_urls() and a.url in b.peer_urls(),
        timeout,
        f"{a.name} and {b.name} to be connected",
    )


def sync_blocks(nodes: Sequence[NodeProcess], timeout: float = DEFAULT_TIMEOUT) -> str:
    """Wait until every node has the same tip; return it."""

    def same_tip() -> Any:
        tips = {node.name: node.tip() for node in nodes}
        return next(iter(tips.values())) if len(set(tips.values())) == 1 else False

    def describe_tips() -> str:
        return ", ".join(f"{n.name}={n.status()['height']}" for n in nodes if n.running)

    try:
        return wait_until(same_tip, timeout, "the same tip on " + ", ".join(n.name for n in nodes))  # type: ignore[no-any-return]
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nheights: {describe_tips()}") from None


def sync_mempools(nodes: Sequence[NodeProcess], timeout: float = DEFAULT_TIMEOUT) -> set[str]:
    """Wait until every node's mempool holds the same txids; return them."""

    def same() -> list[set[str]] | None:
        pools = [node.mempool() for node in nodes]
        return pools if all(p == pools[0] for p in pools) else None  # a list of sets: truthy even when empty

    pools = wait_until(same, timeout, "the same mempool on " + ", ".join(n.name for n in nodes))
    return pools[0]  # type: ignore[no-any-return]
