"""`ohlcv`: daily bars per symbol from the configured source, stored as parquet."""


from datetime import UTC, datetime
from typing import Any

import dagster as dg

from resources.app_db import AppDatabase
from resources.market_data import MarketData
from resources.object_store import ObjectStore
from trading_assets.assets.symbol_loop import SymbolLoop
from trading_assets.core.bars import bars_digest, checked_bars
from trading_assets.core.keys import bars_info_key, bars_version_key
from trading_assets.core.orders import SymbolSettings
from trading_assets.partitions import symbol_asset


def fetch_and_store_bars(market_data: MarketData, store: ObjectStore, symbol: str,
                         settings: SymbolSettings, run_id: str) -> dict[str, Any]:
    """One symbol's bars fetched, sanity-checked and stored as a new version; then the info
    naming that version (the one object readers start from), then the old version removed.

    A failure before the info is written (the store cut or hanging) leaves the previous info
    and the bars it names as they were: no reader pairs the new bars with the old summary.
    """
    bars = market_data.fetch(symbol, settings)
    checked_bars(bars.frame, symbol, bars.source)
    previous = store.bars_key(symbol, missing_ok=True)
    key = bars_version_key(symbol, bars.last_date, bars_digest(bars.frame))
    info = {
        "symbol": symbol, "source": bars.source, "simulated": bars.simulated,
        "rows": len(bars.frame), "first_date": str(bars.frame["date"].iloc[0].date()),
        "last_date": str(bars.last_date),
        "last_close": float(bars.frame["close"].iloc[-1]),
        "fetched_at": datetime.now(UTC).isoformat(), "dagster_run_id": run_id,
        "bars_key": key,
    }
    store.write_frame(key, bars.frame)
    store.write_json(bars_info_key(symbol), info)
    if previous and previous != key:
        store.delete(previous)
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
                    "location": store.location(info["bars_key"]),
                    **market_data.connection_metadata(),
                },
            )
    loop.finish()
