"""Network-only settings of a node: default ports and data directory, and the run configuration."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORTS: dict[str, int] = {"devnet": 8700, "regtest": 8701}
DEFAULT_HOST = "127.0.0.1"
NODE_NETWORKS = tuple(DEFAULT_PORTS)


def default_datadir(network: str) -> Path:
    """``$CAIRN_DATADIR`` if set, else ``~/.cairn/<network>/``."""
    env = os.environ.get("CAIRN_DATADIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cairn" / network


@dataclass(frozen=True)
class NodeConfig:
    """Everything ``cairn-node run`` was told."""

    network: str = "devnet"
    datadir: Path = field(default_factory=lambda: default_datadir("devnet"))
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORTS["devnet"]
    peers: tuple[str, ...] = ()
    mine: bool = False
    mine_to: str | None = None
    miner_processes: int = 0  # 0: search nonces in the miner thread itself
    mine_interval: float = 0.0  # seconds the miner pauses after each block it finds (paces regtest devnets)
    fork_choice: str = "work"  # "length" is a devnet-only teaching switch (see ChainState)
    assume_valid: bytes | None = None
    max_peers: int = 8
    mempool_bytes: int = 5_000_000
    max_orphan_bytes: int = 20_000_000  # orphan blocks (parent unknown) held in memory, besides MAX_ORPHANS of them
    threads: int = 8
    max_connections: int = 100  # open HTTP connections waitress serves at once; more wait in the listen backlog
    max_body_bytes: int = 4_000_000  # a full block's hex (2 x 1 MB) plus JSON framing
    request_timeout: float = 5.0
    ban_seconds: int = 3600
    ban_threshold: int = 100
    synchronous: str = "FULL"
    max_db_pages: int = 0  # test knob (--debug-max-db-pages): SQLite reports a full disk past this; 0 = no cap

    @property
    def connection_limit(self) -> int:
        """waitress's ``connection_limit`` for ``max_connections`` clients: it counts its listening socket and
        its trigger pipe too."""
        return self.max_connections + 2

    @property
    def url(self) -> str:
        """The URL peers reach us at (told them in the handshake)."""
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"http://{host}:{self.port}"
