"""``cairn-wallet``: keys in an encrypted file, payments signed locally, and light-client verification.

Private keys never leave this process: the node is only ever sent signed transactions.
Every command prints text for people, or JSON with ``--json`` (before or after the
command name); errors are one line (or ``{"error": {"code", "message"}}``) and exit 1.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from chain.address import decode_address
from chain.errors import ValidationError
from chain.hashes import hash_to_hex, hex_to_hash
from chain.params import NETWORKS, get_network
from wallet.amounts import format_amount, parse_amount
from wallet.client import NodeClient
from wallet.errors import NodeError, VerificationFailed, WalletError
from wallet.keystore import WALLET_NETWORKS, Wallet, WalletFile, WalletKey, backup_to_seed, derive_key, seed_to_backup
from wallet.spend import Utxo, build_payment, describe, select_coins
from wallet.verify import (
    SourceReport,
    export_headers,
    mark_forks,
    prove_payment,
    verify_file,
    verify_peer,
    verify_peer_blocks,
)

DEFAULT_NODES = {"devnet": "http://127.0.0.1:8700", "regtest": "http://127.0.0.1:8701"}
PASSWORD_ENV = "CAIRN_WALLET_PASSWORD"
WALLET_ENV = "CAIRN_WALLET"
DEFAULT_FEE_RATE = 1  # units per byte; Cairn nodes have no minimum relay fee
MAX_FEE_RATE = 100_000
DEFAULT_GAP = 20
BACKUP_WARNING = (
    "Anyone who sees this seed can spend every coin of this wallet, on every network. Write it on paper, "
    "keep it somewhere safe and offline, and never type it into a website or a chat."
)


@dataclass
class State:
    """Global options, shared by every command."""

    wallet: Path | None
    node: str | None
    network: str
    password_file: Path | None
    json: bool = False

    @property
    def wallet_path(self) -> Path:
        if self.wallet is not None:
            return self.wallet
        env = os.environ.get(WALLET_ENV)
        if env:
            return Path(env).expanduser()
        return Path.home() / ".cairn" / "wallets" / f"{self.network}.wallet"

    @property
    def node_url(self) -> str:
        return self.node or DEFAULT_NODES[self.network]

    def client(self, url: str | None = None) -> NodeClient:
        return NodeClient(url or self.node_url)

    def password(self, *, confirm: bool = False) -> str:
        if self.password_file is not None:
            try:
                lines = self.password_file.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise WalletError(f"cannot read the password file {self.password_file}: {exc}") from None
            if not lines or not lines[0]:
                raise WalletError(f"the password file {self.password_file} is empty", code="empty-password")
            return lines[0]
        env = os.environ.get(PASSWORD_ENV)
        if env:
            return env
        return str(click.prompt("Wallet password", hide_input=True, confirmation_prompt=confirm, err=True))

    def open_wallet(self) -> Wallet:
        path = self.wallet_path
        WalletFile.read(path)  # a missing or corrupt file is reported before asking for a password
        return Wallet.open(path, self.password(), self.network)

    def public_wallet(self) -> WalletFile:
        stored = WalletFile.read(self.wallet_path)
        if stored.network != self.network:
            raise WalletError(
                f"{self.wallet_path} is a {stored.network} wallet, not {self.network}: pass --network {stored.network}",
                code="wrong-network",
            )
        return stored

    def emit(self, data: dict[str, Any], text: str | Callable[[], str]) -> None:
        if self.json:
            click.echo(json.dumps(data, indent=2))
        else:
            click.echo(text() if callable(text) else text)


pass_state = click.make_pass_decorator(State)


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.ensure_object(State).json = True
    return value


json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    expose_value=False,
    callback=_set_json,
    help="Print machine-readable JSON instead of text.",
)


class WalletGroup(click.Group):
    """Turns every WalletError and consensus rejection into one clean message and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except WalletError as exc:
            self._fail(ctx, exc.code, exc.message)
        except ValidationError as exc:
            self._fail(ctx, exc.reason, exc.message)

    @staticmethod
    def _fail(ctx: click.Context, code: str, message: str) -> None:
        state = ctx.find_object(State)
        if state is not None and state.json:
            click.echo(json.dumps({"error": {"code": code, "message": message}}, indent=2))
            ctx.exit(1)
        raise click.ClickException(message)


