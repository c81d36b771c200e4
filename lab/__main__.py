"""``python -m lab run SCENARIO.toml [--seed N] [--quick] [--set KEY=VALUE ...] [--out DIR]`` (``scripts/lab``)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from lab.experiments import plot_sweep, run_scenario
from lab.scenario import ScenarioError, load_scenario, parse_setting, schedule


@click.group(help="Cairn's experiment lab: scenarios against real nodes, measured and plotted.")
def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("urllib3").setLevel(logging.WARNING)


SET_HELP = (
    "Override a scenario key, KEY=VALUE with a TOML value (repeatable): --set block_interval=0.5, "
    "--set experiment.trials=10. The summary records what was set."
)


def _settings(values: tuple[str, ...]) -> dict[str, object]:
    try:
        return dict(parse_setting(v) for v in values)
    except ScenarioError as exc:
        raise click.ClickException(str(exc)) from None


@main.command(help="Run a scenario; results (summary.json, events.csv, PNG plots) go to --out.")
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--seed", type=int, default=None, help="Seed of the schedule [default: the scenario's].")
@click.option("--quick", is_flag=True, help="The shortened form (the scenario's [quick] table), as the tests run it.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Results folder.")
def run(scenario: Path, seed: int | None, quick: bool, sets: tuple[str, ...], out: Path | None) -> None:
    settings = _settings(sets)
    try:
        loaded = load_scenario(scenario, quick=quick, settings=settings)
    except ScenarioError as exc:
        raise click.ClickException(str(exc)) from None
    seed = loaded.seed if seed is None else seed
    suffix = "".join(f"-{k}{v}" for k, v in settings.items()).replace(" ", "")
    out = out or Path("lab-results") / f"{loaded.name}-seed{seed}{'-quick' if quick else ''}{suffix}"
    summary = run_scenario(loaded, seed, out, settings)
    click.echo(
        json.dumps({k: v for k, v in summary.items() if k not in ("payments", "runs")}, indent=2, sort_keys=True)
    )
    click.echo(f"results in {out}")


@main.command(help="Plot stale-block rate and propagation of network runs against the --set key they differ by.")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--key", required=True, help="The --set key the runs differ by, e.g. block_interval.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="PNG file to write.")
def compare(results: tuple[Path, ...], key: str, out: Path) -> None:
    summaries = [json.loads((folder / "summary.json").read_text()) for folder in results]
    for folder, summary in zip(results, summaries, strict=True):
        if key not in summary.get("settings", {}) or "stale_rate" not in summary:
            raise click.ClickException(f"{folder}: not a network run made with --set {key}=...")
    click.echo(plot_sweep(summaries, key, out))


@main.command("schedule", help="Print the schedule a scenario and seed expand to (nothing is run).")
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--seed", type=int, default=None)
@click.option("--quick", is_flag=True)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
def show_schedule(scenario: Path, seed: int | None, quick: bool, sets: tuple[str, ...]) -> None:
    try:
        loaded = load_scenario(scenario, quick=quick, settings=_settings(sets))
    except ScenarioError as exc:
        raise click.ClickException(str(exc)) from None
    for step in schedule(loaded, seed):
        args = " ".join(f"{k}={v}" for k, v in step.args)
        click.echo(f"{step.at:9.3f}  {step.action:10s} {step.node:10s} {args}")


if __name__ == "__main__":
    main()
