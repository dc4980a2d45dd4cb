"""Daily bars behind one interface, one class per source: simulated (default), csv, url, ibkr.

settings.py picks one class by TRADING_DATA_SOURCE (resource key "market_data"); a failing
source raises, it never falls back to another one.
"""


import io
import string
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import dagster as dg
from pydantic import field_validator

from resources.ibkr import IBKRResource
from trading_assets.core.bars import (
    BarDataError,
    csv_column_map,
    parse_csv_bars,
    read_csv_bars,
    simulate_bars,
)
from trading_assets.core.calendar import last_completed_session
from trading_assets.core.config import MarketDataSettings, plain
from trading_assets.core.orders import SymbolSettings
from trading_assets.core.secrets import public_url
from trading_assets.core.symbols import validate_symbol

if TYPE_CHECKING:  # pandas loads with the first bars, not when the definitions load
    import pandas as pd

# Placeholders a TRADING_CSV_URL template may hold; the symbol is validated before it is put in.
URL_PLACEHOLDERS = ("symbol", "symbol_lower")
MAX_DOWNLOAD_BYTES = 50_000_000  # decades of daily bars are under 1 MB


@dataclass(frozen=True)
class Bars:
    """Bars with where they came from: `simulated` is shown loudly wherever they are used."""

    symbol: str
    frame: "pd.DataFrame"
    source: str
    simulated: bool

    @property
    def last_date(self) -> date:
        import pandas as pd

        return pd.Timestamp(self.frame["date"].iloc[-1]).date()


_DEFAULTS = MarketDataSettings()  # written once, in core/config.py


class MarketData(dg.ConfigurableResource):
    """The interface: `fetch` a symbol's daily OHLCV bars, `describe` the source for people.

    `lookback_days` trading days are asked for (400 covers SMA 200 + weekly)."""

    source: ClassVar[str] = ""
    simulated: ClassVar[bool] = False
    lookback_days: int = _DEFAULTS.lookback_days

    def describe(self) -> str:
        raise NotImplementedError

    def last_session(self) -> date:
        """The newest session the source can have a bar for (replay sizes its history on it)."""
        return last_completed_session()

    def connection_metadata(self) -> dict[str, object]:
        """What the source's connection agreed on (IBKR: API server version, gateway time),
        for the materialization's metadata; {} for sources without one."""
        return {}

    def fetch(self, symbol: str, settings: SymbolSettings | None = None) -> Bars:
        symbol = validate_symbol(symbol)
        return Bars(symbol, self.frame(symbol, settings), self.source, self.simulated)

    def frame(self, symbol: str, settings: SymbolSettings | None) -> "pd.DataFrame":
        """The bars of a validated symbol; each source implements this."""
        raise NotImplementedError

    def with_lookback_days(self, days: int) -> "MarketData":
        """The same source fetching `days` bars. A new resource, not model_copy: that would keep
        Dagster's copy of the old config."""
        fields = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self)(**{**fields, "lookback_days": days})


class SimulatedMarketData(MarketData):
    """Deterministic generated bars on exchange sessions, labelled SIMULATED everywhere."""

    source: ClassVar[str] = "simulated"
    simulated: ClassVar[bool] = True
    as_of: str = ""  # YYYY-MM-DD; empty means the last completed session

    def describe(self) -> str:
        return "SIMULATED (not market data)"

    def last_session(self) -> date:
        return date.fromisoformat(self.as_of) if self.as_of.strip() else last_completed_session()

    def frame(self, symbol: str, settings: SymbolSettings | None) -> "pd.DataFrame":
        return simulate_bars(symbol, self.last_session(), self.lookback_days)


class CsvMarketData(MarketData):
    """One CSV export per symbol: TRADING_CSV_DIR/<SYMBOL>.csv (Yahoo's daily format)."""

    source: ClassVar[str] = "csv"
    csv_dir: str = "data/csv"
    columns: str = ""  # TRADING_CSV_COLUMNS

    def describe(self) -> str:
        return f"CSV files in {self.csv_dir}"

    def frame(self, symbol: str, settings: SymbolSettings | None) -> "pd.DataFrame":
        return read_csv_bars(Path(self.csv_dir) / f"{symbol}.csv",
                             columns=csv_column_map(self.columns))


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) only: never to ftp:// or any other scheme."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise urllib.error.URLError(f"redirect to a non-http(s) URL {public_url(newurl)}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def check_url_template(template: str, setting: str = "TRADING_CSV_URL") -> str:
    """The template when it is an http(s) URL holding {symbol} or {symbol_lower} and no other
    placeholder, else ValueError saying what to fix."""
    if urllib.parse.urlsplit(template).scheme not in ("http", "https") or \
            not urllib.parse.urlsplit(template).netloc:
        raise ValueError(f"{setting} must be an http:// or https:// URL, got "
                         f"{public_url(template)!r}.")
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ValueError(f"{setting}: unbalanced braces ({exc}).") from None
    unknown = sorted(set(fields) - set(URL_PLACEHOLDERS))
    if unknown or not fields:
        raise ValueError(f"{setting} must hold {{symbol}} or {{symbol_lower}} (and no other "
                         f"placeholder{': found ' + ', '.join(unknown) if unknown else ''}), e.g. "
                         "https://stooq.com/q/d/l/?s={symbol_lower}.us&i=d")
    return template