@click.group(cls=WalletGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--wallet",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Wallet file. Default: ${WALLET_ENV}, else ~/.cairn/wallets/<network>.wallet.",
)
@click.option(
    "--node",
    envvar="CAIRN_NODE",
    default=None,
    metavar="URL",
    help="Node to talk to ($CAIRN_NODE). Default: the local node of the network (devnet :8700, regtest :8701).",
)
@click.option(
    "--network",
    type=click.Choice(WALLET_NETWORKS),
    default="devnet",
    show_default=True,
    help="Network of the wallet and node.",
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help=f"Read the wallet password from the first line of FILE (else ${PASSWORD_ENV}, else a hidden prompt).",
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of text.")
@click.pass_context
def cli(
    ctx: click.Context, wallet: Path | None, node: str | None, network: str, password_file: Path | None, as_json: bool
) -> None:
    """Cairn wallet: keys in an encrypted file; transactions are built and signed here, never on the node."""
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)  # retries are reported once, as an error
    ctx.obj = State(wallet, node, network, password_file, as_json)


# ---------------------------------------------------------------- keystore commands


@cli.command()
@json_option
@pass_state
def create(state: State) -> None:
    """Create a new wallet from a fresh random seed (never overwrites an existing one)."""
    path = state.wallet_path
    if path.exists():
        raise WalletError(f"a wallet already exists at {path}; refusing to overwrite it", code="wallet-exists")
    wallet = Wallet.create(path, state.network, state.password(confirm=True))
    address = wallet.receive_keys[-1].address
    state.emit(
        {"wallet": str(path), "network": state.network, "address": address},
        f"Created a {state.network} wallet at {path}\nFirst address: {address}\n"
        "Run `cairn-wallet backup` now and write the seed down: it is the only way to recover the wallet.",
    )


@cli.command()
@click.option(
    "--seed-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Read the backup seed from FILE instead of a hidden prompt.",
)
@click.option(
    "--scan/--no-scan",
    default=True,
    show_default=True,
    help="Ask the node which derived addresses were used, to restore all of them.",
)
@click.option(
    "--gap",
    type=click.IntRange(1, 1000),
    default=DEFAULT_GAP,
    show_default=True,
    help="Stop scanning after this many unused addresses in a row.",
)
@json_option
@pass_state
def restore(state: State, seed_file: Path | None, scan: bool, gap: int) -> None:
    """Recreate a wallet from its backup seed, with a new password."""
    path = state.wallet_path
    if path.exists():
        raise WalletError(f"a wallet already exists at {path}; refusing to overwrite it", code="wallet-exists")
    if seed_file is not None:
        text = seed_file.read_text(encoding="utf-8", errors="replace")
    else:
        text = click.prompt("Backup seed", hide_input=True, err=True)
    seed = backup_to_seed(text)
    params = get_network(state.network)
    count = 1
    if scan:
        with state.client() as client:
            unused, index = 0, 0
            while unused < gap:
                key = derive_key(seed, params, index)
                if client.address_history(key.address).get("transactions"):
                    count, unused = index + 1, 0
                else:
                    unused += 1
                index += 1
    wallet = Wallet.create(path, state.network, state.password(confirm=True), seed=seed, key_count=count)
    state.emit(
        {"wallet": str(path), "network": state.network, "keys": count, "address": wallet.keys[-1].address},
        f"Restored a {state.network} wallet at {path} with {count} address{'es' if count > 1 else ''}"
        + (" (scanned on the node)" if scan else "")
        + f"\nLatest address: {wallet.keys[-1].address}",
    )


@cli.command()
@json_option
@pass_state
def backup(state: State) -> None:
    """Show the backup seed (once, on this screen) with a warning."""
    wallet = state.open_wallet()
    words = seed_to_backup(wallet.seed)
    state.emit(
        {"seed": words, "warning": BACKUP_WARNING},
        f"WARNING: {BACKUP_WARNING}\n\n    {words}\n\nRestore with: cairn-wallet restore",
    )


@cli.command()
@click.option("--new", "new", is_flag=True, help="Derive the next address instead of showing the current one.")
@click.option("--label", default=None, help="With --new: a private note kept (encrypted) with the address.")
@json_option
@pass_state
def address(state: State, new: bool, label: str | None) -> None:
    """Show the address to be paid at (asks for the password: it proves the address is this wallet's)."""
    if label is not None and not new:
        raise click.UsageError("--label goes with --new")
    wallet = state.open_wallet()
    key = wallet.new_key(label=label) if new else wallet.receive_keys[-1]
    state.emit(
        {"address": key.address, "index": key.index, "label": wallet.labels.get(key.index), "new": new},
        key.address,
    )


