"""Fixtures of the node tests: ``node_factory`` starts real ``cairn-node`` processes and always stops them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devnet.process import NodeProcess


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def node_factory(tmp_path: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., NodeProcess]]:
    """``node_factory(peers=[...], mine=False, network="regtest", extra_args=[...], start=True)`` -> a ready node.

    Nodes are named node0, node1, ... in creation order, each with a directory under
    ``tmp_path``. At teardown every node is stopped (SIGTERM, then SIGKILL); if the
    test failed, the last lines of each node's log are printed.
    """
    nodes: list[NodeProcess] = []

    def make(*, start: bool = True, **kwargs: Any) -> NodeProcess:
        name = f"node{len(nodes)}"
        node = NodeProcess(tmp_path / name, name=name, **kwargs)
        nodes.append(node)
        if start:
            node.start().wait_ready()
        return node

    yield make
    for node in nodes:
        node.stop()
    failed = any(
        getattr(request.node, f"rep_{when}", None) is not None and getattr(request.node, f"rep_{when}").failed
        for when in ("setup", "call")
    )
    if failed:
        for node in nodes:
            print(f"\n===== {node.name} ({node.url}) log tail =====\n{node.log_tail(80)}")