def symbol_url(template: str, symbol: str) -> str:
    """The (checked) template filled with a validated symbol, percent-encoded: no path tricks."""
    symbol = validate_symbol(symbol)
    values = {"symbol": urllib.parse.quote(symbol, safe=""),
              "symbol_lower": urllib.parse.quote(symbol.lower(), safe="")}
    return template.format(**values)


def download(url: str, timeout_s: float) -> bytes:
    """The body of a GET, within `timeout_s` in total (each read is bounded too, so a server
    that drips bytes is cut off); every failure is a BarDataError naming the public URL."""
    shown = public_url(url)
    deadline = time.monotonic() + timeout_s
    opener = urllib.request.build_opener(_HttpOnlyRedirects)
    request = urllib.request.Request(url, headers={"User-Agent": "trading-signals",
                                                   "Accept": "text/csv, text/plain"})
    try:
        with opener.open(request, timeout=timeout_s) as response:
            chunks: list[bytes] = []
            size = 0
            while chunk := response.read(65536):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_DOWNLOAD_BYTES:
                    raise BarDataError(f"{shown}: more than {MAX_DOWNLOAD_BYTES} bytes; not a "
                                       "daily CSV.")
                if time.monotonic() > deadline:
                    raise TimeoutError
            kind = response.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        raise BarDataError(f"{shown}: HTTP {exc.code} {exc.reason}. Check TRADING_CSV_URL and "
                           "that the provider serves this symbol.") from None
    except (TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError):
            raise BarDataError(f"{shown}: no complete answer within {timeout_s:g} s "
                               "(TRADING_CSV_TIMEOUT_S). Check the provider is up.") from None
        raise BarDataError(f"{shown}: cannot download ({reason}). Check TRADING_CSV_URL and "
                           "the network.") from None
    body = b"".join(chunks)
    head = body[:200].decode("utf-8", "replace").strip()
    if kind in ("text/html", "application/json") or head.startswith("<") or "," not in head:
        raise BarDataError(f"{shown}: not CSV (the server sent {kind}: {head[:80]!r}). Check "
                           "TRADING_CSV_URL and that the provider knows the symbol.")
    return body


class UrlMarketData(MarketData):
    """Daily CSV per symbol from an http(s) URL template (TRADING_CSV_URL), read through the
    same parser and checks as the csv source; a failed download is an error, never a fallback."""

    source: ClassVar[str] = "url"
    url_template: str
    timeout_s: float = _DEFAULTS.csv_timeout_s
    columns: str = ""  # TRADING_CSV_COLUMNS

    @field_validator("url_template", mode="before")
    @classmethod
    def _checked_template(cls, template: object) -> object:
        # Once, when the source is built: a plain template here, an EnvVar's value when a run
        # resolves it (Dagster builds the resource again then), never once per symbol.
        return check_url_template(template) if isinstance(template, str) and \
            not isinstance(template, dg.EnvVar) else template

    def describe(self) -> str:
        return f"CSV from {public_url(plain(self.url_template))}"

    def frame(self, symbol: str, settings: SymbolSettings | None) -> "pd.DataFrame":
        url = symbol_url(plain(self.url_template), symbol)
        body = download(url, self.timeout_s)
        bars = parse_csv_bars(io.BytesIO(body), public_url(url),
                              columns=csv_column_map(self.columns))
        return bars.tail(self.lookback_days).reset_index(drop=True)


class IbkrMarketData(MarketData):
    """Daily TRADES bars from IB Gateway/TWS through the shared IBKR connection."""

    source: ClassVar[str] = "ibkr"
    ibkr: dg.ResourceDependency[IBKRResource]

    def describe(self) -> str:
        return f"IBKR {self.ibkr.host}:{self.ibkr.port}"

    def connection_metadata(self) -> dict[str, object]:
        return self.ibkr.handshake_metadata()

    def frame(self, symbol: str, settings: SymbolSettings | None) -> "pd.DataFrame":
        frame = self.ibkr.fetch_daily_bars(symbol, self.lookback_days, settings)
        if frame.empty:
            raise BarDataError(f"IBKR returned no daily bars for {symbol}.")
        return frame


MARKET_DATA_CLASSES: dict[str, type[MarketData]] = {
    cls.source: cls for cls in (SimulatedMarketData, CsvMarketData, UrlMarketData,
                                IbkrMarketData)
}

__all__ = ["Bars", "CsvMarketData", "IbkrMarketData", "MARKET_DATA_CLASSES", "MarketData",
           "SimulatedMarketData", "UrlMarketData", "check_url_template"]
