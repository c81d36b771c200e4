"""``python -m bench node --quick`` runs end to end and reports its four measurements; speed is not judged here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_node_benchmark_runs_and_reports(tmp_path):
    out = tmp_path / "node.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "node", "--quick", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,  # only so a hung run fails instead of blocking the suite
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = {r["name"]: r for r in json.loads(out.read_text())["results"]}
    assert set(results) == {
        "mining: one process",
        f"mining: {os.cpu_count() or 1} worker processes",
        "transactions over HTTP",
        "block propagation, 5-node line",
    }
    units = {name: r["unit"] for name, r in results.items()}
    assert units["mining: one process"] == "hashes/s" and units["transactions over HTTP"] == "txs/s"
    assert units["block propagation, 5-node line"] == "s"
    assert all(r["value"] > 0 and r["baseline"] > 0 for r in results.values())
