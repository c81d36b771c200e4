"""Light-client checks against one trusted block hash: header chains from untrusted peers or files, full
block re-validation, and merkle proofs of payment.

Each source is checked on its own, from genesis, with ``chain.headerchain.HeaderChainVerifier``:
a peer passes only if its headers link, meet their proof of work, difficulty and
timestamp rules all the way to the trusted hash. Sources that fail are named with
the height and rule of their first bad header, or, when their headers are valid but
never reach the trusted hash, with the height at which they leave a valid chain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.block import HEADER_SIZE, Block, BlockHeader
from chain.crypto import SignatureCache
from chain.errors import BlockError, HeaderChainError, ValidationError
from chain.hashes import hash_to_hex, hex_to_hash, sha256d
from chain.headerchain import HeaderChainVerifier, split_headers
from chain.merkle import MerkleProof
from chain.params import NetworkParams
from chain.utxo import CoinView
from chain.validation import check_block, connect_block
from wallet.client import MAX_HEADERS_PER_CALL, NodeClient
from wallet.errors import NodeError, VerificationFailed

log = logging.getLogger(__name__)

Progress = Callable[[int], None]  # called with the height reached so far


@dataclass
class SourceReport:
    """The verdict on one peer or header file."""

    source: str
    ok: bool = False
    height: int = 0  # the last height verified
    reason: str | None = None  # rule broken, "trusted-tip-not-found", or the error code of an unreachable peer
    message: str = ""
    bad_height: int | None = None  # height of the first bad header or block
    fork_height: int | None = None  # first height where its valid headers differ from a valid source's
    blocks_checked: int = 0
    chainwork: int = 0
    hashes: list[bytes] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "valid": self.ok,
            "height": self.height,
            "reason": self.reason,
            "message": self.message,
            "bad_height": self.bad_height,
            "fork_height": self.fork_height,
            "blocks_checked": self.blocks_checked,
            "tip": hash_to_hex(self.hashes[-1]) if self.ok else None,
            "chainwork": self.chainwork if self.ok else None,
        }

    def summary(self) -> str:
        if self.ok:
            full = f", {self.blocks_checked} blocks re-validated" if self.blocks_checked else ""
            return f"valid: reaches the trusted tip at height {self.height}{full}"
        if self.reason == "trusted-tip-not-found":
            where = f"; it leaves the valid chain at height {self.fork_height}" if self.fork_height is not None else ""
            return f"does not reach the trusted tip: its valid headers end at height {self.height}{where}"
        if self.bad_height is not None:
            return f"INVALID at height {self.bad_height}: {self.reason}: {self.message}"
        return f"failed: {self.reason}: {self.message}"


def download_headers(
    client: NodeClient,
    verifier: HeaderChainVerifier,
    progress: Progress | None = None,
    capture: dict[bytes, bytes | None] | None = None,
) -> None:
    """Fetch and verify headers after the verifier's last one until the trusted tip or the peer's end.

    HeaderChainError at the first bad header. ``capture`` maps block hashes to fill
    with their raw headers when they go by.
    """
    while not verifier.done:
        batch = client.headers([hash_to_hex(verifier.hashes[-1])], MAX_HEADERS_PER_CALL)
        if not batch:
            return
        before = verifier.height
        if capture is not None:
            for raw in batch:
                block_hash = sha256d(raw)
                if block_hash in capture:
                    capture[block_hash] = raw
        verifier.feed(batch)
        if progress is not None:
            progress(verifier.height)
        if verifier.height == before and not verifier.done:
            return  # the peer repeats itself (e.g. genesis alone): it has nothing more


def validate_blocks(
    client: NodeClient, params: NetworkParams, hashes: Sequence[bytes], progress: Progress | None = None
) -> int:
    """Download every block of ``hashes`` (heights 0..n) and replay them under every consensus rule.

    Checks each block's hash against the verified header, its merkle root, coinbase and
    transaction rules, then connects it to an in-memory UTXO view, verifying every
    signature, amount and maturity. Returns the number of blocks checked; raises
    HeaderChainError (the broken rule's reason, the block's height) at the first bad block.
    """
    view = CoinView(lambda _: None)
    sig_cache = SignatureCache()
    for height in range(1, len(hashes)):
        expected = hashes[height]
        try:
            block = Block.parse(client.raw_block(hash_to_hex(expected)))
            if block.hash != expected:
                raise BlockError("bad-block-hash", f"the peer sent block {block.hash_hex} instead")
            check_block(block, params)
            connect_block(block, height, view, params, sig_cache=sig_cache)
        except ValidationError as exc:
            raise HeaderChainError(exc.reason, exc.message, height) from None
        if progress is not None:
            progress(height)
    return max(0, len(hashes) - 1)


def verify_peer(
    url: str,
    params: NetworkParams,
    trusted_tip: bytes,
    now: int,
    progress: Progress | None = None,
    timeout: float = 10.0,
) -> SourceReport:
    """Check one peer's header chain up to ``trusted_tip``; never raises: the report says what went wrong."""
    report = SourceReport(url)
    verifier = HeaderChainVerifier(params, trusted_tip, now)
    with NodeClient(url, timeout=timeout) as client:
        try:
            download_headers(client, verifier, progress)
            chain = verifier.result()
            report.ok, report.chainwork = True, chain.chainwork
        except HeaderChainError as exc:
            _record_failure(report, exc)
        except NodeError as exc:
            report.reason, report.message = exc.code, exc.message
    report.height = verifier.height
    report.hashes = verifier.hashes
    return report


