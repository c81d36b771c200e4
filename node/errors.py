"""The node's own error tree. Each error has an API ``code`` and the HTTP status it maps to.

Consensus rejections stay ``chain.errors.ValidationError`` (HTTP 400 with the rule's
reason code); these are everything else a request or a peer can get wrong.
"""

from __future__ import annotations


class NodeError(Exception):
    """Base of the node's errors: ``code`` is the stable string clients match on."""

    status = 500
    code = "internal-error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    @property
    def reason(self) -> str:
        return self.code


class BadRequest(NodeError):
    """The request is malformed: bad JSON, a missing or ill-typed field, a bad hash."""

    status = 400
    code = "bad-request"


class PolicyError(NodeError):
    """A transaction is valid but this node's mempool policy refuses it (``txn-mempool-conflict``, ...)."""

    status = 400
    code = "policy"


class NotFound(NodeError):
    """No such block, transaction, height or peer."""

    status = 404
    code = "not-found"


class Unauthorized(NodeError):
    """An admin endpoint was called without the right bearer token."""

    status = 401
    code = "unauthorized"


class Forbidden(NodeError):
    """A banned peer, or one on another network, tried to talk to us."""

    status = 403
    code = "forbidden"


class Conflict(NodeError):
    """The request is well-formed but cannot be done now (e.g. the miner has no address)."""

    status = 409
    code = "conflict"


class PeerError(NodeError):
    """A peer could not be reached or answered something unusable."""

    status = 502
    code = "peer-error"