@cli.command()
@json_option
@pass_state
def addresses(state: State) -> None:
    """List every address (watch-only: public data, no password needed)."""
    stored = state.public_wallet()
    data = {
        "network": stored.network,
        "watch_only": True,
        "addresses": [k.to_json() for k in stored.keys],
    }
    state.emit(
        data,
        lambda: "\n".join(f"{k.index:>4}  {k.address}{'  (change)' if k.change else ''}" for k in stored.keys),
    )


# ---------------------------------------------------------------- talking to the node


def _int_field(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise NodeError(f"the node's answer lacks an integer {name!r}", code="bad-response")
    return value


def wallet_utxos(client: NodeClient, keys: list[WalletKey]) -> list[Utxo]:
    utxos = []
    for key in keys:
        body = client.address(key.address)
        items = body.get("utxos")
        if not isinstance(items, list):
            raise NodeError("the node's address answer has no list of utxos", code="bad-response")
        utxos += [Utxo.from_json(item, key.pubkey_hash) for item in items]
    return utxos


@cli.command()
@json_option
@pass_state
def balance(state: State) -> None:
    """Confirmed, unconfirmed and immature (coinbase) balance of every address (no password needed)."""
    stored = state.public_wallet()
    totals = {"confirmed": 0, "unconfirmed": 0, "immature": 0}
    per_address = []
    with state.client() as client:
        height = _int_field(client.status(), "height")
        for key in stored.keys:
            body = client.address(key.address)
            amounts = {name: _int_field(body, name) for name in totals}
            for name, value in amounts.items():
                totals[name] += value
            if any(amounts.values()):
                per_address.append({"address": key.address, **amounts})
    data = {"network": stored.network, "node": state.node_url, "height": height, **totals, "addresses": per_address}

    def text() -> str:
        lines = [
            f"confirmed:    {format_amount(totals['confirmed']):>20}",
            f"unconfirmed:  {format_amount(totals['unconfirmed']):>20}",
            f"immature:     {format_amount(totals['immature']):>20}  (coinbase, not yet spendable)",
            f"(node {state.node_url} at height {height})",
        ]
        return "\n".join(lines)

    state.emit(data, text)


@cli.command()
@click.option("--limit", type=click.IntRange(1), default=None, help="Show only the newest N transactions.")
@json_option
@pass_state
def history(state: State, limit: int | None) -> None:
    """Transactions paying or spending the wallet's addresses: txid, amount in/out, confirmations, time."""
    stored = state.public_wallet()
    merged: dict[str, dict[str, Any]] = {}
    with state.client() as client:
        for key in stored.keys:
            body = client.address_history(key.address)
            items = body.get("transactions")
            if not isinstance(items, list):
                raise NodeError("the node's history answer has no list of transactions", code="bad-response")
            for item in items:
                try:
                    txid = str(item["txid"])
                    entry = merged.setdefault(
                        txid,
                        {
                            "txid": txid,
                            "height": item.get("height"),
                            "block": item.get("block"),
                            "confirmations": int(item.get("confirmations") or 0),
                            "time": item.get("time"),
                            "received": 0,
                            "sent": 0,
                        },
                    )
                    entry["received"] += int(item["received"])
                    entry["sent"] += int(item["sent"])
                except (KeyError, TypeError, ValueError) as exc:
                    raise NodeError(f"the node sent a malformed history entry ({exc!r})", code="bad-response") from None
    rows = sorted(merged.values(), key=lambda e: (e["height"] is not None, -(e["height"] or 0), e["txid"]))
    for row in rows:
        row["net"] = row["received"] - row["sent"]
    if limit is not None:
        rows = rows[:limit]

    def text() -> str:
        if not rows:
            return "no transactions yet"
        lines = [f"{'txid':64}  {'in':>18}  {'out':>18}  {'conf':>5}  time"]
        for row in rows:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row["time"])) if row["time"] else "unconfirmed"
            lines.append(
                f"{row['txid']}  {format_amount(row['received']):>18}  {format_amount(row['sent']):>18}  "
                f"{row['confirmations']:>5}  {when}"
            )
        return "\n".join(lines)

    state.emit({"network": stored.network, "transactions": rows}, text)