def verify_peer_blocks(
    report: SourceReport, params: NetworkParams, progress: Progress | None = None, timeout: float = 10.0
) -> None:
    """Re-validate every block of a peer whose headers passed (``--full``); a bad block fails the report."""
    with NodeClient(report.source, timeout=timeout) as client:
        try:
            report.blocks_checked = validate_blocks(client, params, report.hashes, progress)
        except HeaderChainError as exc:
            report.ok = False
            _record_failure(report, exc)
        except NodeError as exc:
            report.ok = False
            report.reason, report.message = exc.code, exc.message


def _record_failure(report: SourceReport, exc: HeaderChainError) -> None:
    report.reason, report.message = exc.reason, exc.message.split(": ", 1)[-1]
    if exc.reason != "trusted-tip-not-found":
        report.bad_height = exc.height


def verify_file(
    path: Path, params: NetworkParams, trusted_tip: bytes, now: int, progress: Progress | None = None
) -> SourceReport:
    """Check a raw header file (80-byte headers back to back, genesis first or not) up to ``trusted_tip``."""
    report = SourceReport(str(path))
    try:
        data = path.read_bytes()
    except OSError as exc:
        report.reason, report.message = "unreadable", f"cannot read {path}: {exc.strerror}"
        return report
    headers = split_headers(data)
    verifier = HeaderChainVerifier(params, trusted_tip, now)
    try:
        for start in range(0, len(headers), MAX_HEADERS_PER_CALL):
            if verifier.feed(headers[start : start + MAX_HEADERS_PER_CALL]):
                break
            if progress is not None:
                progress(verifier.height)
        chain = verifier.result()
        report.ok, report.height, report.chainwork = True, chain.height, chain.chainwork
    except HeaderChainError as exc:
        _record_failure(report, exc)
        report.height = verifier.height
    if progress is not None:
        progress(verifier.height)
    report.hashes = verifier.hashes
    return report


def mark_forks(reports: Sequence[SourceReport]) -> None:
    """For each failed source, the first height where its valid headers differ from a valid source's chain."""
    reference = next((r.hashes for r in reports if r.ok), None)
    if reference is None:
        return
    for report in reports:
        if report.ok or not report.hashes:
            continue
        common = min(len(report.hashes), len(reference))
        fork = next((h for h in range(common) if report.hashes[h] != reference[h]), None)
        if fork is not None:
            report.fork_height = fork


