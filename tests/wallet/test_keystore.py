"""The encrypted wallet file: derivation, sealing, wrong passwords, tampering, truncation, atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from chain.address import decode_address
from chain.crypto import SECP256K1_ORDER, public_key
from chain.hashes import hash160
from chain.params import DEVNET, REGTEST
from wallet.errors import CorruptWallet, KeystoreError, WalletError, WrongPassword
from wallet.keystore import (
    MAX_SCRYPT_N,
    SCRYPT_N,
    SCRYPT_N_ENV,
    Wallet,
    WalletFile,
    backup_to_seed,
    default_scrypt_n,
    derive_key,
    derive_secret,
    seed_to_backup,
    write_atomically,
)

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"
SEED = bytes(range(32))


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented test knob: a low (recorded) scrypt cost so each unlock takes milliseconds."""
    monkeypatch.setenv(SCRYPT_N_ENV, "1024")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def wallet_path(tmp_path: Path) -> Path:
    path = tmp_path / "wallets" / "regtest.wallet"
    Wallet.create(path, "regtest", PASSWORD, seed=SEED)
    return path


def edit(path: Path, change: object) -> None:
    """Rewrite the JSON document with ``change(document)`` applied (an attacker with write access)."""
    document = json.loads(path.read_text())
    change(document)  # type: ignore[operator]
    path.write_text(json.dumps(document))


# ---------------------------------------------------------------- derivation and backups


def test_keys_derive_deterministically_per_network_and_index() -> None:
    first = derive_secret(SEED, "regtest", 0)
    assert first == derive_secret(SEED, "regtest", 0)
    secrets = {derive_secret(SEED, net, i) for net in ("regtest", "devnet") for i in range(20)}
    assert len(secrets) == 40
    assert all(1 <= int.from_bytes(s, "big") < SECP256K1_ORDER for s in secrets)
    assert derive_secret(bytes(32), "regtest", 0) != first


def test_derived_key_matches_its_address() -> None:
    key = derive_key(SEED, REGTEST, 3)
    assert key.pubkey == public_key(derive_secret(SEED, "regtest", 3))
    assert decode_address(key.address, REGTEST) == hash160(key.pubkey) == key.pubkey_hash
    assert key.address[0] in "mn"
    assert derive_key(SEED, DEVNET, 3).address.startswith("C")


def test_backup_round_trips_and_ignores_spacing_and_case() -> None:
    text = seed_to_backup(SEED)
    groups = text.split()
    assert len(groups) == 9 and all(len(g) == 8 for g in groups)
    assert backup_to_seed(text) == SEED
    assert backup_to_seed(text.upper().replace(" ", "-")) == SEED
    assert backup_to_seed("\n".join(groups) + "\n") == SEED


@pytest.mark.parametrize("position", [0, 7, 40, 63, 64, 71])
def test_backup_with_a_typo_is_refused(position: int) -> None:
    digits = seed_to_backup(SEED).replace(" ", "")
    typo = digits[:position] + ("0" if digits[position] != "0" else "1") + digits[position + 1 :]
    with pytest.raises(WalletError) as exc:
        backup_to_seed(typo)
    assert exc.value.code == "bad-seed"
    assert "checksum" in exc.value.message


@pytest.mark.parametrize("text", ["", "abc", "zz" * 36, seed_to_backup(SEED) + "00"])
def test_backup_of_wrong_shape_is_refused(text: str) -> None:
    with pytest.raises(WalletError) as exc:
        backup_to_seed(text)
    assert exc.value.code == "bad-seed"


# ---------------------------------------------------------------- creating and opening


def test_create_then_open_round_trips(wallet_path: Path) -> None:
    wallet = Wallet.open(wallet_path, PASSWORD, "regtest")
    assert wallet.seed == SEED
    assert [k.address for k in wallet.keys] == [derive_key(SEED, REGTEST, 0).address]
    stored = WalletFile.read(wallet_path)
    assert stored.network == "regtest"
    assert stored.kdf.n == 1024 and stored.kdf.r == 8 and stored.kdf.p == 1  # the parameters used are recorded
    assert len(stored.kdf.salt) == 16
    document = json.loads(wallet_path.read_text())
    assert document["cipher"]["name"] == "chacha20-poly1305"
    assert document["kdf"]["name"] == "scrypt"
    assert SEED.hex() not in wallet_path.read_text()


