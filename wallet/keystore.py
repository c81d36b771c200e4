"""The encrypted wallet file: one random seed, keys derived from it, sealed under a password.

Key ``i`` of a wallet on network ``net`` is derived from the 32-byte seed as
``d = (HMAC-SHA512(seed, "cairn/<net>/<i>") mod (n - 1)) + 1`` where ``n`` is the order
of secp256k1: FIPS 186-4 B.4.1's "extra random bits" method, so every index gives a
valid secret with a bias of 2**-256. A backup is the seed alone; a new address is the
next index.

The file is JSON. The secret part (seed, number of keys, labels) is encrypted with
ChaCha20-Poly1305 under a key stretched from the password by scrypt; every other
field (format, network, KDF parameters, nonce, password check, public addresses) is
the AEAD's associated data, so changing any of them makes decryption fail. Writes go
to a temporary file in the same directory (mode 0600), are fsynced and renamed over
the old file, so a crash leaves the old wallet or the new one, never half of either.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from chain.address import address_from_pubkey
from chain.crypto import SECP256K1_ORDER, public_key
from chain.hashes import hash160, sha256d
from chain.params import NetworkParams, get_network
from wallet.errors import CorruptWallet, KeystoreError, WalletError, WrongPassword

log = logging.getLogger(__name__)

FORMAT = "cairn-wallet"
VERSION = 1
CIPHER = "chacha20-poly1305"
SEED_SIZE = 32
SALT_SIZE = 16
NONCE_SIZE = 12
SCRYPT_N = 2**17  # 128 MiB and about half a second per unlock: the default for every real wallet
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_N_ENV = "CAIRN_WALLET_SCRYPT_N"  # lowers the cost, for tests only; the file records what was used
MIN_SCRYPT_N = 2**10
MAX_SCRYPT_N = 2**20  # a file asking for more memory than this is refused before the KDF runs
MAX_KEYS = 100_000
MAX_FILE_SIZE = 16 * 1024 * 1024
WALLET_NETWORKS = ("devnet", "regtest")
_HEX = re.compile(r"[0-9a-f]*")


# ---------------------------------------------------------------- keys and seeds


def derive_secret(seed: bytes, network: str, index: int) -> bytes:
    """The private key number ``index`` of ``seed`` on ``network`` (see the module docstring)."""
    digest = hmac.new(seed, f"cairn/{network}/{index}".encode(), hashlib.sha512).digest()
    return (int.from_bytes(digest, "big") % (SECP256K1_ORDER - 1) + 1).to_bytes(32, "big")


def seed_to_backup(seed: bytes) -> str:
    """The seed and a 4-byte checksum as 72 hex digits in nine groups of eight, for writing on paper."""
    text = (seed + sha256d(seed)[:4]).hex()
    return " ".join(text[i : i + 8] for i in range(0, len(text), 8))


def backup_to_seed(text: str) -> bytes:
    """Read a backup written by ``seed_to_backup`` (spaces, dashes and case are ignored)."""
    digits = re.sub(r"[\s-]", "", text).lower()
    if len(digits) != 2 * (SEED_SIZE + 4) or not _HEX.fullmatch(digits):
        raise WalletError(
            f"a backup seed is {2 * (SEED_SIZE + 4)} hex digits, got {len(digits)} characters", code="bad-seed"
        )
    raw = bytes.fromhex(digits)
    seed, checksum = raw[:SEED_SIZE], raw[SEED_SIZE:]
    if sha256d(seed)[:4] != checksum:
        raise WalletError("the backup seed's checksum does not match: a digit is mistyped", code="bad-seed")
    return seed


@dataclass(frozen=True)
class WalletKey:
    """Public data of one derived key."""

    index: int
    pubkey: bytes
    address: str
    change: bool

    @property
    def pubkey_hash(self) -> bytes:
        return hash160(self.pubkey)

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "address": self.address, "pubkey": self.pubkey.hex(), "change": self.change}


def derive_key(seed: bytes, params: NetworkParams, index: int, change: bool = False) -> WalletKey:
    pubkey = public_key(derive_secret(seed, params.name, index))
    return WalletKey(index, pubkey, address_from_pubkey(pubkey, params), change)


# ---------------------------------------------------------------- the file


@dataclass(frozen=True)
class KdfParams:
    n: int
    r: int
    p: int
    salt: bytes

    def to_json(self) -> dict[str, Any]:
        return {"name": "scrypt", "n": self.n, "r": self.r, "p": self.p, "salt": self.salt.hex()}

    def derive(self, password: str) -> tuple[bytes, bytes]:
        """The 32-byte encryption key and the password check value for ``password``."""
        normalized = unicodedata.normalize("NFC", password).encode("utf-8")
        stretched = Scrypt(salt=self.salt, length=64, n=self.n, r=self.r, p=self.p).derive(normalized)
        return stretched[:32], hashlib.sha256(b"cairn-wallet password check" + stretched[32:]).digest()


def default_scrypt_n() -> int:
    """``SCRYPT_N``, unless the test knob ``CAIRN_WALLET_SCRYPT_N`` asks for a (recorded) lower cost."""
    text = os.environ.get(SCRYPT_N_ENV)
    if not text:
        return SCRYPT_N
    try:
        n = int(text)
    except ValueError:
        raise KeystoreError(f"{SCRYPT_N_ENV}={text!r} is not an integer") from None
    if n < MIN_SCRYPT_N or n > MAX_SCRYPT_N or n & (n - 1):
        raise KeystoreError(f"{SCRYPT_N_ENV} must be a power of two from {MIN_SCRYPT_N} to {MAX_SCRYPT_N}")
    return n


def _aad(document: Mapping[str, Any]) -> bytes:
    """Every field but the ciphertext, canonically encoded: what the AEAD authenticates alongside it."""
    header = {k: v for k, v in document.items() if k != "ciphertext"}
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def _field(obj: Any, name: str, kind: type, where: str = "") -> Any:
    if not isinstance(obj, dict) or name not in obj:
        raise CorruptWallet(f"field {where}{name} is missing")
    value = obj[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CorruptWallet(f"field {where}{name} should be of type {kind.__name__}")
    return value


def _hex_field(obj: Any, name: str, where: str, size: int | None = None) -> bytes:
    text = _field(obj, name, str, where)
    if not _HEX.fullmatch(text) or len(text) % 2:
        raise CorruptWallet(f"field {where}{name} is not lowercase hex")
    raw = bytes.fromhex(text)
    if size is not None and len(raw) != size:
        raise CorruptWallet(f"field {where}{name} should be {size} bytes, not {len(raw)}")
    return raw


@dataclass(frozen=True)
class WalletFile:
    """A parsed, structurally checked wallet file: everything readable without the password."""

    path: Path
    document: dict[str, Any]
    network: str
    kdf: KdfParams
    nonce: bytes
    check: bytes
    ciphertext: bytes
    keys: tuple[WalletKey, ...]

    @classmethod
    def read(cls, path: Path) -> WalletFile:
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_FILE_SIZE + 1)
        except FileNotFoundError:
            raise KeystoreError(f"no wallet at {path}; make one with `cairn-wallet create`", code="no-wallet") from None
        except OSError as exc:
            raise KeystoreError(f"cannot read wallet {path}: {exc.strerror}") from None
        if len(raw) > MAX_FILE_SIZE:
            raise CorruptWallet(f"{path} is larger than any wallet file: not a wallet")
        try:
            document = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptWallet(f"wallet {path} is corrupt or truncated (not valid JSON: {exc})") from None
        try:
            return cls._from_document(path, document)
        except CorruptWallet as exc:
            raise CorruptWallet(f"wallet {path} is corrupt: {exc.message}") from None

    @classmethod
    def _from_document(cls, path: Path, document: Any) -> WalletFile:
        if not isinstance(document, dict):
            raise CorruptWallet("not a JSON object")
        if _field(document, "format", str) != FORMAT:
            raise CorruptWallet(f"format is not {FORMAT!r}")
        if _field(document, "version", int) != VERSION:
            raise CorruptWallet(f"version {document['version']} is not supported (this wallet reads {VERSION})")
        network = _field(document, "network", str)
        if network not in WALLET_NETWORKS:
            raise CorruptWallet(f"network {network!r} is not one of {', '.join(WALLET_NETWORKS)}")
        kdf_json = _field(document, "kdf", dict)
        if _field(kdf_json, "name", str, "kdf.") != "scrypt":
            raise CorruptWallet("kdf.name is not 'scrypt'")
        n, r, p = (_field(kdf_json, k, int, "kdf.") for k in ("n", "r", "p"))
        if not (MIN_SCRYPT_N <= n <= MAX_SCRYPT_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
            raise CorruptWallet(f"scrypt parameters n={n} r={r} p={p} are out of the accepted range")
        salt = _hex_field(kdf_json, "salt", "kdf.")
        if not 16 <= len(salt) <= 64:
            raise CorruptWallet("kdf.salt should be 16 to 64 bytes")
        cipher = _field(document, "cipher", dict)
        if _field(cipher, "name", str, "cipher.") != CIPHER:
            raise CorruptWallet(f"cipher.name is not {CIPHER!r}")
        nonce = _hex_field(cipher, "nonce", "cipher.", NONCE_SIZE)
        check = _hex_field(document, "check", "", 32)
        ciphertext = _hex_field(document, "ciphertext", "")
        public = _field(document, "public", dict)
        entries = _field(public, "addresses", list, "public.")
        if not 1 <= len(entries) <= MAX_KEYS:
            raise CorruptWallet(f"public.addresses should list 1 to {MAX_KEYS} keys")
        keys = []
        for i, entry in enumerate(entries):
            where = f"public.addresses[{i}]."
            if _field(entry, "index", int, where) != i:
                raise CorruptWallet(f"{where}index should be {i}")
            pubkey = _hex_field(entry, "pubkey", where, 33)
            keys.append(
                WalletKey(i, pubkey, _field(entry, "address", str, where), _field(entry, "change", bool, where))
            )
        return cls(path, document, network, KdfParams(n, r, p, salt), nonce, check, ciphertext, tuple(keys))

    @property
    def receive_keys(self) -> list[WalletKey]:
        return [k for k in self.keys if not k.change]


# ---------------------------------------------------------------- atomic writes


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Write ``data`` to ``path`` all-or-nothing, mode 0600; refuse an existing file unless ``overwrite``."""
    directory = path.parent
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise KeystoreError(f"cannot create the wallet directory {directory}: {exc.strerror}") from None
    temp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(temp, path)
        else:
            os.link(temp, path)  # fails if path exists: creation never overwrites, even in a race
            os.unlink(temp)
        _fsync_directory(directory)
    except FileExistsError:
        temp.unlink(missing_ok=True)
        raise KeystoreError(
            f"a wallet already exists at {path}; refusing to overwrite it", code="wallet-exists"
        ) from None
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise KeystoreError(f"cannot write wallet {path}: {exc.strerror or exc}; the old file is unchanged") from None


