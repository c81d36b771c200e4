"""The lab's real ``cairn-node`` processes: ``LabNode`` adds reading the active chain to the shared
``devnet.process.NodeProcess``; ``Cluster`` owns all of a run's nodes and stops every one it
started (SIGTERM, then SIGKILL) when the ``with`` block ends, whatever happened. Faults go
through the node's admin ``/api/admin/faults`` endpoint.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from devnet.process import NodeProcess, NodeProcessError, connect, start_all, sync_blocks


class LabError(NodeProcessError):
    """Something in the lab's network did not do what the scenario needed (a node that would not start or
    answer, a wait that timed out, an attack that went wrong)."""


class LabNode(NodeProcess):
    """One node process of the lab, with reads of its active chain."""

    def __init__(self, name: str, directory: Path, network: str, extra_args: list[str]) -> None:
        super().__init__(directory, name=name, network=network, extra_args=extra_args, log_level="INFO")

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
        start_all(list(self))

    def stop(self) -> None:
        for node in self:
            node.stop()

    def connect(self, a: str, b: str, timeout: float = 60.0) -> None:
        connect(self.nodes[a], self.nodes[b], timeout)

    def same_tip(self, names: list[str], timeout: float) -> str:
        return sync_blocks([self.nodes[n] for n in names], timeout)
