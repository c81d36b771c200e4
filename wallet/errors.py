"""The wallet's errors: each has a short ``code`` and a message meant for the person at the keyboard.

The CLI turns every ``WalletError`` into one clean line (or a JSON error object)
and a non-zero exit status; none of them should ever surface as a traceback.
"""

from __future__ import annotations


class WalletError(Exception):
    """Base of every error the wallet reports to its user."""

    code = "wallet-error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class AmountError(WalletError):
    """An amount typed by the user is not a valid positive number of coins."""

    code = "bad-amount"


class KeystoreError(WalletError):
    """The wallet file cannot be created, opened or decrypted."""

    code = "keystore"


class WrongPassword(KeystoreError):
    code = "wrong-password"


class CorruptWallet(KeystoreError):
    code = "corrupt-wallet"


class NodeError(WalletError):
    """The node could not be reached or refused a request; ``code`` is its error code."""

    code = "node-error"


class InsufficientFunds(WalletError):
    code = "insufficient-funds"


class VerificationFailed(WalletError):
    """No source served a valid chain ending at the trusted tip, or a proof did not check out."""

    code = "verification-failed"
