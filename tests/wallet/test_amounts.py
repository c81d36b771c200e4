"""Amounts typed as decimal coins become exact integer units; everything else is refused by name."""

from __future__ import annotations

import pytest

from chain.transaction import COIN, MAX_MONEY
from wallet.amounts import format_amount, parse_amount
from wallet.errors import AmountError


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("1", COIN),
        ("1.5", 150_000_000),
        ("0.1", 10_000_000),  # a float would give 10000000.000000002
        ("0.00000001", 1),
        ("12.34567891", 1_234_567_891),
        ("007.10", 710_000_000),
        ("  2.5 ", 250_000_000),
        ("20999999.99999999", 20_999_999 * COIN + 99_999_999),
        ("21000000", MAX_MONEY),
        ("21000000.00000000", MAX_MONEY),
        ("0.30000000", 30_000_000),
    ],
)
def test_valid_amounts_parse_exactly(text: str, units: int) -> None:
    assert parse_amount(text) == units
    assert isinstance(parse_amount(text), int)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("0", "zero"),
        ("0.00000000", "zero"),
        ("000", "zero"),
        ("-1", "negative"),
        ("-0.5", "negative"),
        (" -3", "negative"),
        ("0.000000001", "9 decimals"),
        ("1.123456789", "9 decimals"),
        ("21000000.00000001", "more than"),
        ("99999999999999999999999", "more than"),
        ("9" * 5000, "more than"),
        ("", "not a decimal number"),
        ("abc", "not a decimal number"),
        ("1e3", "not a decimal number"),
        ("1,5", "not a decimal number"),
        ("1.", "not a decimal number"),
        (".5", "not a decimal number"),
        ("+1", "not a decimal number"),
        ("1_000", "not a decimal number"),
        ("NaN", "not a decimal number"),
        ("inf", "not a decimal number"),
        ("1.2.3", "not a decimal number"),
        ("١٢", "not a decimal number"),  # Arabic-Indic digits: int() would accept them
        ("0x10", "not a decimal number"),
    ],
)
def test_bad_amounts_are_refused_with_a_reason(text: str, words: str) -> None:
    with pytest.raises(AmountError) as exc:
        parse_amount(text)
    assert words in exc.value.message
    assert exc.value.code == "bad-amount"


@pytest.mark.parametrize(
    ("units", "text"),
    [(1, "0.00000001"), (COIN, "1.00000000"), (150_000_000, "1.50000000"), (0, "0.00000000"), (-5, "-0.00000005")],
)
def test_format_amount(units: int, text: str) -> None:
    assert format_amount(units) == text


@pytest.mark.parametrize("units", [1, 7, COIN - 1, COIN, 123_456_789_012, MAX_MONEY])
def test_format_then_parse_round_trips(units: int) -> None:
    assert parse_amount(format_amount(units)) == units
