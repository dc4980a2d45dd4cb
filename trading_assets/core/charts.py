"""Candlestick charts (mplfinance): price with SMA and Bollinger overlays, volume, RSI and MACD."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import pandas as pd

DAILY_BARS_SHOWN = 150
WEEKLY_BARS_SHOWN = 104


@dataclass(frozen=True)
class ChartImage:
    timeframe: str
    png: bytes
    last_date: pd.Timestamp
    bars_shown: int


def render_chart(symbol: str, frame: pd.DataFrame, timeframe: str, *, simulated: bool,
                 bars: int | None = None, dpi: int = 72) -> ChartImage:
    """Render one timeframe's indicator frame to PNG bytes (Agg backend, no window)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    # mplfinance's styles ask for a "semibold" title DejaVu Sans lacks; the fallback is fine.
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    import matplotlib.pyplot as plt
    import mplfinance as mpf

    shown = bars or (DAILY_BARS_SHOWN if timeframe == "daily" else WEEKLY_BARS_SHOWN)
    data = frame.tail(shown).set_index("date")
    data.index = pd.DatetimeIndex(data.index)
    ohlc = data.rename(columns=str.title)[["Open", "High", "Low", "Close", "Volume"]]

    def overlay(column: str, **kwargs: object) -> list[object]:
        # mplfinance refuses an all-NaN series (e.g. SMA 200 on a short weekly history).
        if data[column].notna().any():
            return [mpf.make_addplot(data[column], secondary_y=False, **kwargs)]
        return []

    plots = [
        *overlay("sma_20", color="#1f77b4", width=0.8),
        *overlay("sma_50", color="#ff7f0e", width=0.8),
        *overlay("sma_200", color="#d62728", width=0.8),
        *overlay("bb_upper", color="#7f7f7f", width=0.6, linestyle="--"),
        *overlay("bb_lower", color="#7f7f7f", width=0.6, linestyle="--"),
        # Volume and the MACD histogram are drawn below as one LineCollection each: mplfinance's
        # bar type adds one patch per bar, which was two thirds of the rendering time.
        mpf.make_addplot(data["volume"], panel=1, color="none", ylabel="Volume",
                         secondary_y=False),
        *overlay("rsi_14", panel=2, color="#9467bd", ylabel="RSI", ylim=(0, 100)),
        *overlay("macd", panel=3, color="#1f77b4", ylabel="MACD"),
        *overlay("macd_signal", panel=3, color="#ff7f0e"),
    ]
    last_date = pd.Timestamp(data.index[-1])
    title = f"{symbol} {timeframe} to {last_date.date()}"
    fig, axes = mpf.plot(
        ohlc, type="candle", style="yahoo", addplot=plots, volume=False, returnfig=True,
        panel_ratios=(4, 1, 1.2, 1.2), figsize=(10, 7.5), title=title,
        scale_padding={"left": 0.2, "top": 0.4, "right": 0.8, "bottom": 0.6},
        warn_too_much_data=10_000, xrotation=0, datetime_format="%Y-%m-%d",
    )
    # mplfinance gives each panel a primary and a secondary axis: panel n is axes[2 * n]. The
    # secondaries are unused here; hiding them and thinning the ticks halves the drawing time.
    from matplotlib.ticker import MaxNLocator

    for secondary in axes[1::2]:
        secondary.set_visible(False)
    for primary in axes[0::2]:
        primary.yaxis.set_major_locator(MaxNLocator(nbins=3 if primary is not axes[0] else 6))
    price_cols = ["low", "high", "bb_lower", "bb_upper", "sma_20", "sma_50", "sma_200"]
    axes[0].set_ylim(float(data[price_cols].min().min()) * 0.98,
                     float(data[price_cols].max().max()) * 1.02)
    x = range(len(data))
    up = (data["close"] >= data["open"]).to_numpy()
    axes[2].vlines(x, 0, data["volume"], colors=["#26a69a" if u else "#ef5350" for u in up],
                   linewidth=2)
    axes[2].set_ylim(0, float(data["volume"].max()) * 1.1)
    if data["macd_hist"].notna().any():
        hist = data["macd_hist"].fillna(0.0)
        axes[6].vlines(x, 0, hist, colors="#999999", linewidth=2)
    if simulated:
        fig.text(0.5, 0.55, "SIMULATED DATA", fontsize=44, color="red", alpha=0.18,
                 ha="center", va="center", rotation=20, weight="bold")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return ChartImage(timeframe=timeframe, png=buffer.getvalue(), last_date=last_date,
                      bars_shown=len(data))


def preview_png(png: bytes, width: int = 420) -> bytes:
    """A small palette PNG for inline display: a full chart in every event would bloat the log."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    height = round(image.height * width / image.width)
    small = image.resize((width, height), Image.Resampling.LANCZOS).quantize(colors=64)
    buffer = io.BytesIO()
    small.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
