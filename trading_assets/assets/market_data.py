"""`ohlcv`: daily bars per symbol from the configured source, stored as parquet."""


from datetime import UTC, datetime

import dagster as dg

from resources.app_db import AppDatabase
from resources.market_data import MarketData
from resources.object_store import ObjectStore
from trading_assets.assets.symbol_loop import SymbolLoop
from trading_assets.core.bars import BarDataError, bar_problems
from trading_assets.core.keys import bars_info_key, bars_key
from trading_assets.partitions import symbols_partitions


@dg.asset(
    partitions_def=symbols_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="market_data",
    kinds={"pandas", "parquet"},
    pool="ibkr",  # shares IBKR pacing limits with orders and portfolio
    description="Daily OHLCV bars (simulated, CSV or IBKR), at least 400 trading days.",
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
            bars = market_data.fetch(symbol, loop.settings(symbol))
            problems = bar_problems(bars.frame)
            if problems:
                # Bad bars are refused before they overwrite the last good copy in the store.
                raise BarDataError(f"{bars.source} bars for {symbol} failed sanity checks: "
                                   + "; ".join(problems))
            info = {
                "symbol": symbol, "source": bars.source, "simulated": bars.simulated,
                "rows": len(bars.frame), "first_date": str(bars.frame["date"].iloc[0].date()),
                "last_date": str(bars.last_date),
                "last_close": float(bars.frame["close"].iloc[-1]),
                "fetched_at": datetime.now(UTC).isoformat(), "dagster_run_id": context.run.run_id,
            }
            store.write_frame(bars_key(symbol), bars.frame)
            store.write_json(bars_info_key(symbol), info)
            loop.record(
                symbol,
                {
                    "status": "ok",
                    "source": "SIMULATED (not market data)" if bars.simulated else bars.source,
                    "simulated": bars.simulated,
                    "rows": dg.MetadataValue.int(len(bars.frame)),
                    "first_date": info["first_date"],
                    "last_date": info["last_date"],
                    "last_close": dg.MetadataValue.float(info["last_close"]),
                    "location": store.location(bars_key(symbol)),
                },
            )
    loop.finish()