def wait_for_confirmation(client: NodeClient, txid: str, timeout: float, interval: float = 0.5) -> dict[str, Any]:
    """Poll the node until ``txid`` has a confirmation; WalletError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            body = client.transaction(txid)
            if isinstance(body.get("confirmations"), int) and body["confirmations"] >= 1 and body.get("block"):
                return body
        except NodeError as exc:
            if exc.code != "not-found":
                raise
        if time.monotonic() >= deadline:
            raise WalletError(
                f"transaction {txid} was sent but not confirmed within {timeout:g}s; it may still confirm",
                code="not-confirmed",
            )
        time.sleep(interval)


@cli.command(context_settings={"ignore_unknown_options": True})  # so that "-1" is an amount, refused by name
@click.argument("to_address", metavar="ADDRESS")
@click.argument("amount_text", metavar="AMOUNT")
@click.option(
    "--fee-rate",
    type=click.IntRange(0, MAX_FEE_RATE),
    default=DEFAULT_FEE_RATE,
    show_default=True,
    help="Fee in units per byte of the signed transaction.",
)
@click.option("--wait", is_flag=True, help="Wait until the transaction is in a block, then print the block.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    help="With --wait: give up after this many seconds.",
)
@json_option
@pass_state
def send(state: State, to_address: str, amount_text: str, fee_rate: int, wait: bool, timeout: float) -> None:
    """Pay AMOUNT coins to ADDRESS, with change to a new address of the wallet.

    AMOUNT is decimal text with at most 8 decimals (1.25, 0.00000001), never rounded.
    """
    params = get_network(state.network)
    amount = parse_amount(amount_text)
    pay_to = decode_address(to_address, params)
    wallet = state.open_wallet()
    with state.client() as client:
        utxos = wallet_utxos(client, wallet.keys)
        selection = select_coins(utxos, amount, fee_rate)
        change_key = wallet.new_key(change=True) if selection.change else None
        tx = build_payment(
            selection,
            pay_to,
            change_key.pubkey_hash if change_key else None,
            {k.pubkey_hash: wallet.secret(k.index) for k in wallet.keys},
            params,
        )
        txid = client.submit_transaction(tx.serialized)
        if txid != hash_to_hex(tx.txid):
            raise NodeError(f"the node answered with txid {txid}, not {hash_to_hex(tx.txid)}", code="bad-response")
        data = {
            **describe(tx, selection),
            "to": to_address,
            "change_address": change_key.address if change_key else None,
        }
        lines = [
            f"sent {format_amount(amount)} to {to_address}",
            f"txid:   {txid}",
            f"fee:    {format_amount(selection.fee)} ({fee_rate} per byte x {tx.size} bytes)",
        ]
        if change_key:
            lines.append(f"change: {format_amount(selection.change)} to {change_key.address}")
        if wait:
            if not state.json:
                click.echo("\n".join(lines))
                lines = []
                click.echo("waiting for a confirmation...", err=True)
            confirmed = wait_for_confirmation(client, txid, timeout)
            data.update(block=confirmed["block"], height=confirmed.get("height"))
            lines.append(f"confirmed in block {confirmed['block']} at height {confirmed.get('height')}")
    state.emit(data, "\n".join(lines))


# ---------------------------------------------------------------- light-client verification


def _parse_tip(_ctx: click.Context, _param: click.Parameter, value: str) -> bytes:
    try:
        return hex_to_hash(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


tip_option = click.option(
    "--tip",
    required=True,
    callback=_parse_tip,
    metavar="HASH",
    help="Hash of a block you trust (from your own node, a friend, a book).",
)
verify_network_option = click.option(
    "--network",
    "network_name",
    type=click.Choice(tuple(NETWORKS)),
    default=None,
    help="Rules to check under (default: the global --network; bitcoin reads Bitcoin's own headers).",
)


@contextmanager
def progress_bar(state: State, label: str, length: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (never in --json output); yields ``update(height)``."""
    if state.json:
        yield lambda _height: None
        return
    with click.progressbar(length=max(1, length or 1), label=label, file=sys.stderr) as bar:
        done = 0

        def update(height: int) -> None:
            nonlocal done
            if height > done:
                bar.update(height - done)
                done = height

        yield update


def _peer_height(url: str) -> int | None:
    try:
        with NodeClient(url, timeout=5.0) as client:
            height = client.status().get("height")
    except NodeError:
        return None
    return height if isinstance(height, int) else None