def test_file_and_directory_are_private(wallet_path: Path) -> None:
    assert stat.S_IMODE(wallet_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(wallet_path.parent.stat().st_mode) == 0o700
    wallet = Wallet.open(wallet_path, PASSWORD)
    wallet.new_key()
    assert stat.S_IMODE(wallet_path.stat().st_mode) == 0o600


def test_new_keys_and_labels_persist(wallet_path: Path) -> None:
    wallet = Wallet.open(wallet_path, PASSWORD)
    second = wallet.new_key(label="rent")
    change = wallet.new_key(change=True)
    reopened = Wallet.open(wallet_path, PASSWORD)
    assert [k.index for k in reopened.keys] == [0, 1, 2]
    assert reopened.keys[1] == second and reopened.labels == {1: "rent"}
    assert reopened.keys[2] == change and change.change
    assert [k.index for k in reopened.receive_keys] == [0, 1]
    assert "rent" not in wallet_path.read_text()  # labels are private: inside the ciphertext


def test_default_scrypt_cost_is_strong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SCRYPT_N_ENV)
    assert default_scrypt_n() == SCRYPT_N >= 2**15


@pytest.mark.parametrize("value", ["1000", "512", str(MAX_SCRYPT_N * 2), "lots"])
def test_scrypt_knob_refuses_bad_values(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(SCRYPT_N_ENV, value)
    with pytest.raises(KeystoreError):
        default_scrypt_n()


def test_create_refuses_to_overwrite(wallet_path: Path) -> None:
    before = digest(wallet_path)
    with pytest.raises(KeystoreError) as exc:
        Wallet.create(wallet_path, "regtest", "other password")
    assert exc.value.code == "wallet-exists"
    assert digest(wallet_path) == before


def test_atomic_create_never_overwrites_even_past_the_exists_check(wallet_path: Path) -> None:
    before = digest(wallet_path)
    with pytest.raises(KeystoreError) as exc:
        write_atomically(wallet_path, b"{}", overwrite=False)  # what a racing second `create` would reach
    assert exc.value.code == "wallet-exists"
    assert digest(wallet_path) == before
    assert sorted(p.name for p in wallet_path.parent.iterdir()) == [wallet_path.name]


def test_empty_password_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError) as exc:
        Wallet.create(tmp_path / "w", "regtest", "")
    assert exc.value.code == "empty-password"
    assert not (tmp_path / "w").exists()


def test_missing_wallet_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError) as exc:
        Wallet.open(tmp_path / "nothing.wallet", PASSWORD)
    assert exc.value.code == "no-wallet"


def test_network_mismatch_is_named(wallet_path: Path) -> None:
    with pytest.raises(KeystoreError) as exc:
        Wallet.open(wallet_path, PASSWORD, "devnet")
    assert exc.value.code == "wrong-network"
    assert "--network regtest" in exc.value.message


# ---------------------------------------------------------------- wrong passwords and tampering


@pytest.mark.parametrize("password", ["wrong", PASSWORD + " ", PASSWORD.upper(), "x" * 1000])
def test_wrong_password_leaves_the_file_byte_identical(wallet_path: Path, password: str) -> None:
    before = digest(wallet_path)
    with pytest.raises(WrongPassword) as exc:
        Wallet.open(wallet_path, password)
    assert exc.value.code == "wrong-password"
    assert "wrong password" in exc.value.message
    assert digest(wallet_path) == before


def test_unicode_password_is_normalized(tmp_path: Path) -> None:
    path = tmp_path / "w"
    Wallet.create(path, "regtest", "caf\u00e9")  # precomposed é
    assert Wallet.open(path, "cafe\u0301").seed  # e + combining accent: the same password to a person


def flip_hex(text: str, index: int) -> str:
    return text[:index] + ("0" if text[index] != "0" else "1") + text[index + 1 :]


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("ciphertext", lambda d: d.update(ciphertext=flip_hex(d["ciphertext"], 10))),
        ("ciphertext tag", lambda d: d.update(ciphertext=flip_hex(d["ciphertext"], len(d["ciphertext"]) - 1))),
        ("nonce", lambda d: d["cipher"].update(nonce=flip_hex(d["cipher"]["nonce"], 0))),
        ("network", lambda d: d.update(network="devnet")),
        (
            "public address",
            lambda d: d["public"]["addresses"][0].update(address=derive_key(bytes(32), REGTEST, 0).address),
        ),
        (
            "added address",
            lambda d: d["public"]["addresses"].append({**d["public"]["addresses"][0], "index": 1}),
        ),
        ("change flag", lambda d: d["public"]["addresses"][0].update(change=True)),
    ],
)
def test_tampering_with_authenticated_fields_is_detected(wallet_path: Path, name: str, change: object) -> None:
    edit(wallet_path, change)
    before = digest(wallet_path)
    with pytest.raises(CorruptWallet) as exc:
        Wallet.open(wallet_path, PASSWORD)
    assert "tampered" in exc.value.message, name
    assert digest(wallet_path) == before


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["kdf"].update(n=2048),
        lambda d: d["kdf"].update(r=4),
        lambda d: d["kdf"].update(salt=flip_hex(d["kdf"]["salt"], 3)),
        lambda d: d.update(check=flip_hex(d["check"], 5)),
    ],
)
def test_tampering_with_kdf_parameters_is_detected(wallet_path: Path, change: object) -> None:
    edit(wallet_path, change)
    with pytest.raises(WrongPassword) as exc:
        Wallet.open(wallet_path, PASSWORD)
    assert "key-derivation parameters were altered" in exc.value.message


