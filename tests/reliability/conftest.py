"""The node tests' fixtures (``node_factory``: real ``cairn-node`` processes, always stopped) for these tests too."""

from tests.node.conftest import node_factory, pytest_runtest_makereport

__all__ = ["node_factory", "pytest_runtest_makereport"]
