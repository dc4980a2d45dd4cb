"""Technical indicators (the `ta` library) on daily bars and on weekly bars resampled from them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas loads on first use, not when the definitions load
    import pandas as pd

from trading_assets.core.bars import BAR_COLUMNS

INDICATOR_COLUMNS = [
    *BAR_COLUMNS,
    "sma_20", "sma_50", "sma_200", "rsi_14", "macd", "macd_signal", "macd_hist",
    "bb_upper", "bb_middle", "bb_lower", "atr_14", "volume_sma_20",
]
SUMMARY_COLUMNS = INDICATOR_COLUMNS[1:]


def resample_weekly(bars: pd.DataFrame) -> pd.DataFrame:
    """Weekly bars (Monday-Friday weeks) labelled with each week's last trading date."""
    import pandas as pd

    week = bars["date"].dt.to_period("W-FRI")
    grouped = bars.groupby(week, sort=True)
    weekly = pd.DataFrame(
        {
            "date": grouped["date"].last(),
            "open": grouped["open"].first(),
            "high": grouped["high"].max(),
            "low": grouped["low"].min(),
            "close": grouped["close"].last(),
            "volume": grouped["volume"].sum(),
        }
    )
    return weekly.reset_index(drop=True)


def compute_indicators(bars: pd.DataFrame) -> pd.DataFrame:
    """SMA 20/50/200, RSI 14, MACD 12/26/9, Bollinger 20/2, ATR 14, volume SMA 20.

    Warm-up rows stay NaN: a zero or back-filled value would read as a real reading.
    """
    import numpy as np
    from ta.momentum import RSIIndicator
    from ta.trend import MACD, SMAIndicator
    from ta.volatility import AverageTrueRange, BollingerBands

    frame = bars[BAR_COLUMNS].reset_index(drop=True).copy()
    close, high, low = frame["close"], frame["high"], frame["low"]
    for window in (20, 50, 200):
        frame[f"sma_{window}"] = SMAIndicator(close, window=window).sma_indicator()
    frame["rsi_14"] = RSIIndicator(close, window=14).rsi()
    macd = MACD(close, window_slow=26, window_fast=12, window_sign=9)
    frame["macd"] = macd.macd()
    frame["macd_signal"] = macd.macd_signal()
    frame["macd_hist"] = macd.macd_diff()
    bands = BollingerBands(close, window=20, window_dev=2)
    frame["bb_upper"] = bands.bollinger_hband()
    frame["bb_middle"] = bands.bollinger_mavg()
    frame["bb_lower"] = bands.bollinger_lband()
    atr = AverageTrueRange(high, low, close, window=14).average_true_range()
    # ta fills ATR's warm-up with zeros instead of NaN.
    atr.iloc[: min(13, len(atr))] = np.nan
    frame["atr_14"] = atr.where(atr > 0)
    frame["volume_sma_20"] = frame["volume"].rolling(20, min_periods=20).mean()
    return frame[INDICATOR_COLUMNS]


def indicator_frames(bars: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Indicators per timeframe (keys.TIMEFRAMES order): on the daily bars and on weekly bars
    resampled from them, so every caller pairs the two the same way."""
    return {"daily": compute_indicators(bars), "weekly": compute_indicators(resample_weekly(bars))}


def latest_summary(frame: pd.DataFrame) -> dict[str, float | None]:
    """The last row's values, NaN as None, rounded for display and prompts."""
    if frame.empty:
        return {}
    row = frame.iloc[-1]
    summary: dict[str, float | None] = {}
    for column in SUMMARY_COLUMNS:
        value = float(row[column])
        summary[column] = None if math.isnan(value) else round(value, 4)
    return summary


def indicator_problems(frame: pd.DataFrame) -> list[str]:
    """Range checks on computed indicators (RSI within 0-100, warm-up completed)."""
    import pandas as pd

    problems: list[str] = []
    rsi = frame["rsi_14"].dropna()
    out_of_range = rsi[(rsi < 0) | (rsi > 100)]
    if not out_of_range.empty:
        problems.append(f"RSI outside 0-100 on {len(out_of_range)} bar(s)")
    if frame.empty or pd.isna(frame["sma_200"].iloc[-1]):
        problems.append("SMA 200 not warmed up on the latest bar (need at least 200 daily bars)")
    return problems
