"""What a benchmark measures and how it is shown: results, targets, timing, progress, the table and JSON.

Every figure is compared with a baseline measured in the same run on the same
machine, so a result reads as a ratio that means the same on a laptop and on a
loaded 2-core box. ``ratio`` is always ``value / baseline``; a ``Target`` says
which side of a bound it should fall on (``>=`` for rates, ``<=`` for costs).
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

PASS, MISS, INFO = "PASS", "MISS", "INFO"


@dataclass(frozen=True)
class Target:
    """A bound on a result's ratio: ``op`` is ``>=`` (at least ``bound``) or ``<=`` (at most ``bound``)."""

    op: str
    bound: float

    def __post_init__(self) -> None:
        if self.op not in (">=", "<="):
            raise ValueError(f"a target's op is '>=' or '<=', not {self.op!r}")

    def met(self, ratio: float) -> bool:
        return ratio >= self.bound if self.op == ">=" else ratio <= self.bound

    def __str__(self) -> str:
        return f"{self.op} {self.bound:g}"


@dataclass(frozen=True)
class Result:
    """One measurement: ``value`` and ``baseline`` in the same ``unit``, and optionally a target for their ratio.

    ``unit`` is a rate (ending in ``/s``), ``s`` (a duration) or ``bytes`` (a size).
    ``details`` holds extra figures worth keeping (sample counts, medians).
    """

    suite: str
    name: str
    value: float
    baseline: float
    unit: str
    measures: str  # what ``value`` is
    baseline_measures: str  # what ``baseline`` is
    target: Target | None = None
    details: Mapping[str, float | int | str] = field(default_factory=dict)
    cpu_value: float | None = None  # the same figures from CPU time (time.process_time), for timed results
    cpu_baseline: float | None = None

    def __post_init__(self) -> None:
        if not (self.value > 0 and self.baseline > 0):
            raise ValueError(f"{self.name}: value {self.value} and baseline {self.baseline} must both be positive")
        cpu = (self.cpu_value, self.cpu_baseline)
        if cpu != (None, None) and not all(figure is not None and figure > 0 for figure in cpu):
            raise ValueError(f"{self.name}: CPU-time figures must be both positive or both absent, not {cpu}")

    @property
    def ratio(self) -> float:
        return self.value / self.baseline

    @property
    def cpu_ratio(self) -> float | None:
        """The ratio by CPU time: steadier than wall time on a shared machine, but blind to waiting on I/O."""
        if self.cpu_value is None or self.cpu_baseline is None:
            return None
        return self.cpu_value / self.cpu_baseline

    @property
    def status(self) -> str:
        if self.target is None:
            return INFO
        return PASS if self.target.met(self.ratio) else MISS

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "name": self.name,
            "value": self.value,
            "baseline": self.baseline,
            "unit": self.unit,
            "ratio": self.ratio,
            "cpu_value": self.cpu_value,
            "cpu_baseline": self.cpu_baseline,
            "cpu_ratio": self.cpu_ratio,
            "target": None if self.target is None else {"op": self.target.op, "bound": self.target.bound},
            "status": self.status,
            "measures": self.measures,
            "baseline_measures": self.baseline_measures,
            "details": dict(self.details),
        }


# ---------------------------------------------------------------- timing


@dataclass(frozen=True)
class Timing:
    """One timed run: wall-clock seconds (``time.perf_counter``) and CPU seconds (``time.process_time``)."""

    wall: float
    cpu: float


