"""`ohlcv`: daily bars per symbol from the configured source, stored as parquet."""


from datetime import UTC, datetime
from typing import Any

import dagster as dg

from resources.app_db import AppDatabase
from resources.market_data import MarketData
from resources.object_store import ObjectStore
from trading_assets.assets.symbol_loop import SymbolLoop
from trading_assets.core.bars import checked_bars
from trading_assets.core.keys import bars_info_key, bars_key
from trading_assets.core.orders import SymbolSettings
from trading_assets.partitions import symbol_asset


def fetch_and_store_bars(market_data: MarketData, store: ObjectStore, symbol: str,
                         settings: SymbolSettings, run_id: str) -> dict[str, Any]:
    """One symbol's bars fetched, sanity-checked and stored; the info record stored beside them."""
    bars = market_data.fetch(symbol, settings)
    checked_bars(bars.frame, symbol, bars.source)
    info = {
        "symbol": symbol, "source": bars.source, "simulated": bars.simulated,
        "rows": len(bars.frame), "first_date": str(bars.frame["date"].iloc[0].date()),
        "last_date": str(bars.last_date),
        "last_close": float(bars.frame["close"].iloc[-1]),
        "fetched_at": datetime.now(UTC).isoformat(), "dagster_run_id": run_id,
    }
    store.write_frame(bars_key(symbol), bars.frame)
    store.write_json(bars_info_key(symbol), info)
    return info


@symbol_asset(
    group_name="market_data",
    kinds={"pandas", "parquet"},
    pool="ibkr",  # shares IBKR pacing limits with orders and portfolio
    description="Daily OHLCV bars (simulated, CSV, URL or IBKR), at least 400 trading days.",
)
def ohlcv(
    context: dg.AssetExecutionContext,
    market_data: MarketData,
    store: ObjectStore,
    app_db: AppDatabase,
) -> None:
    loop = SymbolLoop(context, app_db)
    for symbol in loop:
        with loop.attempt(symbol):
            info = fetch_and_store_bars(market_data, store, symbol, loop.settings(symbol),
                                        context.run.run_id)
            loop.record(
                symbol,
                {
                    "status": "ok",
                    "source": "SIMULATED (not market data)" if info["simulated"]
                    else info["source"],
                    "simulated": info["simulated"],
                    "rows": dg.MetadataValue.int(info["rows"]),
                    "first_date": info["first_date"],
                    "last_date": info["last_date"],
                    "last_close": dg.MetadataValue.float(info["last_close"]),
                    "location": store.location(bars_key(symbol)),
                },
            )
    loop.finish()
