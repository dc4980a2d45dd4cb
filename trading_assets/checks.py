"""Asset checks: stored bars are sane and indicators are in range, per symbol of the run.

A check runs once over a multi-symbol run and names the symbols that fail. Corruption in the
store fails with ERROR severity, which blocks the downstream assets; a symbol the asset itself
rejected this run (its earlier good data kept, skipped downstream) is reported as a WARN.
"""


from collections.abc import Callable
from typing import TYPE_CHECKING

import dagster as dg

from resources.app_db import AppDatabase
from resources.object_store import ObjectNotFoundError, ObjectStore
from trading_assets.assets.indicators import indicators
from trading_assets.assets.market_data import ohlcv
from trading_assets.core.bars import bar_problems
from trading_assets.core.indicators import indicator_problems
from trading_assets.core.keys import indicators_key
from trading_assets.partitions import run_partition_keys, symbols_partitions

if TYPE_CHECKING:  # pandas loads on first use, not when the definitions load
    import pandas as pd


def _check(context: dg.AssetCheckExecutionContext, app_db: AppDatabase, store: ObjectStore,
           key_of: Callable[[str], str],
           check: Callable[["pd.DataFrame"], list[str]]) -> dg.AssetCheckResult:
    """Run `check` on each run symbol's stored frame; symbols the asset rejected are not read."""
    # context.partition_keys re-reads the partitions from the instance on every access, so the
    # keys and the run's failures are each read once.
    keys = run_partition_keys(context)
    failed = app_db.failed_symbols(context.run.run_id)
    problems = {symbol: _read_problems(store, lambda s=symbol: key_of(s), check)
                for symbol in keys if symbol not in failed}
    in_run = set(keys)
    rejected = {s: e for s, e in failed.items() if s in in_run}
    failing = {symbol: "; ".join(p) for symbol, p in problems.items() if p}
    metadata = {
        "symbols_checked": len(problems),
        "failing_symbols": dg.MetadataValue.json(failing),
        "rejected_earlier_in_run": dg.MetadataValue.json(rejected),
    }
    if failing:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR,
                                   metadata=metadata,
                                   description="Stored data failed: " + ", ".join(failing))
    if rejected:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN,
                                   metadata=metadata,
                                   description="Rejected this run (skipped downstream): "
                                   + ", ".join(rejected))
    return dg.AssetCheckResult(passed=True, metadata=metadata)


def _read_problems(store: ObjectStore, key_of: Callable[[], str],
                   check: Callable[["pd.DataFrame"], list[str]]) -> list[str]:
    try:
        key = key_of()
        return check(store.read_frame(key))
    except ObjectNotFoundError as exc:
        return [f"nothing stored: {exc}"]


@dg.asset_check(asset=ohlcv, partitions_def=symbols_partitions, blocking=True,
                description="No NaN or non-positive prices, high >= max(open, close), "
                            "low <= min(open, close), strictly increasing dates, >= 200 rows.")
def ohlcv_sanity(context: dg.AssetCheckExecutionContext, store: ObjectStore,
                 app_db: AppDatabase) -> dg.AssetCheckResult:
    return _check(context, app_db, store, lambda symbol: str(store.bars_key(symbol)),
                  bar_problems)


@dg.asset_check(asset=indicators, partitions_def=symbols_partitions, blocking=True,
                description="RSI within 0-100 and SMA 200 warmed up on the latest bar.")
def indicator_ranges(context: dg.AssetCheckExecutionContext, store: ObjectStore,
                     app_db: AppDatabase) -> dg.AssetCheckResult:
    return _check(context, app_db, store, lambda symbol: indicators_key(symbol, "daily"),
                  indicator_problems)
