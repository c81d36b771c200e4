"""The one exception tree of the consensus core.

Every rejection carries a short, stable reason code (Bitcoin Core's where one
exists, e.g. ``bad-txnmrklroot``) plus a human-readable message. Callers match
on ``reason``; the message is for people.
"""

from __future__ import annotations


class CairnError(Exception):
    """Base of every error raised by ``chain``."""


class ValidationError(CairnError):
    """Something failed a consensus rule; ``reason`` names the rule."""

    chain_update: object | None = None
    """Set by ``ChainState.accept_block`` when the chain moved anyway (a ``ChainUpdate``) before the rejection."""

    def __init__(self, reason: str, message: str = "") -> None:
        self.reason = reason
        self.message = message or reason
        super().__init__(f"{reason}: {message}" if message else reason)


class DecodeError(ValidationError):
    """Bytes that are not a canonical serialization (truncated, trailing data, ...)."""

    def __init__(self, message: str, reason: str = "bad-encoding") -> None:
        super().__init__(reason, message)


class HeaderError(ValidationError):
    """A block header broke a rule (proof of work, difficulty, timestamp, linkage)."""


class TransactionError(ValidationError):
    """A transaction broke a rule."""


class BlockError(ValidationError):
    """A block broke a rule that is not about one transaction."""


class SignatureError(TransactionError):
    """A public key or signature is malformed or does not verify."""


class AddressError(ValidationError):
    """An address is malformed, mistyped or of another network."""


class HeaderChainError(ValidationError):
    """A header stream failed verification against a trusted tip, at ``height``."""

    def __init__(self, reason: str, message: str, height: int) -> None:
        self.height = height
        super().__init__(reason, f"height {height}: {message}")


class StorageError(CairnError):
    """The block store cannot be read or written (disk full, read-only, corrupt)."""
