"""Run any scenario by its kind and draw its plots (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from lab import analysis
from lab.attacks import double_spend, selfish_mining
from lab.runner import NetworkRun
from lab.scenario import Scenario


def run_scenario(scenario: Scenario, seed: int, out: Path) -> dict[str, Any]:
    """Run ``scenario`` with ``seed``; write ``summary.json`` and the plots to ``out``; return the summary."""
    out.mkdir(parents=True, exist_ok=True)
    if scenario.kind == "network":
        summary = NetworkRun(scenario, seed, out).run()
        summary["plots"] = [str(plot_network(out, summary))]
    else:
        summary = (double_spend if scenario.kind == "double-spend" else selfish_mining)(scenario, seed, out)
        plot = plot_double_spend(out, summary) if scenario.kind == "double-spend" else plot_selfish(out, summary)
        _write_trials(out, summary)
        summary["plots"] = [str(plot)]
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def plot_network(out: Path, summary: dict[str, Any]) -> Path:
    """Heights of every node over time with the run's events, propagation delays and reorg depths."""
    data = json.loads((out / "samples.json").read_text())
    events = _events(out)
    figure, (timeline, delays, reorgs) = plt.subplots(
        1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [2.2, 1, 1]}
    )
    for name in summary["nodes"]:
        points = [(s["time"], s["tips"][name]["height"]) for s in data["samples"] if name in s["tips"]]
        if points:
            timeline.step(*zip(*points, strict=True), where="post", label=name)
    for event in events:
        if event["action"] in ("partition", "heal", "crash", "restart", "skew", "byzantine", "delay", "settle"):
            timeline.axvline(float(event["time"]), color="grey", linestyle=":", linewidth=1)
            timeline.text(
                float(event["time"]),
                0.02,
                event["action"],
                rotation=90,
                fontsize=7,
                transform=timeline.get_xaxis_transform(),
            )
    timeline.set(xlabel="seconds", ylabel="tip height", title=f"{summary['scenario']} (seed {summary['seed']})")
    timeline.legend(fontsize=7)
    p = summary["propagation_seconds"]
    delays.bar(list(p), [v * 1000 for v in p.values()], color="tab:blue")
    delays.set(ylabel="ms", title=f"propagation delay ({summary['propagation_samples']} arrivals)")
    depths = summary["reorg_depths"]
    reorgs.bar(list(depths) or ["none"], list(depths.values()) or [0], color="tab:red")
    reorgs.set(xlabel="depth (blocks)", ylabel="reorgs", title=f"reorgs; stale rate {summary['stale_rate']:.0%}")
    figure.tight_layout()
    path = out / f"lab-{summary['scenario']}.png"
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _events(out: Path) -> list[dict[str, str]]:
    with (out / "events.csv").open() as handle:
        return list(csv.DictReader(handle))


def plot_double_spend(out: Path, summary: dict[str, Any]) -> Path:
    """Measured success rate (Wilson 95% interval) against Nakamoto's probability, per attacker share."""
    figure, axis = plt.subplots(figsize=(7, 4.5))
    shares = sorted({r["q"] for r in summary["runs"]})
    for index, q in enumerate(shares):
        rows = sorted((r for r in summary["runs"] if r["q"] == q), key=lambda r: r["z"])
        color = f"C{index}"
        zs = [r["z"] for r in rows]
        curve_z = list(range(0, max(zs) + 1))
        axis.plot(curve_z, [analysis.nakamoto_attack_probability(q, z) for z in curve_z], color=color, linestyle="--")
        rates = [r["rate"] for r in rows]
        errors = [[r["rate"] - r["interval95"][0] for r in rows], [r["interval95"][1] - r["rate"] for r in rows]]
        axis.errorbar(
            zs,
            rates,
            yerr=errors,
            fmt="o",
            color=color,
            capsize=3,
            label=f"q={q:.2f} ({rows[0]['trials']} trials per point)",
        )
    axis.set(
        xlabel="confirmations z",
        ylabel="attack success",
        title="Double spend: measured (points) vs Nakamoto §11 (dashed)",
    )
    axis.set_ylim(-0.02, 1.02)
    axis.legend(fontsize=8)
    figure.tight_layout()
    path = out / "lab-double-spend.png"
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def plot_selfish(out: Path, summary: dict[str, Any]) -> Path:
    """Measured revenue share (mean, one standard deviation) against Eyal and Sirer's curves."""
    figure, axis = plt.subplots(figsize=(7, 4.5))
    alphas = [i / 200 for i in range(0, 99)]
    axis.plot(alphas, alphas, color="black", linewidth=1, label="honest mining (revenue = share)")
    for gamma, style in ((0.0, "-"), (0.5, "--"), (1.0, ":")):
        axis.plot(
            alphas,
            [analysis.selfish_revenue(a, gamma) for a in alphas],
            linestyle=style,
            label=f"Eyal-Sirer gamma={gamma}",
        )
    runs = summary["runs"]
    axis.errorbar(
        [r["alpha"] for r in runs],
        [r["mean"] for r in runs],
        yerr=[r["stdev"] for r in runs],
        fmt="o",
        color="tab:red",
        capsize=3,
        label=f"measured, gamma=0 ({runs[0]['runs']} runs x {runs[0]['blocks']} blocks)",
    )
    axis.set(xlabel="selfish pool hash share alpha", ylabel="pool's share of the final chain", title="Selfish mining")
    axis.set_xlim(0, 0.5)
    axis.set_ylim(0, 1)
    axis.legend(fontsize=8)
    figure.tight_layout()
    path = out / "lab-selfish-mining.png"
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _write_trials(out: Path, summary: dict[str, Any]) -> None:
    """``events.csv`` of an attack scenario: one row per trial (double spend) or run (selfish mining)."""
    rows = []
    for row in summary["runs"]:
        if summary["kind"] == "double-spend":
            for trial, outcome in enumerate(row["outcomes"]):
                rows.append({"q": row["q"], "z": row["z"], "trial": trial, **outcome})
        else:
            for run, revenue in enumerate(row["revenues"]):
                rows.append({"alpha": row["alpha"], "run": run, "blocks": row["blocks"], "revenue": revenue})
    with (out / "events.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["trial"])
        writer.writeheader()
        writer.writerows(rows)
