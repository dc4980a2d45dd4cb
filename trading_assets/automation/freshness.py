"""``signal_freshness``: a check on llm_signal in every analysis run, and a sensor between runs.

A symbol is stale when its newest usable signal is more than TRADING_SIGNAL_MAX_AGE_DAYS XNYS
trading days behind (a symbol the daily refresh missed, a data source that stopped).
"""

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import dagster as dg

import trading_assets.core.clock as clock
from resources.app_db import AppDatabase
from trading_assets.assets.signals import llm_signal
from trading_assets.automation.planning import (
    FRESHNESS_CHECK,
    LIST_LIMIT,
    dump_cursor,
    load_cursor,
    names,
    sensor_status,
    symbol_keys,
)
from trading_assets.core.calendar import trading_days_old
from trading_assets.core.config import AutomationSettings
from trading_assets.partitions import run_partition_keys, symbols_partitions


def stale_signals(symbols: Iterable[str], latest_dates: Mapping[str, Any], now: datetime,
                  max_age: int) -> dict[str, str]:
    """Symbols whose newest usable signal is more than `max_age` trading days behind, and why."""
    stale: dict[str, str] = {}
    for symbol in symbols:
        bar_date = latest_dates.get(symbol)
        if bar_date is None:
            stale[symbol] = "no signal yet"
            continue
        age = trading_days_old(bar_date, now)
        if age > max_age:
            stale[symbol] = f"latest signal is for {bar_date}, {age} trading days old"
    return stale


def build_freshness_check(config: AutomationSettings) -> dg.AssetChecksDefinition:
    """`signal_freshness` on llm_signal: in a run, names the run's symbols left without a fresh
    signal (stale data source, analysis error); the freshness sensor reports it between runs."""

    @dg.asset_check(asset=llm_signal, name=FRESHNESS_CHECK, partitions_def=symbols_partitions,
                    blocking=False,
                    description="Newest usable signal at most TRADING_SIGNAL_MAX_AGE_DAYS "
                                f"(now {config.signal_max_age_days}) XNYS trading days behind.")
    def signal_freshness(context: dg.AssetCheckExecutionContext,
                         app_db: AppDatabase) -> dg.AssetCheckResult:
        keys = run_partition_keys(context)
        stale = stale_signals(keys, app_db.latest_signal_dates(),
                              clock.utc_now(), config.signal_max_age_days)
        return dg.AssetCheckResult(
            passed=not stale,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"symbols_checked": len(keys),
                      "stale_symbols": dg.MetadataValue.json(stale),
                      "max_age_trading_days": config.signal_max_age_days},
            description=("Stale: " + names(sorted(stale))) if stale else None,
        )

    return signal_freshness


def freshness_events(context: dg.SensorEvaluationContext, app_db: AppDatabase,
                     config: AutomationSettings) -> dg.SensorResult:
    """A check evaluation for each symbol whose state (stale / fresh) changed since last tick."""
    keys = symbol_keys(context.instance)
    settings = app_db.settings_by_symbol(keys)
    enabled = [s for s in keys if settings[s].enabled]
    stale = stale_signals(enabled, app_db.latest_signal_dates(), clock.utc_now(),
                          config.signal_max_age_days)
    cursor = load_cursor(context.cursor) or {}
    before = {s: "stale" for s in cursor.get("stale", [])}
    before.update({s: "fresh" for s in cursor.get("fresh", [])})
    stale_names = sorted(stale)
    events = []
    for symbol in keys:
        state = "stale" if symbol in stale else "fresh"
        if before.get(symbol) == state:
            continue  # report changes only: hundreds of symbols, every 15 minutes
        reason = stale.get(symbol) or ("disabled: not refreshed" if symbol not in enabled
                                       else "fresh")
        events.append(dg.AssetCheckEvaluation(
            asset_key=llm_signal.key, check_name=FRESHNESS_CHECK, partition=symbol,
            passed=state == "fresh", severity=dg.AssetCheckSeverity.WARN,
            description=reason,
            metadata={"reason": reason, "stale_symbols": dg.MetadataValue.json(
                stale_names[:LIST_LIMIT]), "stale_count": len(stale_names),
                "max_age_trading_days": config.signal_max_age_days},
        ))
    new_cursor = dump_cursor({"stale": stale_names,
                              "fresh": sorted(s for s in keys if s not in stale)})
    if not events:
        return dg.SensorResult(skip_reason=(
            f"{len(stale_names)} stale: {names(stale_names)}" if stale_names
            else "All enabled symbols fresh."), cursor=new_cursor)
    if stale_names:
        context.log.warning(f"Stale signals: {names(stale_names)}")
    return dg.SensorResult(asset_events=events, cursor=new_cursor)


def build_freshness_sensor(config: AutomationSettings) -> dg.SensorDefinition:
    """The sensor reporting `signal_freshness` per symbol between runs."""

    @dg.sensor(
        name="signal_freshness_sensor",
        minimum_interval_seconds=900,
        default_status=sensor_status(config),
        description="Reports the signal_freshness check per symbol between runs (a stale symbol "
                    "is one the daily refresh missed).",
    )
    def signal_freshness_sensor(context: dg.SensorEvaluationContext,
                                app_db: AppDatabase) -> dg.SensorResult:
        return freshness_events(context, app_db, config)

    return signal_freshness_sensor