def stopwatch(run: Callable[[], T]) -> tuple[Timing, T]:
    """How long ``run()`` took, and what it returned; garbage is collected first, untimed."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu), result


CLEAN = 1.1  # a run whose wall-clock time is within 10% of its CPU time was (nearly) never preempted


def interleaved(
    repeat: int,
    trials: Mapping[str, Callable[[], Timing]],
    *,
    min_seconds: float = 0.0,
    until_clean: bool = False,
    max_seconds: float = 60.0,
) -> dict[str, list[Timing]]:
    """Run every trial at least ``repeat`` times, taking turns, so a noisy moment on the machine hurts each alike.

    Rounds go on until ``min_seconds`` have passed too, so that short trials get
    enough samples for their best to be meaningful. With ``until_clean`` (for
    CPU-bound trials) they go on, up to ``max_seconds``, until every trial has had
    a clean run (wall-clock within ``CLEAN`` times its CPU time): on a shared
    machine another process can take the CPU through every run of one side and
    none of the other, and the best times would compare a busy run with a quiet one.
    A trial does its own untimed setup and returns the ``Timing`` of its timed part.
    """
    samples: dict[str, list[Timing]] = {name: [] for name in trials}
    started = time.perf_counter()
    rounds = 0

    def more() -> bool:
        elapsed = time.perf_counter() - started
        if rounds < repeat or elapsed < min_seconds:
            return True
        unsettled = until_clean and not all(any(t.wall <= CLEAN * t.cpu for t in runs) for runs in samples.values())
        return unsettled and elapsed < max_seconds

    while more():
        for name, trial in trials.items():
            samples[name].append(trial())
        rounds += 1
    return samples


def clean_runs(samples: Sequence[Timing]) -> int:
    return sum(t.wall <= CLEAN * t.cpu for t in samples)


def best(samples: Sequence[Timing]) -> float:
    """The fastest wall-clock time: what the machine can do when nothing else gets in the way."""
    return min(t.wall for t in samples)


def best_cpu(samples: Sequence[Timing]) -> float:
    return min(t.cpu for t in samples)


def median(samples: Sequence[Timing]) -> float:
    return statistics.median(t.wall for t in samples)


# ---------------------------------------------------------------- showing


def format_value(value: float, unit: str) -> str:
    if unit.endswith("/s"):
        return f"{value:,.0f} {unit}"
    if unit == "s":
        return f"{value * 1000:,.2f} ms"
    if unit == "bytes":
        return f"{value / 1e6:,.2f} MB" if value >= 1e6 else f"{value / 1e3:,.1f} kB"
    return f"{value:,.4g} {unit}"


class Progress:
    """One line per step on stdout, flushed at once, so a long run shows where it is."""

    def __init__(self, suite: str) -> None:
        self.suite = suite
        self._started: dict[str, float] = {}

    def start(self, name: str) -> None:
        self._started[name] = time.perf_counter()
        self._line(f">> {name}")

    def note(self, text: str) -> None:
        self._line(f"   {text}")

    def done(self, result: Result) -> Result:
        elapsed = time.perf_counter() - self._started.pop(result.name, time.perf_counter())
        self._line(
            f"<< {result.name}: {format_value(result.value, result.unit)}"
            f" vs {format_value(result.baseline, result.unit)}, ratio {result.ratio:.3g}"
            + ("" if result.cpu_ratio is None else f" (CPU time: {result.cpu_ratio:.3g})")
            + f" [{result.status}] ({elapsed:.1f} s)"
        )
        return result

    def _line(self, text: str) -> None:
        print(f"[{self.suite}] {text}", flush=True)


def format_table(results: Sequence[Result]) -> str:
    """The results as an aligned table, followed by what each value and baseline is."""
    header = ("benchmark", "measured", "baseline", "ratio", "target", "status", "CPU-time ratio")
    rows = [
        (
            r.name,
            format_value(r.value, r.unit),
            format_value(r.baseline, r.unit),
            f"{r.ratio:.3g}",
            "-" if r.target is None else str(r.target),
            r.status,
            "-" if r.cpu_ratio is None else f"{r.cpu_ratio:.3g}",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {1, 2, 3, 6}  # numbers align right

    def line(row: Sequence[str]) -> str:
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    lines = [line(header), line(["-" * w for w in widths]), *(line(row) for row in rows), ""]
    lines.append("ratio = measured / baseline by wall-clock time (perf_counter), which the target judges;")
    lines.append("CPU-time ratio = the same by process_time, steadier when other processes share the CPUs.")
    for r in results:
        lines.append(f"{r.name}: measured = {r.measures}; baseline = {r.baseline_measures}")
    return "\n".join(lines)


def machine_load() -> str:
    """CPU count and load average: a run on a busy machine is noisier, and its reader should know."""
    cpus = os.cpu_count() or 1
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:  # not every platform has a load average
        return f"{cpus} CPUs"
    busy = "  (busier than its CPUs: expect noisy timings)" if one > cpus else ""
    return f"{cpus} CPUs, load average {one:.2f} {five:.2f} {fifteen:.2f}{busy}"


def write_json(
    path: Path, results: Sequence[Result], *, suites: Sequence[str], quick: bool, machine: Sequence[str] = ()
) -> None:
    document = {
        "suites": list(suites),
        "quick": quick,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": list(machine),
        "results": [r.to_json() for r in results],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def exit_status(results: Sequence[Result], check: bool) -> int:
    """0, unless ``check`` is set and some result missed its target: a benchmark reports, ``--check`` judges."""
    return 1 if check and any(r.status == MISS for r in results) else 0
