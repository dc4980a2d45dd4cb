"""Ticker validation: the one gate every symbol passes before it becomes a key anywhere."""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_SYMBOL_LENGTH = 12
# Letters and digits, with single dots or dashes between them (BRK.B, RDS-A). No "..",
# no leading/trailing separator: a symbol becomes a file name and an object-store key.
_SYMBOL_RE = re.compile(r"^[A-Z0-9]+(?:[.-][A-Z0-9]+)*$")


class InvalidSymbolError(ValueError):
    """A symbol that cannot be used as a ticker, partition key or storage key."""


def validate_symbol(raw: object) -> str:
    """Return the normalised (upper-case) ticker or raise InvalidSymbolError saying why."""
    if not isinstance(raw, str):
        raise InvalidSymbolError(f"Symbol must be text, got {type(raw).__name__}.")
    if raw == "" or raw.strip() == "":
        raise InvalidSymbolError("Symbol is empty. Use a ticker such as AAPL, BRK.B or RDS-A.")
    # Checked on the raw text, before any case change: "ſpy".upper() is "SPY", "ß".upper() "SS".
    foreign = next((ch for ch in raw if not ch.isascii()), None)
    if foreign is not None:
        raise InvalidSymbolError(
            f"Symbol {raw!r} is not a valid ticker: it contains the non-ASCII character "
            f"{foreign!r} (U+{ord(foreign):04X}); use ASCII letters and digits such as AAPL."
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in raw):
        raise InvalidSymbolError(
            f"Symbol {raw!r} contains control characters. Use a ticker such as AAPL."
        )
    if raw != raw.strip() or " " in raw:
        raise InvalidSymbolError(f"Symbol {raw!r} contains spaces. Use a ticker such as AAPL.")
    symbol = raw.upper()
    if len(symbol) > MAX_SYMBOL_LENGTH:
        raise InvalidSymbolError(
            f"Symbol {raw!r} is {len(symbol)} characters long; at most {MAX_SYMBOL_LENGTH} allowed."
        )
    if not _SYMBOL_RE.match(symbol):
        raise InvalidSymbolError(
            f"Symbol {raw!r} is not a valid ticker: use letters and digits, with single dots or "
            "dashes between them (AAPL, BRK.B, RDS-A); no slashes, commas or '..'."
        )
    return symbol


def parse_symbols(raw: str | Iterable[str]) -> list[str]:
    """Validate a comma-separated string or a list of symbols; drops duplicates, keeps order.

    Only plain spaces around the commas are stripped: tabs, newlines, NBSP and other
    whitespace are refused by validate_symbol, never silently removed."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    if isinstance(raw, str) and raw.strip() == "":
        raise InvalidSymbolError("No symbols given. Example: AAPL,MSFT")
    symbols: list[str] = []
    for item in items:
        symbol = validate_symbol(item.strip(" ") if isinstance(item, str) and item.strip(" ")
                                 else item)
        if symbol not in symbols:
            symbols.append(symbol)
    return symbols
