"""Every wallet command and every bad input, through Click's CliRunner (no node needed here)."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from chain.address import encode_address
from chain.params import BITCOIN, DEVNET, REGTEST
from devnet.process import free_port
from tests.wallet.conftest import PASSWORD, fails, fails_json, ok, ok_json, run
from wallet.keystore import Wallet, backup_to_seed, derive_key


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def wallet(tmp_path: Path) -> Path:
    path = tmp_path / "regtest.wallet"
    ok("--network", "regtest", "--wallet", str(path), "create")
    return path


def w(path: Path, *args: str) -> list[str]:
    """Global options for a regtest wallet at ``path`` talking to a node that is not there."""
    return ["--network", "regtest", "--wallet", str(path), "--node", f"http://127.0.0.1:{free_port()}", *args]


# ---------------------------------------------------------------- create / backup / restore


def test_create_makes_a_private_encrypted_file(wallet: Path) -> None:
    assert stat.S_IMODE(wallet.stat().st_mode) == 0o600
    document = json.loads(wallet.read_text())
    assert document["network"] == "regtest" and document["kdf"]["n"] == 1024
    assert len(Wallet.open(wallet, PASSWORD).keys) == 1


def test_create_prints_the_first_address(tmp_path: Path) -> None:
    data = ok_json("--network", "regtest", "--wallet", str(tmp_path / "w"), "create")
    assert data["address"] == Wallet.open(tmp_path / "w", PASSWORD).keys[0].address
    assert data["network"] == "regtest"


def test_create_refuses_to_overwrite(wallet: Path) -> None:
    before = digest(wallet)
    result = fails(*w(wallet, "create"), password="another password")
    assert "already exists" in result.output and "refusing to overwrite" in result.output
    assert digest(wallet) == before


def test_create_prompts_for_the_password_twice(tmp_path: Path) -> None:
    path = tmp_path / "w"
    result = ok("--network", "regtest", "--wallet", str(path), "create", input="one\ntwo\nsame\nsame\n", password=None)
    assert "do not match" in result.output
    assert Wallet.open(path, "same").keys


def test_create_refuses_an_empty_password(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    path = tmp_path / "w"
    error = fails_json("--network", "regtest", "--wallet", str(path), "--password-file", str(empty), "create")
    assert error["code"] == "empty-password"
    assert not path.exists()


def test_password_file_is_read_first_line_only(tmp_path: Path) -> None:
    secret = tmp_path / "pw.txt"
    secret.write_text("from a file\nsecond line is ignored\n")
    path = tmp_path / "w"
    ok("--network", "regtest", "--wallet", str(path), "--password-file", str(secret), "create", password=None)
    assert Wallet.open(path, "from a file").keys
    ok("--network", "regtest", "--wallet", str(path), "--password-file", str(secret), "backup", password="wrong env")


def test_backup_shows_the_seed_with_a_warning(wallet: Path) -> None:
    result = ok(*w(wallet, "backup"))
    assert "WARNING" in result.output and "can spend every coin" in result.output
    seed_line = next(line for line in result.output.splitlines() if line.startswith("    "))
    assert backup_to_seed(seed_line) == Wallet.open(wallet, PASSWORD).seed
    assert result.output.count(seed_line.strip()) == 1  # shown once
    data = ok_json(*w(wallet, "backup"))
    assert backup_to_seed(data["seed"]) == Wallet.open(wallet, PASSWORD).seed and "spend" in data["warning"]


def test_restore_from_the_backup_derives_the_same_keys(wallet: Path, tmp_path: Path) -> None:
    ok(*w(wallet, "address", "--new"))
    seed = ok_json(*w(wallet, "backup"))["seed"]
    restored = tmp_path / "restored.wallet"
    ok(*w(restored, "restore", "--no-scan"), input=f"{seed}\n", password="new password")
    original = Wallet.open(wallet, PASSWORD)
    again = Wallet.open(restored, "new password")
    assert again.seed == original.seed and again.keys[0] == original.keys[0]
    assert ok_json(*w(restored, "address", "--new"), password="new password")["address"] == original.keys[1].address
    seed_file = tmp_path / "seed.txt"
    seed_file.write_text(seed.upper().replace(" ", "-") + "\n")
    from_file = tmp_path / "from-file.wallet"
    data = ok_json(*w(from_file, "restore", "--no-scan", "--seed-file", str(seed_file)))
    assert data["keys"] == 1 and data["address"] == original.keys[0].address


def test_restore_refuses_a_mistyped_seed(wallet: Path, tmp_path: Path) -> None:
    seed = ok_json(*w(wallet, "backup"))["seed"]
    typo = ("1" if seed[0] != "1" else "2") + seed[1:]
    restored = tmp_path / "restored.wallet"
    error = fails_json(*w(restored, "restore", "--no-scan"), input=f"{typo}\n")
    assert error["code"] == "bad-seed" and "checksum" in error["message"]
    assert not restored.exists()
    assert fails_json(*w(restored, "restore", "--no-scan"), input="hello\n")["code"] == "bad-seed"


def test_restore_refuses_to_overwrite(wallet: Path) -> None:
    seed = ok_json(*w(wallet, "backup"))["seed"]
    before = digest(wallet)
    assert fails_json(*w(wallet, "restore", "--no-scan"), input=f"{seed}\n")["code"] == "wallet-exists"
    assert digest(wallet) == before


def test_restore_scan_needs_the_node(wallet: Path, tmp_path: Path) -> None:
    seed = ok_json(*w(wallet, "backup"))["seed"]
    restored = tmp_path / "restored.wallet"
    error = fails_json(*w(restored, "restore"), input=f"{seed}\n")
    assert error["code"] == "unreachable" and "cannot reach the node" in error["message"]
    assert not restored.exists()


# ---------------------------------------------------------------- addresses


def test_address_shows_the_current_and_new_derives_the_next(wallet: Path) -> None:
    first = ok(*w(wallet, "address")).output.strip()
    assert first == Wallet.open(wallet, PASSWORD).keys[0].address
    assert ok(*w(wallet, "address")).output.strip() == first  # showing does not derive
    new = ok_json(*w(wallet, "address", "--new", "--label", "from alice"))
    assert new["index"] == 1 and new["label"] == "from alice" and new["address"] != first
    assert ok(*w(wallet, "address")).output.strip() == new["address"]
    reopened = Wallet.open(wallet, PASSWORD)
    assert reopened.labels == {1: "from alice"}


def test_label_needs_new(wallet: Path) -> None:
    result = fails(*w(wallet, "address", "--label", "x"), exit_code=2)
    assert "--label goes with --new" in result.output


def test_addresses_json_is_a_watch_only_export(wallet: Path) -> None:
    ok(*w(wallet, "address", "--new", "--label", "private note"))
    data = ok_json(*w(wallet, "addresses"), password=None)  # no password, no prompt
    wallet_json = json.loads(wallet.read_text())
    assert data["watch_only"] is True and data["network"] == "regtest"
    assert data["addresses"] == wallet_json["public"]["addresses"]
    text = json.dumps(data)
    assert "private note" not in text and wallet_json["ciphertext"] not in text and "seed" not in text
    plain = ok(*w(wallet, "addresses"), password=None).output
    assert all(entry["address"] in plain for entry in data["addresses"])


def test_wrong_password_exits_nonzero_and_leaves_the_file_identical(wallet: Path) -> None:
    before = digest(wallet)
    for command in (["backup"], ["address"], ["address", "--new"]):
        result = fails(*w(wallet, *command), password="not the password")
        assert "wrong password" in result.output
    assert fails_json(*w(wallet, "backup"), password="nope")["code"] == "wrong-password"
    result = fails(*w(wallet, "backup"), input="bad\n", password=None)  # from the hidden prompt too
    assert "wrong password" in result.output
    assert digest(wallet) == before


@pytest.mark.parametrize("command", [["backup"], ["addresses"], ["balance"], ["address", "--new"]])
def test_tampered_and_truncated_files_are_clean_errors(wallet: Path, command: list[str]) -> None:
    original = wallet.read_text()
    wallet.write_text(original[: len(original) // 2])
    result = fails(*w(wallet, *command))
    assert "corrupt or truncated" in result.output
    document = json.loads(original)
    document["ciphertext"] = ("0" if document["ciphertext"][0] != "0" else "1") + document["ciphertext"][1:]
    wallet.write_text(json.dumps(document))
    if command != ["addresses"] and command != ["balance"]:  # those read public data only
        result = fails(*w(wallet, *command))
        assert "tampered with or corrupted" in result.output


def test_missing_wallet_says_how_to_make_one(tmp_path: Path) -> None:
    error = fails_json(*w(tmp_path / "none.wallet", "balance"))
    assert error["code"] == "no-wallet" and "cairn-wallet create" in error["message"]


def test_wallet_of_another_network_is_named(wallet: Path) -> None:
    for command in (["addresses"], ["backup"]):
        error = fails_json("--network", "devnet", "--wallet", str(wallet), *command)
        assert error["code"] == "wrong-network" and "--network regtest" in error["message"]


def test_default_wallet_path_is_per_network_under_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ok("--network", "regtest", "create", env={"HOME": str(home)})
    ok("create", env={"HOME": str(home)})  # devnet is the default network
    assert (home / ".cairn" / "wallets" / "regtest.wallet").exists()
    assert (home / ".cairn" / "wallets" / "devnet.wallet").exists()
    devnet = ok_json("addresses", env={"HOME": str(home)})["addresses"][0]["address"]
    assert devnet.startswith("C")
    override = tmp_path / "elsewhere.wallet"
    ok("--network", "regtest", "create", env={"HOME": str(home), "CAIRN_WALLET": str(override)})
    assert override.exists()


# ---------------------------------------------------------------- send: every bad input, before any node is asked

OTHER = derive_key(bytes(32), REGTEST, 0).address


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        ([OTHER, "0"], "bad-amount", "zero"),
        ([OTHER, "0.00000000"], "bad-amount", "zero"),
        ([OTHER, "-1"], "bad-amount", "negative"),
        ([OTHER, "-0.5"], "bad-amount", "negative"),
        ([OTHER, "1.000000001"], "bad-amount", "9 decimals"),
        ([OTHER, "ten"], "bad-amount", "not a decimal number"),
        ([OTHER, "1e2"], "bad-amount", "not a decimal number"),
        ([OTHER, "21000000.00000001"], "bad-amount", "more than"),
        (["not-an-address", "1"], "bad-address", "not a valid address"),
        ([OTHER[:-1] + ("x" if OTHER[-1] != "x" else "y"), "1"], "bad-address", "typo"),
        ([derive_key(bytes(32), DEVNET, 0).address, "1"], "wrong-network", "a devnet address, not a regtest address"),
        ([encode_address(bytes(20), BITCOIN), "1"], "wrong-network", "a bitcoin address"),
    ],
)
def test_send_refuses_bad_input_with_a_clear_message(wallet: Path, args: list[str], code: str, words: str) -> None:
    before = digest(wallet)
    error = fails_json(*w(wallet, "send", *args))
    assert error["code"] == code
    assert words in error["message"]
    assert "cannot reach" not in error["message"]  # refused before talking to the node...
    assert digest(wallet) == before  # ...and before deriving a change address
    result = fails(*w(wallet, "send", *args))
    assert result.output.startswith("Error: ")


@pytest.mark.parametrize("fee_rate", ["-1", "abc", "1.5", "100001"])
def test_send_refuses_a_bad_fee_rate(wallet: Path, fee_rate: str) -> None:
    result = fails(*w(wallet, "send", OTHER, "1", "--fee-rate", fee_rate), exit_code=2)
    assert "--fee-rate" in result.output


def test_send_reports_an_unreachable_node(wallet: Path) -> None:
    error = fails_json(*w(wallet, "send", OTHER, "1"))
    assert error["code"] == "unreachable" and "cannot reach the node" in error["message"]


@pytest.mark.parametrize("command", [["balance"], ["history"], ["headers", "export", "--out", "h.bin"]])
def test_unreachable_node_is_a_clean_error(wallet: Path, command: list[str]) -> None:
    result = fails(*w(wallet, *command))
    assert "cannot reach the node at http://127.0.0.1:" in result.output
    assert "Connection refused" in result.output


# ---------------------------------------------------------------- verify / prove usage


TIP = "00" * 32


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["verify", "--tip", TIP], "either --peer URL"),
        (["verify", "--tip", TIP, "--peer", "http://x", "--headers-file", "{file}"], "either --peer URL"),
        (["verify", "--tip", "abc", "--headers-file", "{file}"], "a hash is 64 hex characters"),
        (["verify", "--tip", "zz" * 32, "--headers-file", "{file}"], "not hex"),
        (["verify", "--tip", TIP, "--headers-file", "{file}", "--full"], "--full downloads blocks"),
        (
            ["verify", "--tip", TIP, "--peer", "http://x", "--full", "--network", "bitcoin"],
            "only be checked as headers",
        ),
        (["verify", "--tip", TIP, "--headers-file", "{file}", "--network", "litecoin"], "'litecoin' is not one of"),
        (["prove", "nothex", "--tip", TIP, "--peer", "http://x"], "a hash is 64 hex characters"),
        (["prove", TIP, "--peer", "http://x"], "Missing option '--tip'"),
    ],
)
def test_verify_and_prove_usage_errors(tmp_path: Path, args: list[str], words: str) -> None:
    file = tmp_path / "headers.bin"
    file.write_bytes(REGTEST.genesis_header.serialize())
    result = fails(*[a.replace("{file}", str(file)) for a in args], exit_code=2)
    assert words in result.output


def test_verify_reports_an_unreachable_peer(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run("--network", "regtest", "verify", "--tip", TIP, "--peer", url, "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["valid"] is False and data["bad_sources"] == [url]
    assert data["sources"][0]["reason"] == "unreachable"


def test_help_documents_every_option() -> None:
    for command in ([], ["send"], ["verify"], ["prove"], ["restore"], ["address"], ["headers", "export"]):
        result = ok(*command, "--help")
        assert "--json" in result.output or command == ["headers"]
