"""``scripts/demo`` end to end from a clean copy of the repository, and the shell side of the scripts.

The copy holds the files git knows of (``git ls-files --cached --others --exclude-standard``:
tracked files plus new, not ignored ones), so no ``.venv``, ``.devnet`` or caches. Installing
Cairn's dependencies again would take minutes and need the network, so the scripts are told
to use the virtualenv running the tests (``sys.prefix``) through ``CAIRN_VENV`` (they then install nothing). The copy's
own code runs: the scripts start ``python -m ...`` from the copy's root, which comes first on
``sys.path``. ``.venv`` creation itself (``ensure_venv``) is what ``scripts/test`` runs in CI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devnet.network import Devnet, process_cmdline
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def clean_copy(target: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.fixture
def copy(tmp_path: Path):
    repo = clean_copy(tmp_path / "cairn")
    yield repo
    Devnet(repo / ".devnet").down()  # whatever happened, stop what the scripts started


def run(repo: Path, *command: str, venv: str | None = sys.prefix) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CAIRN_DEVNET_DIR", "PYTHONPATH", "CAIRN_VENV")}
    if venv is not None:
        env["CAIRN_VENV"] = venv
    return subprocess.run(list(command), cwd=repo, env=env, capture_output=True, text=True, timeout=600, check=False)


def test_demo_runs_end_to_end_from_a_clean_copy(copy: Path) -> None:
    assert not (copy / ".venv").exists() and not (copy / ".devnet").exists()
    done = run(copy, "scripts/demo", "--keep")
    assert done.returncode == 0, done.stdout + done.stderr
    steps = re.findall(r"^\[(\d)/9\] ", done.stdout, re.M)
    assert steps == [str(i) for i in range(1, 10)], done.stdout
    assert "every node agrees bob holds 12.5 coins" in done.stdout
    assert re.search(r"2 header chains \(node2, node3\) valid up to height \d+", done.stdout)
    assert re.search(r"open http://127\.0\.0\.1:\d+/ in a browser", done.stdout)
    assert done.stdout.rstrip().endswith("demo finished: every step passed")
    assert len(re.findall(r"^    node\d: alice .* bob 12\.50000000$", done.stdout, re.M)) == 3

    devnet = Devnet(copy / ".devnet")
    assert len(devnet.running()) == 3, "--keep leaves the devnet running"
    for node in devnet.nodes:  # the copy's code runs, not this checkout's
        cmdline = process_cmdline(node.pid)
        assert cmdline is not None and node.datadir.startswith(str(copy))

    again = run(copy, "scripts/demo")
    assert again.returncode == 1
    assert "demo FAILED at step 1 (start a 3-node devnet)" in again.stderr
    assert "already running" in again.stderr
    assert len(devnet.running()) == 3, "a failed demo stopped a devnet it did not start"

    status = run(copy, "scripts/devnet", "status")
    assert status.returncode == 0 and status.stdout.count("http://127.0.0.1:") == 3, status.stdout + status.stderr
    down = run(copy, "scripts/devnet", "down")
    assert down.returncode == 0 and "3 nodes stopped" in down.stdout, down.stdout + down.stderr
    assert devnet.running() == []


def test_scripts_refuse_a_missing_virtualenv(tmp_path: Path) -> None:
    for script in ("scripts/demo", "scripts/devnet"):
        done = run(REPO, script, "--help", venv=str(tmp_path / "nowhere"))
        assert done.returncode == 1 and "has no bin/python" in done.stderr


def test_find_python_picks_python_311_or_newer() -> None:
    done = subprocess.run(
        ["bash", "-c", "source scripts/lib/venv.sh && find_python"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    python = done.stdout.strip()
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version_info >= (3, 11))"], capture_output=True, text=True, check=True
    )
    assert version.stdout.strip() == "True"
