"""Daily bars from one of three sources behind one interface: simulated (default), csv, ibkr.

The source is chosen once by configuration (TRADING_DATA_SOURCE); a failing source raises,
it never falls back to another one.
"""


from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from resources.ibkr import IBKRResource
from trading_assets.core.bars import (
    BarDataError,
    last_completed_session,
    read_csv_bars,
    simulate_bars,
)
from trading_assets.core.orders import SymbolSettings
from trading_assets.core.symbols import validate_symbol

if TYPE_CHECKING:  # pandas loads with the first bars, not when the definitions load
    import pandas as pd

SOURCES = ("simulated", "csv", "ibkr")


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


class MarketData(dg.ConfigurableResource):
    """Fetches daily OHLCV bars; `lookback_days` trading days (400 covers SMA 200 + weekly)."""

    source: str = "simulated"
    csv_dir: str = "data/csv"
    lookback_days: int = 400
    as_of: str = ""  # simulated only: YYYY-MM-DD; empty means the last completed weekday
    ibkr: dg.ResourceDependency[IBKRResource]

    def describe(self) -> str:
        return {"simulated": "SIMULATED (not market data)", "csv": f"CSV files in {self.csv_dir}",
                "ibkr": f"IBKR {self.ibkr.host}:{self.ibkr.port}"}.get(self.source, self.source)

    def fetch(self, symbol: str, settings: SymbolSettings | None = None) -> Bars:
        symbol = validate_symbol(symbol)
        if self.source == "simulated":
            as_of = date.fromisoformat(self.as_of) if self.as_of else last_completed_session()
            frame = simulate_bars(symbol, as_of, self.lookback_days)
            return Bars(symbol, frame, "simulated", simulated=True)
        if self.source == "csv":
            frame = read_csv_bars(Path(self.csv_dir) / f"{symbol}.csv")
            return Bars(symbol, frame, "csv", simulated=False)
        if self.source == "ibkr":
            frame = self.ibkr.fetch_daily_bars(symbol, self.lookback_days, settings)
            if frame.empty:
                raise BarDataError(f"IBKR returned no daily bars for {symbol}.")
            return Bars(symbol, frame, "ibkr", simulated=False)
        raise ValueError(
            f"Unknown TRADING_DATA_SOURCE {self.source!r}; choose one of {', '.join(SOURCES)}."
        )


__all__ = ["Bars", "MarketData", "SOURCES"]
