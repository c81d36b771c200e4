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
    assume_valid: bytes | None = None
    max_peers: int = 8
    mempool_bytes: int = 5_000_000
    threads: int = 8
    max_body_bytes: int = 4_000_000  # a full block's hex (2 x 1 MB) plus JSON framing
    request_timeout: float = 5.0
    ban_seconds: int = 3600
    ban_threshold: int = 100
    synchronous: str = "FULL"

    @property
    def url(self) -> str:
        """The URL peers reach us at (told them in the handshake)."""
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"http://{host}:{self.port}"
