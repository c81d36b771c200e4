"""``python -m fuzz [TARGET ...] [--seconds N]``: run atheris targets one after another, each for N seconds.

Each target runs in its own process from the repository root, starting from a
corpus of valid objects (``targets.seeds``) in a temporary directory. A crashing
input is saved as ``fuzz/crashes/<target>-crash-<sha1>``. Prints one line per
target (executions, seconds, result) and exits 1 if any target crashed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fuzz.targets import TARGETS, seeds

REPO = Path(__file__).resolve().parents[1]
CRASHES = REPO / "fuzz" / "crashes"


def run_target(name: str, seconds: int, corpus: Path) -> tuple[bool, int, float, str]:
    """Fuzz ``name`` for ``seconds``; (clean, executions, elapsed, output tail)."""
    CRASHES.mkdir(exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "fuzz.run",
        name,
        str(corpus),
        f"-max_total_time={seconds}",
        "-timeout=20",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
        f"-artifact_prefix={CRASHES}/{name}-",
    ]
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=seconds + 300, check=False)
    elapsed = time.monotonic() - started
    output = done.stdout + done.stderr
    found = re.search(r"stat::number_of_executed_units:\s*(\d+)", output)
    executions = int(found.group(1)) if found else 0
    return done.returncode == 0, executions, elapsed, "\n".join(output.splitlines()[-40:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", metavar="TARGET", help=f"default: all of {', '.join(TARGETS)}")
    parser.add_argument("--seconds", type=int, default=10, help="time per target (default 10)")
    args = parser.parse_args(argv)
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    if args.seconds < 1:
        parser.error("--seconds must be at least 1")
    chosen = args.targets or list(TARGETS)
    valid = seeds()
    failed = []
    with tempfile.TemporaryDirectory(prefix="cairn-fuzz-corpus-") as tmp:
        for name in chosen:
            corpus = Path(tmp) / name
            corpus.mkdir()
            for number, data in enumerate(valid[name]):
                (corpus / f"seed-{number}").write_bytes(data)
            clean, executions, elapsed, tail = run_target(name, args.seconds, corpus)
            result = "ok" if clean else "CRASH"
            print(f"{name:12} {executions:>9} executions {elapsed:6.1f} s  {result}", flush=True)
            if not clean:
                failed.append(name)
                print(tail, flush=True)
    if failed:
        print(f"fuzz: crashes in {', '.join(failed)}; inputs saved under {CRASHES}", flush=True)
        return 1
    print(f"fuzz: {len(chosen)} target(s), no crash", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