def test_public_data_that_the_seed_does_not_derive_is_refused(wallet_path: Path) -> None:
    """A file sealed consistently (right password) whose public addresses are not the seed's: refused."""
    wallet = Wallet.open(wallet_path, PASSWORD)
    wallet.keys[0] = derive_key(bytes(32), REGTEST, 0)
    wallet.save()
    with pytest.raises(CorruptWallet) as exc:
        Wallet.open(wallet_path, PASSWORD)
    assert "not the ones its seed derives" in exc.value.message


def test_every_truncation_is_a_clean_corruption_error(wallet_path: Path) -> None:
    original = wallet_path.read_bytes()
    for length in range(0, len(original) - 1, 7):
        wallet_path.write_bytes(original[:length])
        with pytest.raises(CorruptWallet) as exc:
            Wallet.open(wallet_path, PASSWORD)
        assert "corrupt" in exc.value.message, length
        assert wallet_path.read_bytes() == original[:length]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'{"format": "cairn-wallet"}', "field version is missing"),
        (b'{"format": "other", "version": 1}', "format is not"),
    ],
)
def test_garbage_files_are_clean_errors(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "w"
    path.write_bytes(content)
    with pytest.raises(CorruptWallet) as exc:
        Wallet.open(path, PASSWORD)
    assert words in exc.value.message


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d.update(version=2), "version 2 is not supported"),
        (lambda d: d.update(network="bitcoin"), "network 'bitcoin'"),
        (lambda d: d["kdf"].update(n=2**30), "out of the accepted range"),  # refused before scrypt could run
        (lambda d: d["kdf"].update(n=1000), "out of the accepted range"),
        (lambda d: d["kdf"].update(n="1024"), "kdf.n should be of type int"),
        (lambda d: d["kdf"].update(n=True), "kdf.n should be of type int"),
        (lambda d: d["kdf"].update(name="pbkdf2"), "kdf.name"),
        (lambda d: d["kdf"].update(salt="00"), "kdf.salt"),
        (lambda d: d["cipher"].update(name="aes-128-ecb"), "cipher.name"),
        (lambda d: d["cipher"].update(nonce="abcd"), "cipher.nonce should be 12 bytes"),
        (lambda d: d.update(ciphertext="xyz"), "ciphertext is not lowercase hex"),
        (lambda d: d.pop("check"), "field check is missing"),
        (lambda d: d["public"].update(addresses=[]), "public.addresses"),
        (lambda d: d["public"]["addresses"][0].update(index=5), "index should be 0"),
        (lambda d: d["public"]["addresses"][0].update(pubkey="02"), "pubkey should be 33 bytes"),
        (lambda d: d["public"].update(addresses={}), "public.addresses should be of type list"),
    ],
)
def test_malformed_fields_are_named(wallet_path: Path, change: object, words: str) -> None:
    edit(wallet_path, change)
    with pytest.raises(CorruptWallet) as exc:
        Wallet.open(wallet_path, PASSWORD)
    assert words in exc.value.message


# ---------------------------------------------------------------- atomic writes


def test_save_replaces_the_file_by_rename_and_leaves_no_temporary(wallet_path: Path) -> None:
    inode = wallet_path.stat().st_ino
    wallet = Wallet.open(wallet_path, PASSWORD)
    wallet.new_key()
    assert wallet_path.stat().st_ino != inode  # a new file was renamed over the old one, not rewritten in place
    assert sorted(p.name for p in wallet_path.parent.iterdir()) == [wallet_path.name]


def test_a_failed_write_leaves_the_old_wallet_intact(wallet_path: Path) -> None:
    """Make the write fail for real (file size limit, EFBIG) in a child process; the old file must survive."""
    before = digest(wallet_path)
    size = wallet_path.stat().st_size
    script = f"""
import os, resource, signal, sys
from pathlib import Path
from wallet.keystore import Wallet
from wallet.errors import KeystoreError
wallet = Wallet.open(Path(sys.argv[1]), {PASSWORD!r})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, ({size // 2}, {size // 2}))
try:
    wallet.new_key(label="x" * 5000)
except KeystoreError as exc:
    print("refused:", exc.message)
    print("keys in memory:", len(wallet.keys))
    sys.exit(3)
sys.exit(0)
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", script, str(wallet_path)], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 3, result.stderr
    assert "cannot write wallet" in result.stdout and "the old file is unchanged" in result.stdout
    assert "keys in memory: 1" in result.stdout  # the key that could not be saved is not handed out
    assert digest(wallet_path) == before
    assert sorted(p.name for p in wallet_path.parent.iterdir()) == [wallet_path.name]
    assert len(Wallet.open(wallet_path, PASSWORD).keys) == 1