def export_headers(client: NodeClient, params: NetworkParams, out: Path, progress: Progress | None = None) -> str:
    """Write the node's active chain as a raw header file, genesis first; returns the hash of its last header.

    Nothing is verified here: the file is as untrusted as the node that served it.
    """
    headers = [params.genesis_header.serialized]
    while True:
        batch = client.headers([hash_to_hex(sha256d(headers[-1]))], MAX_HEADERS_PER_CALL)
        if not batch:
            break
        if any(len(raw) != HEADER_SIZE for raw in batch):
            raise NodeError(f"{client.url} sent a header that is not {HEADER_SIZE} bytes", code="bad-response")
        if batch[0][4:36] != sha256d(headers[-1]):
            raise NodeError(
                f"{client.url} sent headers that do not follow the {params.name} chain it was asked about "
                "(is it a node of another network?)",
                code="wrong-network",
            )
        headers.extend(batch)
        if progress is not None:
            progress(len(headers) - 1)
    temp = out.with_name(f".{out.name}.tmp")
    temp.write_bytes(b"".join(headers))
    temp.replace(out)
    return hash_to_hex(sha256d(headers[-1]))


@dataclass(frozen=True)
class PaymentProof:
    txid: str
    block: str
    height: int
    index: int
    tx_count: int
    tip_height: int

    @property
    def confirmations(self) -> int:
        return self.tip_height - self.height + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "txid": self.txid,
            "block": self.block,
            "height": self.height,
            "index": self.index,
            "tx_count": self.tx_count,
            "tip_height": self.tip_height,
            "confirmations": self.confirmations,
            "valid": True,
        }


def prove_payment(
    client: NodeClient,
    params: NetworkParams,
    txid: bytes,
    trusted_tip: bytes,
    now: int,
    progress: Progress | None = None,
) -> PaymentProof:
    """Check that ``txid`` is in a block of the valid header chain ending at ``trusted_tip``.

    VerificationFailed when the peer's headers are invalid, the block is not on that
    chain, or the merkle branch does not lead to the block's merkle root.
    """
    body = client.proof(hash_to_hex(txid))
    try:
        block_hash = hex_to_hash(body["block"])
        proof = MerkleProof(
            hex_to_hash(body["txid"]),
            int(body["index"]),
            int(body["tx_count"]),
            tuple(hex_to_hash(h) for h in body["branch"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise VerificationFailed(f"the peer's proof is malformed ({exc})", code="bad-proof") from None
    if proof.txid != txid:
        raise VerificationFailed(f"the peer sent a proof for {hash_to_hex(proof.txid)} instead", code="bad-proof")
    verifier = HeaderChainVerifier(params, trusted_tip, now)
    capture: dict[bytes, bytes | None] = {block_hash: None}
    try:
        download_headers(client, verifier, progress, capture)
        chain = verifier.result()
    except HeaderChainError as exc:
        raise VerificationFailed(
            f"{client.url} did not serve a valid header chain to the trusted tip: height {exc.height}: "
            f"{exc.reason}: {exc.message.split(': ', 1)[-1]}",
            code=exc.reason,
        ) from None
    height = verifier.height_of(block_hash)
    if height is None:
        raise VerificationFailed(
            f"block {hash_to_hex(block_hash)} of the proof is not on the valid chain ending at the trusted tip",
            code="block-not-in-chain",
        )
    raw = params.genesis_header.serialized if height == 0 else capture[block_hash]
    assert raw is not None, "every verified header went through the capture"
    header = BlockHeader.parse(raw)
    if not proof.verify(header.merkle_root):
        raise VerificationFailed(
            f"the merkle branch for {hash_to_hex(txid)} does not lead to the merkle root of block "
            f"{hash_to_hex(block_hash)}: the proof is forged or corrupt",
            code="bad-merkle-proof",
        )
    return PaymentProof(hash_to_hex(txid), hash_to_hex(block_hash), height, proof.index, proof.tx_count, chain.height)
