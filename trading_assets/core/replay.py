"""Walk-forward replay: what an analyst would have been shown on past dates, and nothing later.

For each replay date the bar history is cut at that date first; the indicators, the weekly
bars, the last-bars table and (only when asked) the chart images are all computed from the
cut history. Nothing after the cut reaches the AnalysisRequest, so a replayed signal can be
scored honestly against the bars that followed it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pandas as pd

from trading_assets.core.bars import MIN_ROWS_FOR_SMA_200, last_bars_records
from trading_assets.core.indicators import indicator_frames, latest_summary
from trading_assets.core.signal import AnalysisRequest

# Live runs analyse the last TRADING_LOOKBACK_DAYS bars (400 by default); a replay shows the
# analyst the same amount of history, which also bounds the cost of each date's indicators.
DEFAULT_WINDOW = 400


class ReplayError(ValueError):
    """A replay that cannot run as asked; the message says what to change."""


def bars_until(bars: pd.DataFrame, cut: date, window: int = DEFAULT_WINDOW) -> pd.DataFrame:
    """The last `window` bars dated on or before `cut` (a copy: later bars cannot leak back)."""
    past = bars[bars["date"] <= pd.Timestamp(cut)]
    return past.tail(window).reset_index(drop=True).copy()


def replay_dates(bars: pd.DataFrame, start: date, end: date, every: int = 1,
                 min_history: int = MIN_ROWS_FOR_SMA_200) -> list[date]:
    """Every `every`-th trading date of `bars` from start to end with enough history before it.

    A date qualifies once `min_history` bars (SMA 200's warm-up) exist up to it; the walk is
    stepped in trading days, so --every 5 is roughly weekly.
    """
    if every < 1:
        raise ReplayError(f"--every {every}: use a whole number of bars, 1 or more.")
    if start > end:
        raise ReplayError(f"--start {start} is after --end {end}.")
    dates = pd.DatetimeIndex(bars["date"])
    eligible = [i for i, day in enumerate(dates)
                if i + 1 >= min_history and pd.Timestamp(start) <= day <= pd.Timestamp(end)]
    return [dates[i].date() for i in eligible[::every]]


def build_replay_request(symbol: str, bars: pd.DataFrame, cut: date, *, data_source: str,
                         simulated: bool, with_charts: bool,
                         window: int = DEFAULT_WINDOW) -> AnalysisRequest:
    """The AnalysisRequest for `symbol` as of `cut`, built only from bars up to `cut`.

    Charts are rendered only when `with_charts` (about 0.3 s each): the rules analyst and a
    no-images model never look at them. The replay is flat: no position is shown.
    """
    past = bars_until(bars, cut, window)
    if past.empty or pd.Timestamp(past["date"].iloc[-1]).date() != cut:
        raise ReplayError(f"{symbol}: no bar dated {cut} in the history.")
    frames = indicator_frames(past)
    daily, weekly = frames["daily"], frames["weekly"]
    pngs: dict[str, bytes | None] = {"daily": None, "weekly": None}
    if with_charts:
        from trading_assets.core.charts import render_chart

        for timeframe, frame in (("daily", daily), ("weekly", weekly)):
            pngs[timeframe] = render_chart(symbol, frame, timeframe, simulated=simulated).png
    return AnalysisRequest(
        symbol=symbol,
        bar_date=cut,
        data_source=data_source,
        simulated=simulated,
        daily_summary=latest_summary(daily),
        weekly_summary=latest_summary(weekly),
        last_bars=last_bars_records(past),
        position={},
        daily_chart_png=pngs["daily"],
        weekly_chart_png=pngs["weekly"],
    )


def without_charts(requests: Sequence[AnalysisRequest]) -> list[AnalysisRequest]:
    """The same requests with the chart images removed (the no-images arm of an A/B test)."""
    return [r.model_copy(update={"daily_chart_png": None, "weekly_chart_png": None})
            for r in requests]
