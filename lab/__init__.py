"""Cairn's experiment lab: scenarios against real nodes, network-wide properties, metrics and plots.

Run from the repository root: ``scripts/lab run scenarios/partition-heal.toml [--seed N]``.
See docs/experiments.md.
"""