# ---------------------------------------------------------------- an unlocked wallet


@dataclass
class Wallet:
    """An unlocked wallet: the seed in memory, its keys, and what is needed to write it back."""

    path: Path
    params: NetworkParams
    seed: bytes = field(repr=False)
    keys: list[WalletKey]
    labels: dict[int, str]
    kdf: KdfParams
    _key: bytes = field(repr=False)
    _check: bytes = field(repr=False)

    @classmethod
    def create(cls, path: Path, network: str, password: str, seed: bytes | None = None, key_count: int = 1) -> Wallet:
        """Make a new wallet file at ``path`` (never over an existing one) with ``key_count`` receive keys."""
        if network not in WALLET_NETWORKS:
            raise KeystoreError(f"wallets exist for {', '.join(WALLET_NETWORKS)}, not {network}")
        if not password:
            raise KeystoreError("the password must not be empty", code="empty-password")
        if path.exists():
            raise KeystoreError(f"a wallet already exists at {path}; refusing to overwrite it", code="wallet-exists")
        if not 1 <= key_count <= MAX_KEYS:
            raise KeystoreError(f"a wallet holds 1 to {MAX_KEYS} keys")
        params = get_network(network)
        seed = seed if seed is not None else secrets.token_bytes(SEED_SIZE)
        kdf = KdfParams(default_scrypt_n(), SCRYPT_R, SCRYPT_P, secrets.token_bytes(SALT_SIZE))
        key, check = kdf.derive(password)
        keys = [derive_key(seed, params, i) for i in range(key_count)]
        wallet = cls(path, params, seed, keys, {}, kdf, key, check)
        wallet._write(overwrite=False)
        log.info("created %s wallet %s", network, path)
        return wallet

    @classmethod
    def open(cls, path: Path, password: str, network: str | None = None) -> Wallet:
        """Decrypt the wallet at ``path``; WrongPassword or CorruptWallet (the file is never written)."""
        stored = WalletFile.read(path)
        if network is not None and stored.network != network:
            raise KeystoreError(
                f"{path} is a {stored.network} wallet, not {network}: pass --network {stored.network}",
                code="wrong-network",
            )
        key, check = stored.kdf.derive(password)
        if not hmac.compare_digest(check, stored.check):
            raise WrongPassword(
                f"wrong password for {path} (or its key-derivation parameters were altered); the file is unchanged"
            )
        try:
            plaintext = ChaCha20Poly1305(key).decrypt(stored.nonce, stored.ciphertext, _aad(stored.document))
        except InvalidTag:
            raise CorruptWallet(
                f"wallet {path} has been tampered with or corrupted: the password is right but the contents "
                "do not authenticate"
            ) from None
        params = get_network(stored.network)
        try:
            payload = json.loads(plaintext)
            seed = bytes.fromhex(payload["seed"])
            count = payload["keys"]
            labels = {int(i): str(text) for i, text in payload["labels"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptWallet(f"wallet {path}: the decrypted contents are malformed ({exc})") from None
        if len(seed) != SEED_SIZE or count != len(stored.keys):
            raise CorruptWallet(f"wallet {path}: the seed or the key count does not match the public data")
        keys = [derive_key(seed, params, k.index, k.change) for k in stored.keys]
        if keys != list(stored.keys):
            raise CorruptWallet(f"wallet {path}: its public addresses are not the ones its seed derives")
        return cls(path, params, seed, keys, labels, stored.kdf, key, check)

    def secret(self, index: int) -> bytes:
        return derive_secret(self.seed, self.params.name, index)

    @property
    def receive_keys(self) -> list[WalletKey]:
        return [k for k in self.keys if not k.change]

    def by_pubkey_hash(self) -> dict[bytes, WalletKey]:
        return {k.pubkey_hash: k for k in self.keys}

    def new_key(self, *, change: bool = False, label: str | None = None) -> WalletKey:
        """Derive the next key and write the wallet (so a key handed out is never forgotten)."""
        if len(self.keys) >= MAX_KEYS:
            raise KeystoreError(f"this wallet already holds the maximum of {MAX_KEYS} keys")
        key = derive_key(self.seed, self.params, len(self.keys), change)
        self.keys.append(key)
        if label:
            self.labels[key.index] = label
        try:
            self.save()
        except KeystoreError:
            self.keys.pop()
            self.labels.pop(key.index, None)
            raise
        return key

    def save(self) -> None:
        self._write(overwrite=True)

    def _document(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "network": self.params.name,
            "kdf": self.kdf.to_json(),
            "cipher": {"name": CIPHER, "nonce": secrets.token_bytes(NONCE_SIZE).hex()},
            "check": self._check.hex(),
            "public": {"addresses": [k.to_json() for k in self.keys]},
        }

    def _write(self, *, overwrite: bool) -> None:
        document = self._document()
        payload = {
            "seed": self.seed.hex(),
            "keys": len(self.keys),
            "labels": {str(i): text for i, text in self.labels.items()},
        }
        nonce = bytes.fromhex(document["cipher"]["nonce"])
        ciphertext = ChaCha20Poly1305(self._key).encrypt(nonce, json.dumps(payload).encode(), _aad(document))
        document["ciphertext"] = ciphertext.hex()
        write_atomically(self.path, (json.dumps(document, indent=2) + "\n").encode(), overwrite=overwrite)
