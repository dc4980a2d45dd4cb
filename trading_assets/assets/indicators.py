"""`indicators`: SMA/RSI/MACD/Bollinger/ATR on daily bars and on weekly bars resampled from them."""


from typing import TYPE_CHECKING

import dagster as dg

from resources.app_db import AppDatabase
from resources.object_store import ObjectStore
from trading_assets.assets.market_data import ohlcv
from trading_assets.assets.symbol_loop import SymbolLoop
from trading_assets.core.indicators import indicator_frames, latest_summary
from trading_assets.core.keys import indicators_key
from trading_assets.partitions import symbol_asset

if TYPE_CHECKING:  # pandas loads on first use, not when the definitions load
    import pandas as pd


def summary_table(daily: dict[str, float | None],
                  weekly: dict[str, float | None]) -> dg.TableMetadataValue:
    """Latest indicator values, daily beside weekly, as a table in the Dagster UI."""
    records = [
        dg.TableRecord({"indicator": name, "daily": daily.get(name), "weekly": weekly.get(name)})
        for name in daily
    ]
    schema = dg.TableSchema(columns=[
        dg.TableColumn("indicator", "string"), dg.TableColumn("daily", "float"),
        dg.TableColumn("weekly", "float"),
    ])
    return dg.MetadataValue.table(records, schema=schema)


def store_indicators(store: ObjectStore, symbol: str) -> dict[str, "pd.DataFrame"]:
    """The symbol's stored bars turned into indicator frames, stored per timeframe."""
    frames = indicator_frames(store.read_bars(symbol))
    for timeframe, frame in frames.items():
        store.write_frame(indicators_key(symbol, timeframe), frame)
    return frames


@symbol_asset(
    deps=[ohlcv],
    group_name="analysis",
    kinds={"pandas", "parquet"},
    description="Daily and weekly indicator frames (warm-up rows stay NaN).",
)
def indicators(context: dg.AssetExecutionContext, store: ObjectStore, app_db: AppDatabase) -> None:
    loop = SymbolLoop(context, app_db)
    for symbol in loop:
        with loop.attempt(symbol):
            frames = store_indicators(store, symbol)
            daily, weekly = (latest_summary(frames[t]) for t in ("daily", "weekly"))
            loop.record(
                symbol,
                {
                    "status": "ok",
                    "last_date": str(frames["daily"]["date"].iloc[-1].date()),
                    "daily_rows": len(frames["daily"]),
                    "weekly_rows": len(frames["weekly"]),
                    "latest": summary_table(daily, weekly),
                },
            )
    loop.finish()
