"""Daily bars and contract details from IBKR's historical data service, within its pacing."""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING

from resources.ibkr.errors import (
    _NO_SUBSCRIPTION,
    IBKRConnectionLost,
    IBKRError,
    IBKRPermissionError,
)
from resources.ibkr.pacing import _PACER
from resources.ibkr.session import IBKRSession, _Connection
from resources.ibkr.values import ib_number
from trading_assets.core.orders import SymbolSettings
from trading_assets.core.symbols import validate_symbol

if TYPE_CHECKING:
    import pandas as pd
    from ib_async import BarDataList, Contract

log = logging.getLogger(__name__)


def duration_for(trading_days: int) -> str:
    """An IB duration string covering `trading_days` sessions, with room for holidays."""
    calendar_days = math.ceil(trading_days * 365 / 252) + 10
    if calendar_days <= 365:  # IB refuses "D" durations longer than a year
        return f"{calendar_days} D"
    return f"{math.ceil(calendar_days / 365)} Y"


# A download the gateway dropped (restart, network blip) is tried again on a new connection,
# this many times in all, after 1 s, then 2 s. Only a dropped connection: a refused one, bad
# data, pacing or a missing permission fail at once.
DROP_ATTEMPTS = 3
DROP_BACKOFF_S = 1.0


class MarketDataRequests(IBKRSession):
    """Historical daily bars and contract lookups (a mixin of IBKRResource)."""

    def fetch_daily_bars(
        self, symbol: str, lookback_days: int, settings: SymbolSettings | None = None
    ) -> pd.DataFrame:
        """The last `lookback_days` daily TRADES bars (regular hours), oldest first.

        Columns: date (datetime64[ns], tz-naive, midnight), open, high, low, close, volume.
        `frame.attrs["delayed"]` is True when IBKR served delayed data. A connection that drops
        during the download is reconnected and the download repeated, with backoff.
        """
        symbol = validate_symbol(symbol)
        if lookback_days < 1:
            raise ValueError(f"lookback_days must be at least 1, got {lookback_days}.")
        for attempt in range(1, DROP_ATTEMPTS + 1):
            try:
                return self._daily_bars(symbol, lookback_days, settings)
            except IBKRConnectionLost:
                if attempt == DROP_ATTEMPTS:
                    raise
                delay = DROP_BACKOFF_S * 2 ** (attempt - 1)
                log.warning("IBKR connection dropped while downloading %s's bars (attempt %d of "
                            "%d); reconnecting in %g s", symbol, attempt, DROP_ATTEMPTS, delay)
                self._drop_connection()
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _daily_bars(self, symbol: str, lookback_days: int,
                    settings: SymbolSettings | None) -> pd.DataFrame:
        import pandas as pd

        conn = self._connection()
        contract = self._qualified(conn, symbol, settings).contract
        duration = duration_for(lookback_days)
        key = (self.host, self.port, contract.conId, contract.exchange, contract.currency,
               duration, "1 day", "TRADES", True)
        frame = _PACER.cached(key)
        if frame is None:
            bars, delayed = self._historical_bars(conn, contract, symbol, duration)
            # An unset value becomes NaN, which the bar checks then name (core/bars.py).
            frame = pd.DataFrame(
                {"date": [bar.date for bar in bars]}
                | {column: [ib_number(getattr(bar, column)) for bar in bars]
                   for column in ("open", "high", "low", "close", "volume")}
            )
            dates = pd.to_datetime(frame["date"])
            if dates.dt.tz is not None:
                dates = dates.dt.tz_localize(None)
            frame["date"] = dates.dt.normalize().astype("datetime64[ns]")
            frame[["open", "high", "low", "close", "volume"]] = frame[
                ["open", "high", "low", "close", "volume"]
            ].astype(float)
            frame = frame.sort_values("date").drop_duplicates("date", keep="last")
            frame.attrs.update({"source": "ibkr", "delayed": delayed, "con_id": contract.conId})
            _PACER.remember(key, frame)
        result = frame.tail(lookback_days).reset_index(drop=True)
        result.attrs = dict(frame.attrs)
        return result

    def qualify(self, symbol: str, settings: SymbolSettings | None = None) -> dict[str, object]:
        """Resolve a symbol to IBKR's contract (conId, exchanges, currency, name)."""
        symbol = validate_symbol(symbol)
        found = self._qualified(self._connection(), symbol, settings)
        contract = found.contract
        return {
            "symbol": symbol,
            "conId": contract.conId,
            "exchange": contract.exchange,
            "primaryExchange": contract.primaryExchange,
            "currency": contract.currency,
            "longName": found.long_name,
        }

    def _historical_bars(self, conn: _Connection, contract: Contract, symbol: str,
                         duration: str) -> tuple[BarDataList, bool]:
        """Daily TRADES bars, after a pacing slot; delayed data only when allowed."""
        for _ in range(2):
            while (wait := _PACER.reserve()) > 0:
                log.info("IBKR pacing: %d historical requests in %g s; waiting %.0f s",
                         _PACER.max_requests, _PACER.window_s, wait)
                try:
                    conn.ib.sleep(min(wait, 5.0))  # keeps ib_async's loop serving the socket
                except ConnectionError as exc:
                    raise IBKRConnectionLost(
                        f"Lost the connection to the IBKR gateway at {self.host}:{self.port} "
                        "while waiting for a historical data slot; the next call reconnects."
                    ) from exc
            try:
                bars = self._call(
                    conn,
                    "the daily bars request",
                    lambda ib: ib.reqHistoricalData(
                        contract,
                        endDateTime="",
                        durationStr=duration,
                        barSizeSetting="1 day",
                        whatToShow="TRADES",
                        useRTH=True,
                        formatDate=1,
                        timeout=self.request_timeout,
                    ),
                    symbol,
                )
            except IBKRPermissionError as exc:
                may_delay = self.allow_delayed_data and not conn.delayed_data
                if exc.code in _NO_SUBSCRIPTION and may_delay:
                    log.warning("no IBKR market data subscription for %s; using delayed data",
                                symbol)
                    conn.ib.reqMarketDataType(3)
                    conn.delayed_data = True
                    continue
                raise
            if not bars:
                raise IBKRError(
                    f"IBKR returned no daily bars for {symbol} within {self.request_timeout:g} s "
                    f"(duration {duration}). Check the symbol's market data in TWS and retry."
                )
            return bars, conn.delayed_data or bars.reqId in conn.delayed_req_ids
        raise AssertionError("unreachable")
