"""``scripts/demo``: a three-node devnet, two wallets, a payment, and a light-client check, narrated step by step.

Each step prints one line; the first that fails stops the demo with exit status 1 and
names itself. The devnet lives under ``.devnet/`` (``$CAIRN_DEVNET_DIR``) and is stopped
at the end unless ``--keep`` is given (then ``scripts/devnet status``, ``down``, ... work on it).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from chain.transaction import COIN
from devnet.network import REPO, Devnet, DevnetError
from devnet.process import NodeProcessError, wait_until

AMOUNT_TEXT = "12.5"
AMOUNT = 12 * COIN + COIN // 2
STEP_TIMEOUT = 120.0


class StepFailed(Exception):
    pass


class Demo:
    def __init__(self, devnet: Devnet) -> None:
        self.devnet = devnet
        self.wallets = devnet.root / "wallets"
        self.addresses: dict[str, str] = {}
        self.tip = ""
        self.started = False
        self.step = 0

    def say(self, text: str) -> None:
        click.echo(f"[{self.step}/9] {text}")

    def wallet(self, name: str, *args: str, node_url: str | None = None) -> dict[str, Any]:
        return self.devnet.run_wallet(self.wallets / f"{name}.wallet", "devnet", *args, node_url=node_url)

    def balance(self, address: str, node: Any) -> dict[str, Any]:
        return self.devnet.api(node, "GET", f"/api/addresses/{address}")  # type: ignore[no-any-return]

    def run(self, steps: list[tuple[str, Callable[[], str]]]) -> None:
        for self.step, (title, action) in enumerate(steps, 1):
            started = time.monotonic()
            try:
                detail = action()
            except (StepFailed, DevnetError, NodeProcessError) as exc:
                raise StepFailed(f"step {self.step} ({title}) failed: {exc}") from None
            self.say(f"{title}: {detail} ({time.monotonic() - started:.1f}s)")

    # ------------------------------------------------------------ steps

    def start(self) -> str:
        if self.devnet.running():
            raise StepFailed(f"a devnet is already running under {self.devnet.root}: scripts/devnet down first")
        self.started = True  # from here on, a failure stops what was started
        nodes = self.devnet.up(3, 0, "line", "devnet", say=lambda _text: None)
        return "line node1 - node2 - node3 at " + ", ".join(n.url for n in nodes)

    def create_wallets(self) -> str:
        self.wallets.mkdir(parents=True, exist_ok=True)
        for name in ("alice", "bob"):
            path = self.wallets / f"{name}.wallet"
            path.unlink(missing_ok=True)
            self.addresses[name] = self.wallet(name, "create")["address"]
        return f"alice {self.addresses['alice']}, bob {self.addresses['bob']}"

    def mine_until_mature(self) -> str:
        node1 = self.devnet.node(1)
        self.devnet.api(node1, "POST", "/api/mining/start", {"address": self.addresses["alice"]}, admin=True)
        body = wait_until(
            lambda: (b := self.balance(self.addresses["alice"], node1))["confirmed"] > 0 and b,
            STEP_TIMEOUT,
            "alice's first coinbase to mature",
        )
        height = self.devnet.status_of(node1)["height"]
        return f"node1 mined {height} blocks; alice has {body['confirmed'] / COIN:g} spendable coins"

    def send(self) -> str:
        node1 = self.devnet.node(1)
        sent = self.wallet(
            "alice", "send", self.addresses["bob"], AMOUNT_TEXT, "--wait", "--timeout", "120", node_url=node1.url
        )
        return f"txid {sent['txid'][:16]}… confirmed in block {sent['block'][:16]}… at height {sent['height']}"

    def stop_and_sync(self) -> str:
        node1 = self.devnet.node(1)
        self.devnet.api(node1, "POST", "/api/mining/stop", {}, admin=True)
        nodes = self.devnet.nodes
        tip = wait_until(
            lambda: len({self.devnet.status_of(n)["tip"] for n in nodes}) == 1 and self.devnet.status_of(node1)["tip"],
            STEP_TIMEOUT,
            "the three nodes to agree on one tip",
        )
        self.tip = str(tip)
        return f"mining stopped; all nodes at tip {self.tip[:16]}… height {self.devnet.status_of(node1)['height']}"

    def balances(self) -> str:
        lines = []
        for node in self.devnet.nodes:
            alice = self.wallet("alice", "balance", node_url=node.url)
            bob = self.wallet("bob", "balance", node_url=node.url)
            if bob["confirmed"] != AMOUNT:
                raise StepFailed(f"{node.name} says bob has {bob['confirmed']}, not {AMOUNT}")
            lines.append(
                f"    {node.name}: alice {alice['confirmed'] / COIN:.8f} (+{alice['immature'] / COIN:g} immature), "
                f"bob {bob['confirmed'] / COIN:.8f}"
            )
        click.echo("\n".join(lines))
        return "every node agrees bob holds 12.5 coins"

    def verify(self) -> str:
        nodes = self.devnet.nodes
        args = ["verify", "--tip", self.tip]
        for node in nodes[1:]:
            args += ["--peer", node.url]
        report = self.wallet("alice", *args)
        if not report.get("valid"):
            raise StepFailed(f"cairn-wallet verify did not accept the chain: {report}")
        sources = len(report["sources"])
        return f"trusted tip from node1; {sources} header chains (node2, node3) valid up to height {report['height']}"

    def explorer(self) -> str:
        return f"open {self.devnet.node(1).url}/ in a browser"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--keep", is_flag=True, help="Leave the devnet running at the end (stop it with scripts/devnet down).")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None, help="Devnet directory.")
def main(keep: bool, root: Path | None) -> None:
    """Start a 3-node devnet, pay from one wallet to another, check everything, and say what happened."""
    devnet = Devnet(root.resolve() if root is not None else None)
    demo = Demo(devnet)
    steps: list[tuple[str, Callable[[], str]]] = [
        ("start a 3-node devnet", demo.start),
        ("create wallets alice and bob", demo.create_wallets),
        ("mine to alice until her coins mature (10 confirmations)", demo.mine_until_mature),
        (f"alice sends {AMOUNT_TEXT} coins to bob and waits for a block", demo.send),
        ("stop mining and wait for every node to agree", demo.stop_and_sync),
        ("balances as seen from every node", demo.balances),
        ("cairn-wallet verify: trusted tip from node1, headers from node2 and node3", demo.verify),
        ("explorer", demo.explorer),
    ]
    steps.append(("leave the devnet running" if keep else "stop the devnet", lambda: finish(devnet, keep)))
    click.echo(f"Cairn demo: a devnet under {devnet.root} (checkout {REPO})")
    failed = False
    try:
        demo.run(steps)
    except StepFailed as exc:
        click.echo(f"demo FAILED at {exc}", err=True)
        failed = True
    finally:
        if failed and not keep and demo.started:  # never stop a devnet this run did not start
            devnet.down(say=lambda _text: None)
    if failed:
        sys.exit(1)
    click.echo("demo finished: every step passed")


def finish(devnet: Devnet, keep: bool) -> str:
    if keep:
        return "scripts/devnet status | logs | partition 1/2,3 | heal | down"
    stopped = devnet.down(say=lambda _text: None)
    return f"{len(stopped)} nodes stopped (logs stay under {devnet.root})"


if __name__ == "__main__":
    main()
