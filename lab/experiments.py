"""Run any scenario by its kind and draw its plots (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from lab import analysis
from lab.attacks import double_spend, selfish_mining
from lab.runner import NetworkRun
from lab.scenario import Scenario


def run_scenario(scenario: Scenario, seed: int, out: Path, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run ``scenario`` with ``seed``; write ``summary.json`` and the plots to ``out``; return the summary.

    ``settings`` are the ``--set`` overrides the scenario was loaded with, recorded in the summary.
    """
    out.mkdir(parents=True, exist_ok=True)
    if scenario.kind == "network":
        summary = NetworkRun(scenario, seed, out).run()
        summary["settings"] = dict(settings or {})
        summary["plots"] = [str(plot_network(out, summary))]
    else:
        summary = (double_spend if scenario.kind == "double-spend" else selfish_mining)(scenario, seed, out)
        summary["settings"] = dict(settings or {})
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
    names = list(summary["nodes"])
    for index, name in enumerate(names):
        points = [(s["time"], s["tips"][name]["height"]) for s in data["samples"] if name in s["tips"]]
        if points:  # earlier nodes drawn thicker, so nodes on the same tip stay visible under each other
            width = 1.2 + 1.6 * (len(names) - 1 - index)
            timeline.step(*zip(*points, strict=True), where="post", label=name, linewidth=width, alpha=0.85)
    shown = [
        e
        for e in events
        if e["action"] in ("partition", "heal", "crash", "restart", "skew", "byzantine", "delay", "settle")
    ]
    for index, event in enumerate(shown):
        timeline.axvline(float(event["time"]), color="grey", linestyle=":", linewidth=1)
        label = event["action"] + (f" {event['node']}" if event["node"] else "")
        timeline.text(
            float(event["time"]),
            0.02 + 0.3 * (index % 3),  # staggered: events at the same moment do not print over each other
            label,
            rotation=90,
            fontsize=7,
            transform=timeline.get_xaxis_transform(),
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1},
        )
    settings = "".join(f", {k}={v}" for k, v in summary.get("settings", {}).items())
    timeline.set(
        xlabel="seconds", ylabel="tip height", title=f"{summary['scenario']} (seed {summary['seed']}{settings})"
    )
    timeline.yaxis.set_major_locator(MaxNLocator(integer=True))
    timeline.legend(fontsize=7, loc="upper left")
    p = summary["propagation_seconds"]
    bars = delays.bar(list(p), [v * 1000 for v in p.values()], color="tab:blue")
    delays.bar_label(bars, fmt="%.0f", fontsize=8)
    delays.set(ylabel="ms", title=f"propagation delay ({summary['propagation_samples']} arrivals)")
    depths = summary["reorg_depths"]
    if depths:
        bars = reorgs.bar(list(depths), list(depths.values()), color="tab:red")
        reorgs.bar_label(bars, fontsize=8)
    else:
        reorgs.set_xticks([])
        reorgs.text(0.5, 0.5, "no reorg on any honest node", ha="center", transform=reorgs.transAxes)
    reorgs.set_ylim(bottom=0)
    reorgs.yaxis.set_major_locator(MaxNLocator(integer=True))
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
    figure, axis = plt.subplots(figsize=(8, 5))
    shares = sorted({r["q"] for r in summary["runs"]})
    max_blocks = summary.get("max_blocks", 400)
    for index, q in enumerate(shares):
        rows = sorted((r for r in summary["runs"] if r["q"] == q), key=lambda r: r["z"])
        color = f"C{index}"
        zs = [r["z"] for r in rows]
        curve_z = list(range(min(zs), max(zs) + 1))
        axis.plot(curve_z, [analysis.nakamoto_attack_probability(q, z) for z in curve_z], color=color, linestyle="--")
        lab_rule = [analysis.lab_double_spend_probability(q, z, summary["give_up"], max_blocks) for z in curve_z]
        axis.plot(curve_z, lab_rule, color=color, linestyle=":")
        rates = [r["rate"] for r in rows]
        errors = [[r["rate"] - r["interval95"][0] for r in rows], [r["interval95"][1] - r["rate"] for r in rows]]
        offset = 0.08 * (index - (len(shares) - 1) / 2)  # side by side, not on top of each other
        axis.errorbar(
            [z + offset for z in zs],
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
        title="Double spend: measured (points, Wilson 95% interval) vs analytical (lines)",
    )
    axis.plot([], [], color="black", linestyle="--", label="Nakamoto §11: attacker catches up")
    axis.plot(
        [],
        [],
        color="black",
        linestyle=":",
        label=f"exact for the lab's rule: strictly longer, gives up {summary['give_up']} behind",
    )
    all_z = [r["z"] for r in summary["runs"]]
    axis.set_xticks(range(min(all_z), max(all_z) + 1))
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


def plot_sweep(summaries: list[dict[str, Any]], key: str, path: Path) -> Path:
    """Stale-block rate and propagation delay of network runs against the ``--set`` key they differ by."""
    rows = sorted((float(s["settings"][key]), s) for s in summaries)
    figure, axis = plt.subplots(figsize=(7, 4.5))
    xs = [x for x, _ in rows]
    axis.plot(xs, [s["stale_rate"] for _, s in rows], "o-", color="tab:red", label="stale-block rate")
    for x, s in rows:
        axis.annotate(
            f"{s['stale_rate']:.0%} of {s['blocks_mined']}",
            (x, s["stale_rate"]),
            textcoords="offset points",
            xytext=(4, 6),
            fontsize=8,
        )
    axis.set(xlabel=key, ylabel="share of mined blocks not in the final chain", ylim=(0, 1))
    delays = axis.twinx()
    delays.plot(
        xs, [s["propagation_seconds"]["p50"] for _, s in rows], "s--", color="tab:blue", label="propagation p50"
    )
    delays.plot(xs, [s["propagation_seconds"]["p90"] for _, s in rows], "^:", color="tab:blue", label="propagation p90")
    delays.set(ylabel="seconds")
    delays.set_ylim(bottom=0)
    handles = axis.get_legend_handles_labels()[0] + delays.get_legend_handles_labels()[0]
    axis.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="upper right")
    span = (max(xs) - min(xs)) or 1.0
    axis.set_xlim(min(xs) - 0.08 * span, max(xs) + 0.15 * span)  # room for the last point's label
    first = rows[0][1]
    axis.set_title(f"{first['scenario']} (seed {first['seed']}): stale blocks vs {key}")
    figure.tight_layout()
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
