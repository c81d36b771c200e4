"""Fixtures of the explorer tests: the node tests' ``node_factory`` (real ``cairn-node`` processes, always stopped)."""

from __future__ import annotations

from tests.node.conftest import node_factory, pytest_runtest_makereport

__all__ = ["node_factory", "pytest_runtest_makereport"]
