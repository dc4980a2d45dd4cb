"""The bench's chart comparison: the project's renderer beside mplfinance, same chart, same run.

Both draw one symbol's daily chart with the same panels (candles with SMA 20/50/200 and the
Bollinger bands, volume, RSI, MACD with its signal line and histogram) at the same size and
resolution, to PNG bytes. mplfinance is a bench extra (`pip install trading-signals[bench]`),
never a runtime dependency: this comparison is the evidence for that choice.
"""

from __future__ import annotations

import io
import statistics
import time
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

FIGSIZE = (10, 7.5)
DPI = 72


def mplfinance_png(symbol: str, frame: pd.DataFrame, bars: int) -> bytes:
    """The daily chart drawn by mplfinance on a fresh figure, as its own users call it."""
    import logging

    import matplotlib

    matplotlib.use("Agg")
    # The "yahoo" style asks for a semibold font DejaVu lacks: one warning per chart otherwise.
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    import mplfinance as mpf
    import pandas as pd

    from trading_assets.core.charts import OVERLAYS, PANEL_RATIOS

    data = frame.tail(bars).set_index("date")
    data.index = pd.DatetimeIndex(data.index)
    prices = data.rename(columns=str.title)[["Open", "High", "Low", "Close", "Volume"]]
    plots = [mpf.make_addplot(data[column], panel=0, color=color, width=width,
                              linestyle="dashed" if style == "--" else "solid")
             for column, color, width, style, _label in OVERLAYS]
    plots += [
        mpf.make_addplot(data["rsi_14"], panel=2, color="#9467bd", ylabel="RSI", ylim=(0, 100)),
        mpf.make_addplot(data["macd_hist"], panel=3, type="bar", color="#999999"),
        mpf.make_addplot(data["macd"], panel=3, color="#1f77b4", ylabel="MACD",
                         secondary_y=False),
        mpf.make_addplot(data["macd_signal"], panel=3, color="#ff7f0e", secondary_y=False),
    ]
    buffer = io.BytesIO()
    mpf.plot(prices, type="candle", volume=True, addplot=plots, panel_ratios=PANEL_RATIOS,
             figsize=FIGSIZE, style="yahoo", title=f"{symbol} daily", tight_layout=False,
             warn_too_much_data=10_000, savefig={"fname": buffer, "dpi": DPI, "format": "png"})
    import matplotlib.pyplot as plt

    plt.close("all")  # mplfinance registers each figure with pyplot
    return buffer.getvalue()


def compare_renderers(runs: int, as_of: str) -> dict[str, Any]:
    """Median seconds for one daily chart with each renderer (after one untimed warm-up each)."""
    try:
        import mplfinance  # noqa: F401
    except ImportError:
        return {"skipped": "mplfinance not installed: pip install 'trading-signals[bench]'"}
    from trading_assets.core.bars import simulate_bars
    from trading_assets.core.charts import DAILY_BARS_SHOWN, render_chart
    from trading_assets.core.indicators import indicator_frames

    symbol = "CHART"
    daily = indicator_frames(simulate_bars(symbol, date.fromisoformat(as_of)))["daily"]
    renderers = {
        "project": lambda: render_chart(symbol, daily, "daily", simulated=True, dpi=DPI).png,
        "mplfinance": lambda: mplfinance_png(symbol, daily, DAILY_BARS_SHOWN),
    }
    times: dict[str, list[float]] = {name: [] for name in renderers}
    sizes: dict[str, int] = {}
    for name, draw in renderers.items():
        sizes[name] = len(draw())  # warm-up: imports, the reused figure, font caches
    for _ in range(max(1, runs)):
        for name, draw in renderers.items():  # interleaved: a load spike hits both alike
            started = time.perf_counter()
            draw()
            times[name].append(time.perf_counter() - started)
    median = {name: statistics.median(values) for name, values in times.items()}
    return {
        "runs": max(1, runs), "bars": DAILY_BARS_SHOWN,
        "project_s": round(median["project"], 4), "mplfinance_s": round(median["mplfinance"], 4),
        "ratio": round(median["mplfinance"] / median["project"], 1) if median["project"] else None,
        "png_bytes": sizes,
    }
