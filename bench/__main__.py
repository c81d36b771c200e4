"""Run benchmark suites: ``python -m bench [SUITE ...] [--quick] [--check] [--json FILE]`` (from the repo root).

Suites are modules named in ``SUITES``. Each exposes one function::

    def main(quick: bool) -> list[bench.report.Result]: ...

which builds what it needs (in a temporary directory it removes), prints its
progress through ``bench.report.Progress`` (a line as each measurement starts and
one as it ends), and returns one ``Result`` per measurement: the measured figure,
a baseline measured in the same run, and optionally a ``Target`` for their ratio.
``quick`` asks for smaller inputs and fewer repetitions (a smoke run, not a
verdict). ``bench.report`` has the timing tools: ``stopwatch`` (wall-clock and CPU
time of one run), ``interleaved`` (the two sides of a ratio taking turns, optionally
until each had a run no other process preempted), ``best``. To add a suite, write
``bench/<name>.py`` with that ``main`` and add ``"<name>": "bench.<name>"`` to ``SUITES``.

With no suite named, all run. The results print as one table. The exit status is
0 even when a target is missed (a benchmark reports, it does not judge) unless
``--check`` is given, when a MISS exits 1. ``--json FILE`` also writes the results.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from bench.report import Result, exit_status, format_table, machine_load, write_json

SUITES: dict[str, str] = {"core": "bench.core", "node": "bench.node", "load": "bench.load"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Cairn's benchmarks, each against a baseline measured in the same run."
    )
    parser.add_argument(
        "suites", nargs="*", metavar="SUITE", help=f"suites to run (default: all of {', '.join(SUITES)})"
    )
    parser.add_argument("--quick", action="store_true", help="smaller inputs and fewer repetitions: a smoke run")
    parser.add_argument("--check", action="store_true", help="exit 1 when a result misses its target")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results to FILE as JSON")
    args = parser.parse_args(argv)
    unknown = [name for name in args.suites if name not in SUITES]
    if unknown:
        parser.error(f"unknown suite {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    args.suites = list(dict.fromkeys(args.suites)) or list(SUITES)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    machine = [f"start: {machine_load()}"]
    print(f"== machine at {machine[-1]}", flush=True)
    results: list[Result] = []
    for name in args.suites:
        suite = importlib.import_module(SUITES[name])
        print(f"== suite {name}{' (quick)' if args.quick else ''}", flush=True)
        results += suite.main(args.quick)
    machine.append(f"end: {machine_load()}")
    print(f"== machine at {machine[-1]}")
    print()
    print(format_table(results))
    print(f"\n{len(results)} results in {time.perf_counter() - started:.1f} s", flush=True)
    if args.json is not None:
        write_json(args.json, results, suites=args.suites, quick=args.quick, machine=machine)
        print(f"wrote {args.json.resolve()}")
    return exit_status(results, args.check)


if __name__ == "__main__":
    sys.exit(main())
