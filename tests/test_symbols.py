"""Symbol validation: the gate every symbol passes, wherever it enters."""

import pytest

from trading_assets.core.keys import InvalidKeyError, bars_key, chart_key, check_key
from trading_assets.core.symbols import InvalidSymbolError, parse_symbols, validate_symbol


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("AAPL", "AAPL"), ("aapl", "AAPL"), ("BRK.B", "BRK.B"), ("RDS-A", "RDS-A"),
     ("ABCDEFGHIJKL", "ABCDEFGHIJKL"), ("7203", "7203")],
)
def test_valid_symbols_are_normalised(raw: str, expected: str) -> None:
    assert validate_symbol(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("", "empty"), ("   ", "empty"), ("AA PL", "spaces"), (" AAPL", "spaces"),
     ("AAPL/MSFT", "not a valid ticker"), ("../etc", "not a valid ticker"),
     ("BRK..B", "not a valid ticker"), ("AAPL,MSFT", "not a valid ticker"),
     ("AAPL\n", "control"), ("A\x00", "control"), ("ABCDEFGHIJKLM", "at most 12"),
     (".AAPL", "not a valid ticker"), ("AAPL-", "not a valid ticker"), ("ÄPPL", "not a valid")],
)
def test_invalid_symbols_say_why(raw: str, reason: str) -> None:
    with pytest.raises(InvalidSymbolError, match=reason):
        validate_symbol(raw)


def test_non_text_is_refused() -> None:
    with pytest.raises(InvalidSymbolError, match="must be text"):
        validate_symbol(None)


def test_parse_symbols_splits_dedupes_and_validates() -> None:
    assert parse_symbols("tsla, NVDA,TSLA") == ["TSLA", "NVDA"]
    assert parse_symbols(["aapl", "msft"]) == ["AAPL", "MSFT"]
    with pytest.raises(InvalidSymbolError):
        parse_symbols("AAPL,,MSFT")
    with pytest.raises(InvalidSymbolError, match="No symbols"):
        parse_symbols(" ")


def test_store_keys_are_built_from_validated_symbols_only() -> None:
    assert bars_key("tsla") == "bars/TSLA/daily.parquet"
    with pytest.raises(InvalidSymbolError):
        bars_key("../../etc/passwd")
    with pytest.raises(InvalidKeyError):
        chart_key("TSLA", "hourly", __import__("datetime").date(2026, 1, 2))
    for bad in ("/etc/passwd", "a/../b", "a//b", ".hidden/x", "a/b/"):
        with pytest.raises(InvalidKeyError):
            check_key(bad)


@pytest.mark.parametrize("raw", ["ſpy", "ıbm", "ß", "ﬁat", "ＡAPL", "AAPL\u0301"])
def test_non_ascii_is_refused_before_any_case_change(raw: str) -> None:
    # "ſpy".upper() == "SPY", "ß".upper() == "SS": the raw string is checked, not its upper case.
    with pytest.raises(InvalidSymbolError, match="ASCII"):
        validate_symbol(raw)
    with pytest.raises(InvalidSymbolError, match="ASCII"):
        parse_symbols(f"MSFT,{raw}")


@pytest.mark.parametrize("raw", ["AAPL\n", "\tAAPL", "\u00a0AAPL", "AAPL\u2028", "AA\rPL",
                                 "AAPL\u0085", "\u3000AAPL", "AAPL\x7f"])
def test_control_characters_and_unusual_whitespace_are_refused_anywhere(raw: str) -> None:
    with pytest.raises(InvalidSymbolError):
        validate_symbol(raw)
    # A list strips only plain spaces around its commas: the rest is refused, never stripped.
    with pytest.raises(InvalidSymbolError):
        parse_symbols(f"MSFT, {raw}")
    with pytest.raises(InvalidSymbolError):
        parse_symbols([raw])


def test_plain_spaces_around_commas_are_still_allowed() -> None:
    assert parse_symbols(" tsla ,  nvda , brk.b ") == ["TSLA", "NVDA", "BRK.B"]