@cli.command()
@tip_option
@click.option("--peer", "peers", multiple=True, metavar="URL", help="An untrusted node to download from (repeatable).")
@click.option(
    "--headers-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Raw 80-byte headers back to back (genesis first), e.g. from `cairn-wallet headers export`.",
)
@verify_network_option
@click.option("--full", is_flag=True, help="Also download every block and re-validate every transaction.")
@json_option
@pass_state
def verify(
    state: State, tip: bytes, peers: tuple[str, ...], headers_file: Path | None, network_name: str | None, full: bool
) -> None:
    """Validate every header from genesis to the trusted tip, from each peer or a header file.

    Exit status 0 only when at least one source's chain ends validly at the trusted tip.
    """
    if bool(peers) == (headers_file is not None):
        raise click.UsageError("give either --peer URL (one or more) or --headers-file FILE")
    params = get_network(network_name or state.network)
    if full and headers_file is not None:
        raise click.UsageError("--full downloads blocks from peers: it needs --peer")
    if full and params.genesis_block is None:
        raise click.UsageError(f"--full checks Cairn blocks; {params.name} headers can only be checked as headers")
    now = int(time.time())
    reports: list[SourceReport] = []
    if headers_file is not None:
        size = headers_file.stat().st_size
        with progress_bar(state, f"headers from {headers_file.name}", size // 80) as update:
            reports.append(verify_file(headers_file, params, tip, now, update))
    for url in peers:
        with progress_bar(state, f"headers from {url}", _peer_height(url)) as update:
            report = verify_peer(url, params, tip, now, progress=update)
        if full and report.ok:
            with progress_bar(state, f"blocks from {url}", report.height) as update:
                verify_peer_blocks(report, params, update)
        reports.append(report)
    mark_forks(reports)
    valid = [r for r in reports if r.ok]
    data = {
        "network": params.name,
        "tip": hash_to_hex(tip),
        "valid": bool(valid),
        "height": valid[0].height if valid else None,
        "full": full,
        "sources": [r.to_json() for r in reports],
        "bad_sources": [r.source for r in reports if not r.ok],
    }
    lines = [f"trusted tip {hash_to_hex(tip)} ({params.name})"]
    lines += [f"{'ok ' if r.ok else 'BAD'} {r.source}: {r.summary()}" for r in reports]
    if valid:
        lines.append(f"VALID: the chain ending at the trusted tip checks out (height {valid[0].height})")
        state.emit(data, "\n".join(lines))
        return
    if state.json:
        state.emit(data, "")
        raise click.exceptions.Exit(1)
    click.echo("\n".join(lines))
    raise VerificationFailed("no source served a valid chain ending at the trusted tip")


@cli.command()
@click.argument("txid_hex", metavar="TXID")
@tip_option
@click.option("--peer", required=True, metavar="URL", help="An untrusted node to fetch the headers and the proof from.")
@verify_network_option
@json_option
@pass_state
def prove(state: State, txid_hex: str, tip: bytes, peer: str, network_name: str | None) -> None:
    """Check a transaction's merkle proof against the header chain validated up to the trusted tip."""
    try:
        txid = hex_to_hash(txid_hex)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="TXID") from None
    params = get_network(network_name or state.network)
    with state.client(peer) as client, progress_bar(state, f"headers from {peer}", _peer_height(peer)) as update:
        proof = prove_payment(client, params, txid, tip, int(time.time()), update)
    state.emit(
        proof.to_json(),
        f"PROVEN: transaction {proof.txid}\n  is number {proof.index} of {proof.tx_count} in block {proof.block}\n"
        f"  at height {proof.height}, {proof.confirmations} confirmation(s) up to the trusted tip",
    )


@cli.group()
def headers() -> None:
    """Raw header files."""


@headers.command("export")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="File to write the headers to."
)
@json_option
@pass_state
def headers_export(state: State, out: Path) -> None:
    """Save the node's active chain as raw 80-byte headers, genesis first (for `verify --headers-file`)."""
    params = get_network(state.network)
    with state.client() as client, progress_bar(state, "exporting headers", _peer_height(state.node_url)) as update:
        tip = export_headers(client, params, out, update)
    height = out.stat().st_size // 80 - 1
    state.emit(
        {"file": str(out), "height": height, "last": tip},
        f"wrote {height + 1} headers (heights 0 to {height}) to {out}\nlast header: {tip}\n"
        "The file is unverified: check it with `cairn-wallet verify --tip HASH --headers-file FILE`.",
    )


def main() -> None:
    cli(prog_name="cairn-wallet")
