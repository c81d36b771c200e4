"""Amounts typed by people (decimal coins) to integer units and back, exactly: no float ever touches them."""

from __future__ import annotations

import re

from chain.transaction import COIN, MAX_MONEY
from wallet.errors import AmountError

DECIMALS = 8  # 1 coin = 10**8 units
_AMOUNT = re.compile(r"([0-9]+)(?:\.([0-9]+))?")


def parse_amount(text: str) -> int:
    """Parse ``"1.5"`` (coins, at most 8 decimals) into integer units; AmountError naming what is wrong."""
    cleaned = text.strip()
    if cleaned.startswith("-"):
        raise AmountError(f"amount {text!r} is negative: send a positive number of coins")
    match = _AMOUNT.fullmatch(cleaned)
    if match is None:
        raise AmountError(f"amount {text!r} is not a decimal number of coins (like 1.25)")
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > DECIMALS:
        raise AmountError(f"amount {text!r} has {len(fraction)} decimals; the smallest unit is 0.00000001 (8 decimals)")
    if len(whole.lstrip("0")) > len(str(MAX_MONEY // COIN)):  # also keeps int() away from absurdly long input
        raise AmountError(f"amount {text!r} is more than the {MAX_MONEY // COIN:,} coins that can ever exist")
    units = int(whole) * COIN + int(fraction.ljust(DECIMALS, "0"))
    if units == 0:
        raise AmountError(f"amount {text!r} is zero: send at least 0.00000001")
    if units > MAX_MONEY:
        raise AmountError(f"amount {text!r} is more than the {MAX_MONEY // COIN:,} coins that can ever exist")
    return units


def format_amount(units: int) -> str:
    """Integer units as coins with all 8 decimals: ``150000000`` -> ``"1.50000000"``."""
    sign = "-" if units < 0 else ""
    whole, fraction = divmod(abs(units), COIN)
    return f"{sign}{whole}.{fraction:0{DECIMALS}d}"
