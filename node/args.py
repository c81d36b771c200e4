"""Decoding request arguments, shared by the JSON API and the explorer: one error per kind of bad input."""

from __future__ import annotations

from flask import request

from chain.hashes import hex_to_hash
from node.errors import BadRequest


def parse_hash(text: str) -> bytes:
    """A 64-character reversed-hex hash; ``bad-hash`` otherwise."""
    try:
        return hex_to_hash(text)
    except ValueError:
        raise BadRequest(f"{text!r:.80} is not a 64-character hex hash", "bad-hash") from None


def parse_height(text: str) -> int:
    """A block height from a URL path: a non-negative integer."""
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{text!r:.40} is not a height") from None
    if value < 0:
        raise BadRequest("heights are not negative")
    return value


def int_arg(name: str, default: int | None, low: int, high: int, *, empty_is_missing: bool = False) -> int | None:
    """Query argument ``name`` as an integer in ``[low, high]``, ``default`` when absent.

    HTML forms send empty fields, so the explorer passes ``empty_is_missing``.
    """
    text = request.args.get(name)
    if text is None or (empty_is_missing and text == ""):
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, not {text!r:.40}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return value
