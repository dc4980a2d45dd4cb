"""Indicator frames: the columns, NaN warm-up, and values that match their definitions."""

from datetime import date

import numpy as np
import pandas as pd

from trading_assets.core.bars import simulate_bars
from trading_assets.core.indicators import (
    INDICATOR_COLUMNS,
    compute_indicators,
    indicator_problems,
    latest_summary,
    resample_weekly,
)

BARS = simulate_bars("NVDA", date(2026, 11, 20))


def test_columns_and_warm_up_stay_nan() -> None:
    frame = compute_indicators(BARS)
    assert list(frame.columns) == INDICATOR_COLUMNS
    assert frame["sma_200"].iloc[:199].isna().all()
    assert frame["sma_200"].iloc[199:].notna().all()
    assert frame["atr_14"].iloc[:13].isna().all()
    assert frame["rsi_14"].iloc[:13].isna().all()
    assert not (frame[INDICATOR_COLUMNS[6:]].fillna(1.0) == 0.0).any().any()


def test_values_match_their_definitions() -> None:
    frame = compute_indicators(BARS)
    close = BARS["close"]
    assert np.isclose(frame["sma_20"].iloc[-1], close.tail(20).mean())
    std = close.tail(20).std(ddof=0)
    assert np.isclose(frame["bb_upper"].iloc[-1], close.tail(20).mean() + 2 * std)
    assert np.isclose(frame["macd_hist"].iloc[-1],
                      frame["macd"].iloc[-1] - frame["macd_signal"].iloc[-1])
    assert frame["rsi_14"].dropna().between(0, 100).all()
    assert indicator_problems(frame) == []


def test_weekly_resample_uses_last_trading_day_of_each_week() -> None:
    weekly = resample_weekly(BARS)
    assert weekly["date"].iloc[-1] == BARS["date"].iloc[-1]
    week = BARS[BARS["date"].dt.to_period("W-FRI") == BARS["date"].iloc[-1].to_period("W-FRI")]
    assert weekly["high"].iloc[-1] == week["high"].max()
    assert weekly["volume"].iloc[-1] == week["volume"].sum()
    assert weekly["open"].iloc[-1] == week["open"].iloc[0]


def test_summary_turns_nan_into_none() -> None:
    weekly = compute_indicators(resample_weekly(BARS))
    summary = latest_summary(weekly)
    assert summary["sma_200"] is None  # 80 weeks cannot warm up a 200-week average
    assert isinstance(summary["close"], float)
    assert latest_summary(pd.DataFrame(columns=INDICATOR_COLUMNS)) == {}


def test_indicator_frames_pair_daily_with_weekly_resampled_from_it() -> None:
    from trading_assets.core.indicators import indicator_frames
    from trading_assets.core.keys import TIMEFRAMES

    frames = indicator_frames(BARS)
    assert tuple(frames) == TIMEFRAMES
    pd.testing.assert_frame_equal(frames["daily"], compute_indicators(BARS))
    pd.testing.assert_frame_equal(frames["weekly"], compute_indicators(resample_weekly(BARS)))
