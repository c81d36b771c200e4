"""``scripts/devnet`` (``python -m devnet``): run a local network of Cairn nodes and inject faults into it.

scripts/devnet up --nodes 4 --miners 2 --topology mesh
scripts/devnet status
scripts/devnet partition 1,2/3,4      # then: heal
scripts/devnet delay 3 500            # skew 3 120 / byzantine 4 / clear
scripts/devnet logs 2
scripts/devnet down
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from devnet.network import NETWORKS, ROOT_ENV, TOPOLOGIES, Devnet, DevnetError, format_table, parse_groups, tail


class DevnetGroup(click.Group):
    """Turn DevnetError into a one-line message and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DevnetError as exc:
            click.echo(f"devnet: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=DevnetGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=ROOT_ENV,
    default=None,
    help=f"Directory of the devnet's state, datadirs and logs (${ROOT_ENV}; default: .devnet/ of the repository).",
)
@click.pass_context
def main(ctx: click.Context, root: Path | None) -> None:
    """A local network of cairn-node processes on loopback, with fault injection."""
    ctx.obj = Devnet(root.resolve() if root is not None else None)


def _print_table(devnet: Devnet) -> None:
    click.echo(format_table(devnet.table()))


@main.command()
@click.option("--nodes", "count", type=click.IntRange(1, 8), default=3, show_default=True, help="Number of nodes.")
@click.option("--miners", type=click.IntRange(0, 8), default=1, show_default=True, help="Nodes 1..M mine.")
@click.option("--topology", type=click.Choice(TOPOLOGIES), default="mesh", show_default=True)
@click.option("--network", type=click.Choice(NETWORKS), default="devnet", show_default=True)
@click.option(
    "--mine-interval",
    type=click.FloatRange(0, 3600),
    default=None,
    help="Seconds each miner rests after a block [default: 5 on regtest, 0 on devnet].",
)
@click.pass_obj
def up(devnet: Devnet, count: int, miners: int, topology: str, network: str, mine_interval: float | None) -> None:
    """Start a fresh devnet and wait until every node is up and connected."""
    devnet.up(count, miners, topology, network, mine_interval, say=click.echo)
    _print_table(devnet)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def status(devnet: Devnet, as_json: bool) -> None:
    """Height, tip, peers, mining and faults of every node."""
    if not devnet.nodes:
        raise DevnetError(f"no devnet under {devnet.root}: start one with `scripts/devnet up`")
    rows = devnet.table()
    if as_json:
        click.echo(json.dumps({"network": devnet.network, "root": str(devnet.root), "nodes": rows}, indent=1))
        return
    click.echo(f"{devnet.network} devnet under {devnet.root} ({devnet.state.get('topology')})")
    click.echo(format_table(rows))


@main.command()
@click.argument("node", required=False)
@click.option("-n", "--lines", type=click.IntRange(1), default=40, show_default=True)
@click.pass_obj
def logs(devnet: Devnet, node: str | None, lines: int) -> None:
    """The last lines of one node's log (or of every node's)."""
    nodes = [devnet.node(node)] if node is not None else devnet.nodes
    if not nodes:
        raise DevnetError(f"no devnet under {devnet.root}")
    for info in nodes:
        click.echo(f"==> {info.name}: {info.log}")
        click.echo(tail(info.log, lines))


@main.command()
@click.pass_obj
def down(devnet: Devnet) -> None:
    """Stop every node this devnet started (by PID, after checking each PID's command line). Data stays."""
    stopped = devnet.down(say=click.echo)
    click.echo(f"{len(stopped)} nodes stopped; data and logs stay under {devnet.root}")


@main.command()
@click.argument("groups")
@click.pass_obj
def partition(devnet: Devnet, groups: str) -> None:
    """Split the network: GROUPS like 1,2/3,4 (nodes in different groups stop talking)."""
    devnet.partition(parse_groups(groups, len(devnet.nodes)))
    _print_table(devnet)


@main.command()
@click.pass_obj
def heal(devnet: Devnet) -> None:
    """End every partition: all nodes talk again (and retry each other at once)."""
    devnet.heal()
    _print_table(devnet)


@main.command()
@click.argument("node")
@click.argument("ms", type=click.IntRange(0, 10_000))
@click.pass_obj
def delay(devnet: Devnet, node: str, ms: int) -> None:
    """Add MS milliseconds before every p2p request NODE sends or serves (0 removes it)."""
    click.echo(json.dumps(devnet.set_faults(devnet.node(node), {"delay_ms": ms})))


@main.command(context_settings={"ignore_unknown_options": True})  # so that `skew 3 -30` works
@click.argument("node")
@click.argument("seconds", type=int)
@click.pass_obj
def skew(devnet: Devnet, node: str, seconds: int) -> None:
    """Shift NODE's clock by SECONDS (negative: behind; 0 restores it)."""
    click.echo(json.dumps(devnet.set_faults(devnet.node(node), {"clock_skew": seconds})))


@main.command()
@click.argument("node")
@click.option("--off", is_flag=True, help="Stop misbehaving.")
@click.pass_obj
def byzantine(devnet: Devnet, node: str, off: bool) -> None:
    """Make NODE mine and announce invalid blocks (its peers should ban it)."""
    click.echo(json.dumps(devnet.set_faults(devnet.node(node), {"byzantine": not off})))


@main.command()
@click.argument("node", required=False)
@click.pass_obj
def clear(devnet: Devnet, node: str | None) -> None:
    """Clear every fault of NODE (default: of all nodes)."""
    for info in [devnet.node(node)] if node is not None else devnet.running():
        devnet.api(info, "DELETE", "/api/admin/faults", admin=True)
    _print_table(devnet)


@main.command()
@click.argument("node")
@click.argument("count", type=click.IntRange(1, 1000), default=1)
@click.option("--to", "address", default=None, help="Reward address [default: NODE's wallet or own burn address].")
@click.pass_obj
def generate(devnet: Devnet, node: str, count: int, address: str | None) -> None:
    """Mine COUNT blocks on NODE now (real proof of work) and print their hashes."""
    info = devnet.node(node)
    address = address or info.address or devnet.burn_address(info)
    answer = devnet.api(info, "POST", "/api/mining/generate", {"blocks": count, "address": address}, admin=True)
    click.echo("\n".join(answer["blocks"]))


if __name__ == "__main__":
    sys.exit(main())
