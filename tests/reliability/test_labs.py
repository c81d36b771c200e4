"""The reliability labs run in the suite in short versions: the crash soak, the load benchmark and netlab.

Each runs as a real process from the repository root, as ``scripts/soak``,
``scripts/bench load`` and ``scripts/netlab`` run it; the tests read its exit status
and its JSON figures. No figure is judged for speed; every figure of loss is judged for zero.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

NOBODY = 65534


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,  # only so a hung run fails instead of blocking the suite
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.slow
def test_crash_soak_six_kills_loses_and_corrupts_nothing(tmp_path) -> None:
    out = tmp_path / "soak.json"
    done = _run(["-m", "soak", "--kills", "6", "--seed", "1", "--json", str(out), "--keep", str(tmp_path / "soak")])
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-6000:]
    result = json.loads(out.read_text())
    assert result["ok"] is True
    assert result["kills"] == 6
    assert sum(result["kills_by_scenario"].values()) == 6
    assert result["corruptions"] == 0 and result["lost_blocks"] == 0 and result["chainwork_regressions"] == 0
    assert result["offline_checks"] == 6 + result["nodes"]  # after every kill, and of every node at the end
    assert result["api_checks"] == 6 + result["nodes"]  # after every restart, and of every node at the end
    assert result["blocks_reported"] > 0 and result["failed_checks"] == []


@pytest.mark.slow
def test_load_benchmark_confirms_every_accepted_transaction_on_every_node(tmp_path) -> None:
    out = tmp_path / "load.json"
    done = _run(["-m", "bench", "load", "--quick", "--json", str(out)])
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-6000:]
    results = {r["name"]: r for r in json.loads(out.read_text())["results"]}
    rate = results["load: accepted txs, 6 clients x 3 nodes"]
    assert rate["unit"] == "txs/s" and rate["value"] > 0 and rate["baseline"] > 0
    assert rate["details"]["accepted"] > 0
    assert rate["details"]["confirmed_on_every_node"] == rate["details"]["accepted"]
    for label in ("p50", "p99"):
        latency = results[f"load: POST /api/transactions latency {label}"]
        assert latency["unit"] == "s" and latency["value"] > 0 and latency["baseline"] > 0
    assert "all" in done.stdout and "accepted transactions confirmed on all 3 nodes" in done.stdout


@pytest.mark.slow
def test_netlab_partition_heals_onto_the_most_work_chain_and_loses_no_transaction(tmp_path) -> None:
    if os.geteuid() != 0:
        pytest.fail("netlab needs root (network namespaces, TAP devices): run the suite as root, as CI does")
    probe = subprocess.run(["ip", "netns", "add", f"cairnprobe{os.getpid()}"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail(f"ip netns add does not work on this machine: {probe.stderr.strip()}")
    subprocess.run(["ip", "netns", "del", f"cairnprobe{os.getpid()}"], check=True)
    out = tmp_path / "netlab.json"
    done = _run(["-m", "netlab", "--quick", "--json", str(out), "--keep", str(tmp_path / "lab")])
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-6000:]
    result = json.loads(out.read_text())
    assert result["ok"] is True
    assert result["nodes"] == 4 and result["delay_ms"] == 200 and result["loss"] == 0.05
    mined, accepted = result["blocks_mined"], result["transactions_accepted"]
    assert mined["A"] > 0 and mined["B"] > 0 and accepted["A"] > 0 and accepted["B"] > 0
    assert result["reorg_depth_on_losing_side"] > 0
    assert result["transactions_confirmed_everywhere"] == accepted["A"] + accepted["B"]
    frames = result["frames"]
    assert frames["delayed"] > 0 and frames["lost"] > 0 and frames["partitioned"] > 0
    lab_namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert "cairnlab" not in lab_namespaces  # torn down


def test_netlab_refuses_clearly_without_root() -> None:
    """As root, run it as nobody, with the system's python3: the refusal needs only the standard library."""
    command = [sys.executable, "-m", "netlab", "--quick"]
    kwargs: dict[str, object] = {}
    if os.geteuid() == 0:
        system_python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
        if system_python is None:
            pytest.fail("no python3 in /usr/local/bin, /usr/bin or /bin for the user nobody to run")
        command[0] = system_python
        kwargs = {"user": NOBODY, "group": NOBODY, "extra_groups": []}
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 2, done.stdout + done.stderr
    assert "netlab needs root" in done.stderr
