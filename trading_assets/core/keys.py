"""Object-store keys, built only from validated symbols so no key can escape its folder."""

from __future__ import annotations

import re
from datetime import date

from trading_assets.core.symbols import validate_symbol

_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$")
TIMEFRAMES = ("daily", "weekly")


class InvalidKeyError(ValueError):
    """An object-store key that could point outside the store."""


def check_key(key: str) -> str:
    """Refuse absolute keys, '..' segments and unusual characters."""
    if not _KEY_RE.match(key) or ".." in key.split("/") or "//" in key or key.endswith("/"):
        raise InvalidKeyError(f"Refusing object-store key {key!r}: not a plain relative key.")
    if any(part.startswith(".") for part in key.split("/")):
        raise InvalidKeyError(f"Refusing object-store key {key!r}: hidden path segment.")
    return key


def bars_key(symbol: str) -> str:
    """Where bars were stored before each version got its own key (read when the info names
    none)."""
    return f"bars/{validate_symbol(symbol)}/daily.parquet"


def bars_info_key(symbol: str) -> str:
    """The symbol's bars info: its summary (source, last date and close) and the key of the
    bars it describes. Written after those bars, so it never names bars that are not there
    and a reader never pairs new bars with an old summary."""
    return f"bars/{validate_symbol(symbol)}/daily.json"


def bars_version_key(symbol: str, last_date: date, digest: str) -> str:
    """One version of the symbol's bars: through `last_date`, with content `digest` (the same
    bars fetched again land on the same key)."""
    tag = re.sub(r"[^a-z0-9]", "", digest.lower())[:16] or "bars"
    return f"bars/{validate_symbol(symbol)}/daily-{last_date.isoformat()}-{tag}.parquet"


def bars_key_of(info: object, symbol: str) -> str:
    """The key of the bars a bars info names (the old single key when it names none)."""
    named = info.get("bars_key") if isinstance(info, dict) else None
    prefix = f"bars/{validate_symbol(symbol)}/daily-"
    if isinstance(named, str) and named.startswith(prefix) and named.endswith(".parquet"):
        return check_key(named)
    return bars_key(symbol)


def indicators_key(symbol: str, timeframe: str) -> str:
    if timeframe not in TIMEFRAMES:
        raise InvalidKeyError(f"Unknown timeframe {timeframe!r}; expected one of {TIMEFRAMES}.")
    return f"indicators/{validate_symbol(symbol)}/{timeframe}.parquet"


def chart_key(symbol: str, timeframe: str, last_date: date) -> str:
    if timeframe not in TIMEFRAMES:
        raise InvalidKeyError(f"Unknown timeframe {timeframe!r}; expected one of {TIMEFRAMES}.")
    return f"charts/{validate_symbol(symbol)}/{last_date.isoformat()}/{timeframe}.png"


def transcript_key(symbol: str, signal_id: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", signal_id):
        raise InvalidKeyError(f"Refusing transcript key for signal id {signal_id!r}.")
    return f"transcripts/{validate_symbol(symbol)}/{signal_id}.json"


def portfolio_key(symbol: str) -> str:
    return f"portfolio/{validate_symbol(symbol)}.json"


def outcomes_key(symbol: str) -> str:
    """Scored signal outcomes of one symbol (signal_outcomes asset)."""
    return f"outcomes/{validate_symbol(symbol)}.parquet"


def replay_bars_key(symbol: str) -> str:
    """The full bar history a replay walked over, kept so its signals can be scored later."""
    return f"replay/{validate_symbol(symbol)}/daily.parquet"


def exchange_key(request_key: str) -> str:
    """A recorded model answer, by its request digest (core/exchanges.py), fanned out by the
    digest's first two characters so no folder holds them all."""
    if not re.fullmatch(r"[0-9a-f]{64}", request_key):
        raise InvalidKeyError(f"Refusing exchange key for request digest {request_key!r}.")
    return f"exchanges/{request_key[:2]}/{request_key}.json"
