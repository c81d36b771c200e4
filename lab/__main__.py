"""``python -m lab run SCENARIO.toml [--seed N] [--quick] [--out DIR]`` (what ``scripts/lab`` calls)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from lab.experiments import run_scenario
from lab.scenario import ScenarioError, load_scenario, schedule


@click.group(help="Cairn's experiment lab: scenarios against real nodes, measured and plotted.")
def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("urllib3").setLevel(logging.WARNING)


@main.command(help="Run a scenario; results (summary.json, events.csv, PNG plots) go to --out.")
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--seed", type=int, default=None, help="Seed of the schedule [default: the scenario's].")
@click.option("--quick", is_flag=True, help="The shortened form (the scenario's [quick] table), as the tests run it.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Results folder.")
def run(scenario: Path, seed: int | None, quick: bool, out: Path | None) -> None:
    try:
        loaded = load_scenario(scenario, quick=quick)
    except ScenarioError as exc:
        raise click.ClickException(str(exc)) from None
    seed = loaded.seed if seed is None else seed
    out = out or Path("lab-results") / f"{loaded.name}-seed{seed}{'-quick' if quick else ''}"
    summary = run_scenario(loaded, seed, out)
    click.echo(
        json.dumps({k: v for k, v in summary.items() if k not in ("payments", "runs")}, indent=2, sort_keys=True)
    )
    click.echo(f"results in {out}")


@main.command("schedule", help="Print the schedule a scenario and seed expand to (nothing is run).")
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--seed", type=int, default=None)
@click.option("--quick", is_flag=True)
def show_schedule(scenario: Path, seed: int | None, quick: bool) -> None:
    loaded = load_scenario(scenario, quick=quick)
    for step in schedule(loaded, seed):
        args = " ".join(f"{k}={v}" for k, v in step.args)
        click.echo(f"{step.at:9.3f}  {step.action:10s} {step.node:10s} {args}")


if __name__ == "__main__":
    main()
