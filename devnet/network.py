"""Start, inspect, disturb and stop a local devnet; its state lives in ``<root>/state.json``.

Each node is ``python -m node.cli run`` (the ``cairn-node`` of this checkout) in its own
session, with its datadir and log under ``<root>/nodeN/``, listening on a free loopback
port. Mining nodes get a wallet of their own (``<root>/nodeN/wallet``, password in
``<root>/wallet-password``, mode 0600) and mine to its first address. ``down`` signals only
the PIDs recorded here, and only after checking that each PID's command line is still that
node's (a PID reused by another program is left alone).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests

from chain.address import encode_address
from chain.hashes import hash160
from chain.params import get_network
from devnet.process import REPO, NodeAPIError, NodeClient, child_env, free_port, tail

log = logging.getLogger(__name__)

ROOT_ENV = "CAIRN_DEVNET_DIR"
TOPOLOGIES = ("line", "ring", "mesh")
NETWORKS = ("devnet", "regtest")
REGTEST_MINE_INTERVAL = 5.0  # seconds between blocks of each regtest miner (devnet paces itself by difficulty)
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class DevnetError(Exception):
    """Something the user can fix: no devnet running, an unknown node, a node that would not start."""


def default_root() -> Path:
    """``$CAIRN_DEVNET_DIR``, else ``.devnet/`` at the root of the repository."""
    env = os.environ.get(ROOT_ENV)
    return Path(env).expanduser().resolve() if env else REPO / ".devnet"


def neighbours(count: int, topology: str) -> dict[int, set[int]]:
    """Who is connected to whom (1-based, symmetric) in a ``line``, ``ring`` or ``mesh`` of ``count`` nodes."""
    if topology not in TOPOLOGIES:
        raise DevnetError(f"topology is one of {', '.join(TOPOLOGIES)}, not {topology!r}")
    links: dict[int, set[int]] = {i: set() for i in range(1, count + 1)}
    for i in range(2, count + 1):
        for j in range(1, i) if topology == "mesh" else [i - 1]:
            links[i].add(j)
            links[j].add(i)
    if topology == "ring" and count >= 3:
        links[1].add(count)
        links[count].add(1)
    return links


def parse_groups(text: str, count: int) -> list[list[int]]:
    """``"1,2/3,4"`` -> ``[[1, 2], [3, 4]]``: at least two disjoint groups of existing nodes."""
    groups = []
    for part in text.split("/"):
        try:
            groups.append(sorted({parse_node(item, count) for item in part.split(",") if item.strip()}))
        except DevnetError as exc:
            raise DevnetError(f"{text!r}: {exc}") from None
    if len(groups) < 2 or any(not g for g in groups):
        raise DevnetError(f"a partition is two or more groups of nodes like 1,2/3,4, not {text!r}")
    seen = [n for g in groups for n in g]
    if len(seen) != len(set(seen)):
        raise DevnetError(f"a node is in two groups of {text!r}")
    return groups


def parse_node(text: str, count: int) -> int:
    """``"2"`` or ``"node2"`` -> 2, checked against the number of nodes."""
    raw = text.strip().removeprefix("node")
    if not raw.isdigit() or not 1 <= int(raw) <= count:
        raise DevnetError(f"no node {text.strip()!r}: the nodes are 1 to {count}")
    return int(raw)


@dataclass
class NodeInfo:
    """One node of the devnet, as recorded in state.json."""

    index: int
    port: int
    datadir: str
    log: str
    pid: int
    peers: list[int]
    mining: bool
    wallet: str | None = None
    address: str | None = None

    @property
    def name(self) -> str:
        return f"node{self.index}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def process_cmdline(pid: int) -> list[str] | None:
    """The command line of ``pid``, or None when it is gone (or a zombie)."""
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return None
            return [a for a in (proc / "cmdline").read_bytes().decode(errors="replace").split("\0") if a]
        except (OSError, IndexError):
            return None
    if sys.platform.startswith("linux"):
        return None
    try:  # no /proc (macOS): ask ps
        out = subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=False)
    except OSError:
        return None
    return out.stdout.split() or None


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our own child that exited (so it does not linger as a zombie)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


class Devnet:
    """The devnet recorded under ``root``."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.state_path = self.root / "state.json"
        self._clients: dict[str, NodeClient] = {}
        self.state: dict[str, Any] = self._load()

    # ------------------------------------------------------------ state

    def _load(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_path.read_text())  # type: ignore[no-any-return]
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise DevnetError(f"{self.state_path} is not readable JSON ({exc}); remove it by hand") from None

    def _save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1))
        tmp.replace(self.state_path)

    @property
    def network(self) -> str:
        return str(self.state.get("network", "devnet"))

    @property
    def nodes(self) -> list[NodeInfo]:
        return [NodeInfo(**n) for n in self.state.get("nodes", [])]

    def node(self, text: str | int) -> NodeInfo:
        nodes = self.nodes
        if not nodes:
            raise DevnetError(f"no devnet under {self.root}: start one with `scripts/devnet up`")
        return nodes[parse_node(str(text), len(nodes)) - 1]

    def is_ours(self, node: NodeInfo) -> bool:
        """Is ``node.pid`` still the node we started (same module, same datadir)?"""
        cmdline = process_cmdline(node.pid)
        return cmdline is not None and "node.cli" in cmdline and node.datadir in cmdline

    def running(self) -> list[NodeInfo]:
        return [n for n in self.nodes if self.is_ours(n)]

    # ------------------------------------------------------------ HTTP

    def api(self, node: NodeInfo, method: str, path: str, body: Any = None, *, admin: bool = False) -> Any:
        """One call to ``node``'s JSON API; DevnetError saying what went wrong when it fails."""
        client = self._clients.get(node.url)
        if client is None:
            client = self._clients[node.url] = NodeClient(node.url, node.datadir, name=node.name)
        try:
            return client.api(method, path, body, admin=admin, timeout=120)
        except requests.RequestException as exc:
            raise DevnetError(f"{node.name} ({node.url}) does not answer: {type(exc).__name__}") from None
        except NodeAPIError as exc:
            raise DevnetError(
                f"{node.name}: {method} {path} -> HTTP {exc.status} {exc.code or ''}: {exc.message}"
            ) from None

    def status_of(self, node: NodeInfo) -> dict[str, Any]:
        return self.api(node, "GET", "/api/status")  # type: ignore[no-any-return]

    def set_faults(self, node: NodeInfo, faults: dict[str, Any]) -> dict[str, Any]:
        return self.api(node, "POST", "/api/admin/faults", faults, admin=True)  # type: ignore[no-any-return]

    # ------------------------------------------------------------ up / down

    def up(
        self,
        count: int = 3,
        miners: int = 1,
        topology: str = "mesh",
        network: str = "devnet",
        mine_interval: float | None = None,
        say: Callable[[str], None] = log.info,
    ) -> list[NodeInfo]:
        """Start a fresh devnet (old node directories under the root are removed) and wait until it is connected."""
        if not 1 <= count <= 8:
            raise DevnetError("a devnet has 1 to 8 nodes (a node keeps at most 8 peers)")
        if not 0 <= miners <= count:
            raise DevnetError(f"--miners must be from 0 to the number of nodes ({count})")
        if network not in NETWORKS:
            raise DevnetError(f"network is one of {', '.join(NETWORKS)}")
        if self.running():
            raise DevnetError(f"a devnet is already running under {self.root}: `scripts/devnet down` first")
        if mine_interval is None:
            mine_interval = REGTEST_MINE_INTERVAL if network == "regtest" else 0.0
        links = neighbours(count, topology)
        self.root.mkdir(parents=True, exist_ok=True)
        for old in self.root.glob("node[0-9]*"):
            shutil.rmtree(old)
        password = self._password_file()
        ports = [free_port() for _ in range(count)]
        nodes: list[NodeInfo] = []
        for index in range(1, count + 1):
            directory = self.root / f"node{index}"
            directory.mkdir()
            node = NodeInfo(
                index=index,
                port=ports[index - 1],
                datadir=str(directory / "data"),
                log=str(directory / "node.log"),
                pid=0,
                peers=sorted(links[index]),
                mining=index <= miners,
            )
            if node.mining:
                node.wallet = str(directory / "wallet")
                node.address = self._create_wallet(Path(node.wallet), network, password)
            nodes.append(node)
        self.state = {
            "network": network,
            "topology": topology,
            "miners": miners,
            "mine_interval": mine_interval,
            "started": int(time.time()),
            "nodes": [asdict(n) for n in nodes],
        }
        self._save()
        for node in nodes:
            earlier = [ports[j - 1] for j in node.peers if j < node.index]
            node.pid = self._start(node, network, earlier, mine_interval)
            say(f"started {node.name} (pid {node.pid}) at {node.url}")
            self.state["nodes"] = [asdict(n) for n in nodes]
            self._save()
        self.wait_ready(nodes)
        self.wait_connected(nodes)
        return nodes

    def _password_file(self) -> Path:
        path = self.root / "wallet-password"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(16) + "\n")
        os.chmod(path, 0o600)
        return path

    def wallet_command(self, wallet: Path, network: str, *args: str, node_url: str | None = None) -> list[str]:
        command = [sys.executable, "-m", "wallet", "--network", network, "--wallet", str(wallet)]
        command += ["--password-file", str(self._password_file())]
        if node_url is not None:
            command += ["--node", node_url]
        return [*command, "--json", *args]

    def run_wallet(self, wallet: Path, network: str, *args: str, node_url: str | None = None) -> dict[str, Any]:
        """Run ``cairn-wallet --json ARGS`` of this checkout; its JSON answer, DevnetError when it fails."""
        command = self.wallet_command(wallet, network, *args, node_url=node_url)
        done = subprocess.run(command, cwd=REPO, env=child_env(), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            message = (done.stdout.strip() + " " + done.stderr.strip()).strip()
            raise DevnetError(f"cairn-wallet {' '.join(args)} failed ({done.returncode}): {message[-800:]}")
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    def _create_wallet(self, wallet: Path, network: str, password: Path) -> str:
        return str(self.run_wallet(wallet, network, "create")["address"])

    def _start(self, node: NodeInfo, network: str, peer_ports: Sequence[int], mine_interval: float) -> int:
        command = [sys.executable, "-m", "node.cli", "run", "--network", network, "--datadir", node.datadir]
        command += ["--host", "127.0.0.1", "--port", str(node.port)]
        for port in peer_ports:
            command += ["--peer", f"http://127.0.0.1:{port}"]
        if node.mining:
            assert node.address is not None
            command += ["--mine", "--mine-to", node.address]
            if mine_interval > 0:
                command += ["--mine-interval", str(mine_interval)]
        with open(node.log, "ab") as log_file:
            log_file.write(f"==== devnet start: {' '.join(command)}\n".encode())
            log_file.flush()
            process = subprocess.Popen(
                command,
                cwd=REPO,
                env=child_env(),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives `devnet up`; Ctrl-C in the terminal does not reach it
            )
        process.returncode = 0  # we never wait() on it here: keep Popen.__del__ from warning
        return process.pid

    def wait_ready(self, nodes: Sequence[NodeInfo], timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        for node in nodes:
            while True:
                if not self.is_ours(node):
                    _reap(node.pid)
                    raise DevnetError(f"{node.name} exited while starting; its log ends with:\n{tail(node.log, 20)}")
                try:
                    if (Path(node.datadir) / "auth.token").exists():
                        self.status_of(node)
                        break
                except DevnetError:
                    pass
                if time.monotonic() > deadline:
                    raise DevnetError(f"{node.name} did not answer within {timeout:.0f}s; log:\n{tail(node.log, 20)}")
                time.sleep(0.1)

    def wait_connected(self, nodes: Sequence[NodeInfo], timeout: float = START_TIMEOUT) -> None:
        """Wait until every node lists each of its topology neighbours as a connected peer."""
        deadline = time.monotonic() + timeout
        by_index = {n.index: n for n in nodes}
        for node in nodes:
            wanted = {by_index[j].url for j in node.peers}
            while True:
                peers = self.api(node, "GET", "/api/peers")["peers"]
                connected = {p["url"] for p in peers if p["state"] == "connected"}
                if wanted <= connected:
                    break
                if time.monotonic() > deadline:
                    raise DevnetError(f"{node.name} is not connected to {sorted(wanted - connected)} after {timeout}s")
                time.sleep(0.2)

    def down(self, say: Callable[[str], None] = log.info) -> list[NodeInfo]:
        """SIGTERM every node we started that still runs (checked by command line), wait, SIGKILL stragglers."""
        stopped = []
        for node in self.nodes:
            if not node.pid:
                continue
            if not self.is_ours(node):
                _reap(node.pid)
                say(f"{node.name} (pid {node.pid}) is not running")
                continue
            os.kill(node.pid, signal.SIGTERM)
            stopped.append(node)
        deadline = time.monotonic() + STOP_TIMEOUT
        for node in stopped:
            while self.is_ours(node):
                _reap(node.pid)
                if time.monotonic() > deadline:
                    say(f"{node.name} (pid {node.pid}) ignored SIGTERM for {STOP_TIMEOUT:.0f}s: SIGKILL")
                    os.kill(node.pid, signal.SIGKILL)
                    time.sleep(0.2)
                    _reap(node.pid)
                    break
                time.sleep(0.1)
            say(f"stopped {node.name} (pid {node.pid})")
        if self.state:
            self.state["nodes"] = [{**asdict(n), "pid": 0} for n in self.nodes]
            self._save()
        return stopped

    # ------------------------------------------------------------ faults

    def partition(self, groups: list[list[int]]) -> None:
        """Nodes of different groups stop talking to each other (nodes in no group keep talking to all)."""
        nodes = self.nodes
        for group in groups:
            others = [nodes[j - 1].url for g in groups if g is not group for j in g]
            for i in group:
                self.set_faults(nodes[i - 1], {"blocked_peers": others})

    def heal(self) -> None:
        for node in self.running():
            self.set_faults(node, {"blocked_peers": []})

    # ------------------------------------------------------------ reading

    def table(self) -> list[dict[str, Any]]:
        rows = []
        for node in self.nodes:
            row: dict[str, Any] = {"node": node.name, "url": node.url, "pid": node.pid}
            if not self.is_ours(node):
                rows.append({**row, "state": "stopped"})
                continue
            try:
                status = self.status_of(node)
                faults = self.api(node, "GET", "/api/admin/faults", admin=True)
            except DevnetError as exc:
                rows.append({**row, "state": f"not answering: {exc}"})
                continue
            rows.append(
                {
                    **row,
                    "state": "running",
                    "height": status["height"],
                    "tip": status["tip"],
                    "peers": status["peers"],
                    "mining": status["mining"],
                    "faults": describe_faults(faults),
                }
            )
        return rows

    def burn_address(self, node: NodeInfo) -> str:
        """An address nobody holds the key of, different for each node (so two nodes never mine the same block)."""
        return encode_address(hash160(f"cairn devnet burn {node.name}".encode()), get_network(self.network))


def describe_faults(faults: dict[str, Any]) -> str:
    parts = []
    if faults.get("blocked_peers"):
        ports = [url.rsplit(":", 1)[-1] for url in faults["blocked_peers"]]
        parts.append("partitioned from :" + ",:".join(ports))
    if faults.get("delay_ms"):
        parts.append(f"delay {faults['delay_ms']}ms")
    if faults.get("clock_skew"):
        parts.append(f"clock {faults['clock_skew']:+d}s")
    if faults.get("byzantine"):
        parts.append("byzantine")
    return "; ".join(parts) or "-"


def format_table(rows: list[dict[str, Any]]) -> str:
    columns = ["node", "url", "height", "tip", "peers", "mining", "faults"]
    lines = []
    for row in rows:
        if row.get("state") != "running":
            lines.append([row["node"], row["url"], "-", row.get("state", "?"), "-", "-", "-"])
            continue
        lines.append(
            [
                row["node"],
                row["url"],
                str(row["height"]),
                row["tip"][:16] + "…",
                str(row["peers"]),
                "yes" if row["mining"] else "no",
                row["faults"],
            ]
        )
    widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(columns)] if lines else []
    out = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    out += ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(out)
