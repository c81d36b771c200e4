"""Cairn's benchmarks, run from the repository root: ``python -m bench [SUITE ...] [--quick] [--check] [--json FILE]``.

Each figure is reported against a baseline measured in the same run (see
``bench.report``); ``bench.__main__`` lists the suites and explains how to add one.
"""
