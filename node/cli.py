"""``cairn-node``: run a Cairn peer node.

    cairn-node run                                  # devnet, ~/.cairn/devnet, port 8700
    cairn-node run --network regtest --port 8801 --peer http://127.0.0.1:8701 --mine --mine-to mk...

SIGTERM or Ctrl-C shuts down cleanly: the HTTP server stops taking requests and
finishes those in flight, the miner stops, peers and sync stop, the database closes.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from pathlib import Path
from types import FrameType

import click
from waitress import create_server

from chain.address import decode_address
from chain.errors import AddressError, StorageError
from chain.hashes import hex_to_hash
from chain.params import get_network
from node import VERSION
from node.config import DEFAULT_HOST, DEFAULT_PORTS, NODE_NETWORKS, NodeConfig, default_datadir
from node.errors import BadRequest
from node.peers import normalize_url

log = logging.getLogger("node")


@click.group(help="The Cairn peer node.")
@click.version_option(VERSION, prog_name="cairn-node")
def main() -> None:
    pass


def _check_port(host: str, port: int) -> None:
    """Fail early, with a clean message, when the address is taken (waitress would leak its socket)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@main.command(help="Run a node until SIGTERM or Ctrl-C.")
@click.option(
    "--network", type=click.Choice(NODE_NETWORKS), default="devnet", show_default=True, help="Network to join."
)
@click.option(
    "--datadir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="CAIRN_DATADIR",
    default=None,
    help="Data directory [default: ~/.cairn/<network>].",
)
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port [default: 8700 devnet, 8701 regtest].")
@click.option("--peer", "peers", multiple=True, help="URL of a peer to connect to (repeatable).")
@click.option("--mine", is_flag=True, help="Mine continuously (needs --mine-to).")
@click.option("--mine-to", default=None, help="Address block rewards are paid to.")
@click.option(
    "--miner-processes",
    type=click.IntRange(0, 256),
    default=0,
    show_default=True,
    help="Worker processes searching nonces (0: the miner thread itself).",
)
@click.option(
    "--mine-interval",
    type=click.FloatRange(0, 3600),
    default=0.0,
    show_default=True,
    help="Seconds the miner rests after each block (paces mining where difficulty is trivial, e.g. regtest).",
)
@click.option(
    "--fork-choice",
    type=click.Choice(["work", "length"]),
    default="work",
    show_default=True,
    help="Best chain by most work, or (devnet only, a teaching switch) by most blocks.",
)
@click.option("--assume-valid", default=None, help="Block hash whose ancestors' signatures are not re-verified.")
@click.option("--max-peers", type=click.IntRange(1, 1000), default=8, show_default=True, help="Peer table size.")
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
    help="Logging level.",
)
@click.option(
    "--debug-max-db-pages",
    type=click.IntRange(0),
    default=0,
    hidden=True,
    help="Test knob: cap the chain database at this many pages, to exercise a full disk (0: no cap).",
)
def run(
    network: str,
    datadir: Path | None,
    host: str,
    port: int | None,
    peers: tuple[str, ...],
    mine: bool,
    mine_to: str | None,
    miner_processes: int,
    mine_interval: float,
    fork_choice: str,
    assume_valid: str | None,
    max_peers: int,
    log_level: str,
    debug_max_db_pages: int,
) -> None:
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    logging.getLogger("urllib3").setLevel(logging.INFO)
    params = get_network(network)
    if mine and mine_to is None:
        raise click.ClickException("--mine needs --mine-to ADDRESS")
    if fork_choice == "length" and network != "devnet":
        raise click.ClickException("--fork-choice length is a devnet-only teaching switch")
    if mine_to is not None:
        try:
            decode_address(mine_to, params)
        except AddressError as exc:
            raise click.ClickException(f"--mine-to: {exc.message}") from None
    try:
        peer_urls = tuple(normalize_url(p) for p in peers)
    except BadRequest as exc:
        raise click.ClickException(f"--peer: {exc.message}") from None
    try:
        assumed = hex_to_hash(assume_valid) if assume_valid else None
    except ValueError as exc:
        raise click.ClickException(f"--assume-valid: {exc}") from None
    config = NodeConfig(
        network=network,
        datadir=(datadir or default_datadir(network)).expanduser(),
        host=host,
        port=port or DEFAULT_PORTS[network],
        peers=peer_urls,
        mine=mine,
        mine_to=mine_to,
        miner_processes=miner_processes,
        mine_interval=mine_interval,
        fork_choice=fork_choice,
        assume_valid=assumed,
        max_peers=max_peers,
        max_db_pages=debug_max_db_pages,
    )
    _check_port(config.host, config.port)
    from node.app import create_app  # imported here so `cairn-node --help` stays fast
    from node.service import Node

    try:
        node = Node(config)
    except StorageError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        server = create_server(
            create_app(node),
            host=config.host,
            port=config.port,
            threads=config.threads,
            connection_limit=config.connection_limit,
        )
    except OSError as exc:
        node.stop()
        raise click.ClickException(f"cannot listen on {config.host}:{config.port}: {exc}") from None
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    node.on_fatal = lambda: os.kill(os.getpid(), signal.SIGTERM)  # e.g. disk full: shut down as on SIGTERM
    try:
        node.start()
        log.info("serving on %s (datadir %s)", config.url, config.datadir)
        server.run()  # returns after SIGTERM/SIGINT, once the requests in flight are done
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        log.info("shutting down")
        server.close()
        node.stop()
    if node.fatal is not None:
        raise click.ClickException(f"stopped: {node.fatal}")


if __name__ == "__main__":
    main()
