"""Crash safety: SIGKILL a process that is mining, reorging and spending; the store must stay whole.

Each kill lands at a random moment. After every restart the stored UTXO set must
equal one recomputed from the blocks, and every block reported as accepted must
still be there.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chain.chainstate import ChainState, Status
from chain.params import REGTEST

REPO = Path(__file__).resolve().parents[1]
KILLS = 8


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_corrupts_nothing(tmp_path) -> None:
    path = tmp_path / "chain.sqlite"
    rng = random.Random(20261125)
    reported: set[bytes] = set()
    for round_number in range(KILLS):
        log = tmp_path / f"worker-{round_number}.log"
        with log.open("w") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "tests.crash_worker", str(path), str(round_number + 1)],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            deadline = time.monotonic() + 60
            while "ready" not in log.read_text() and worker.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert worker.poll() is None, log.read_text()
            time.sleep(rng.uniform(0.2, 1.5))  # let it work, then pull the plug mid-whatever
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()
        lines = log.read_text().splitlines()
        reported |= {bytes.fromhex(line.split()[1]) for line in lines if line.startswith("accepted ")}

        state = ChainState(REGTEST, path)
        check = state.check_utxo_set()
        assert check.ok, f"after kill {round_number}: {check}"
        lost = [h.hex() for h in reported if (i := state.get_index(h)) is None or not i.status & Status.HAVE_DATA]
        assert not lost, f"blocks reported accepted but missing after kill {round_number}: {lost}"
        assert state.tip.chainwork == max(i.chainwork for i in state.all_indexes() if i.status & Status.VALID)
        state.close()
    assert len(reported) > KILLS  # the workers did real work between kills
