"""Which symbols, in which runs: partition keys, gap-free batches and their run requests.

Every asset has ``BackfillPolicy.single_run()`` and loops over ``context.partition_keys``, so a
RunRequest tagged with a partition range covers many symbols in ONE run; a selection with gaps
(disabled symbols) is split into gap-free batches capped at TRADING_MAX_SYMBOLS_PER_RUN.
"""

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import dagster as dg

from resources.app_db import AppDatabase
from resources.object_store import ObjectStore
from trading_assets.assets.charts import charts
from trading_assets.assets.indicators import indicators
from trading_assets.assets.market_data import ohlcv
from trading_assets.assets.signals import llm_signal
from trading_assets.assets.trading import orders, portfolio
from trading_assets.checks import indicator_ranges, ohlcv_sanity
from trading_assets.core.config import AutomationSettings
from trading_assets.core.keys import bars_info_key
from trading_assets.core.orders import SymbolSettings
from trading_assets.jobs import symbol_pipeline_job
from trading_assets.partitions import (
    SYMBOLS_PARTITION,
    contiguous_batches,
    invalid_key_notice,
    invalid_keys,
    list_symbols,
)
from trading_assets.run_tags import PARTITION_TAG, launch_tags, run_tags

ANALYSIS_ASSETS = [ohlcv, indicators, charts, llm_signal]
EXECUTION_ASSETS = [orders, portfolio]
FRESHNESS_CHECK = "signal_freshness"
# Names listed in a message or in metadata, so a tick over 500 symbols stays readable.
LIST_LIMIT = 50


def check_keys_for(assets: Sequence[dg.AssetsDefinition],
                   checks: Sequence[dg.AssetChecksDefinition]) -> list[dg.AssetCheckKey]:
    """The keys of the checks that target one of `assets`."""
    asset_keys = {a.key for a in assets}
    return [key for check in checks for key in check.check_keys if key.asset_key in asset_keys]


# The data checks of the analysis chain, then signal_freshness (freshness.py) on llm_signal.
ANALYSIS_CHECK_KEYS = [*check_keys_for(ANALYSIS_ASSETS, [ohlcv_sanity, indicator_ranges]),
                       dg.AssetCheckKey(llm_signal.key, FRESHNESS_CHECK)]
# Sensor and schedule runs are symbol_pipeline runs (the job every launcher uses), each request
# selecting its assets and checks: an analysis run or an orders run, tagged like any other.
PIPELINE_JOB = symbol_pipeline_job


def sensor_status(config: AutomationSettings) -> dg.DefaultSensorStatus:
    """Sensors start running unless TRADING_AUTOMATION_RUNNING is off (then stopped)."""
    return dg.DefaultSensorStatus.RUNNING if config.running else dg.DefaultSensorStatus.STOPPED


def schedule_status(config: AutomationSettings) -> dg.DefaultScheduleStatus:
    """The schedule's default status, as for the sensors."""
    return (dg.DefaultScheduleStatus.RUNNING if config.running
            else dg.DefaultScheduleStatus.STOPPED)


def symbol_keys(instance: dg.DagsterInstance, log: Any = None) -> list[str]:
    """The partition keys that are valid symbols, in partition order (partitions.list_symbols);
    the others are reported with what symbol_sync does with them."""
    if log is not None:
        bad = invalid_keys(instance.get_dynamic_partitions(SYMBOLS_PARTITION))
        for key, symbol in bad.items():
            log.warning(invalid_key_notice(key, symbol))
    return list_symbols(instance)


def plan_batches(all_keys: Sequence[str], wanted: Iterable[str], priority: Mapping[str, int],
                 max_size: int, bridgeable: Iterable[str] = ()) -> list[list[str]]:
    """Gap-free batches of at most `max_size` symbols, highest-priority batch first.

    `bridgeable` symbols may fill a gap between wanted ones (a run for them is harmless), so
    scattered symbols still share a run; a batch starts and ends with a wanted symbol.
    """
    wanted = set(wanted)
    position = {key: i for i, key in enumerate(all_keys)}
    batches = []
    for batch in contiguous_batches(all_keys, wanted | set(bridgeable), max_size):
        inside = [i for i, key in enumerate(batch) if key in wanted]
        if inside:
            batches.append(batch[inside[0]:inside[-1] + 1])
    return sorted(batches, key=lambda b: (-max(priority.get(s, 0) for s in b if s in wanted),
                                          position[b[0]]))


def batch_request(batch: Sequence[str], run_key: str, assets: Sequence[dg.AssetsDefinition],
                  check_keys: Sequence[dg.AssetCheckKey], tags: Mapping[str, str],
                  launched_by: str) -> dg.RunRequest:
    """One run for the batch, tagged as the runs layer tags every run (run_tags.run_tags): a
    partition key for one symbol, a partition range for several."""
    tags = {**tags, **run_tags(batch, launched_by)}
    common: dict[str, Any] = {"run_key": run_key, "asset_selection": [a.key for a in assets],
                              "asset_check_keys": list(check_keys)}
    if len(batch) == 1:
        tags.pop(PARTITION_TAG)  # the request's partition_key sets it
        return dg.RunRequest(partition_key=batch[0], tags=tags, **common)
    return dg.RunRequest(tags=tags, **common)


def analysis_requests(settings: Mapping[str, SymbolSettings], symbols: Sequence[str],
                      keys: Sequence[str], prefix: str, tags: Mapping[str, str],
                      max_size: int, launched_by: str) -> list[dg.RunRequest]:
    """Analysis runs for `symbols`, batched over the partition order `keys`."""
    priority = {s: settings[s].priority for s in symbols}
    batches = plan_batches(keys, symbols, priority, max_size)
    tags = {**tags, **launch_tags(len(batches), prefix)}
    return [batch_request(batch, f"{prefix}-{i:03d}-{batch[0]}-{batch[-1]}",
                          ANALYSIS_ASSETS, ANALYSIS_CHECK_KEYS, tags, launched_by)
            for i, batch in enumerate(batches)]


def bars_info(store: ObjectStore, symbol: str) -> dict[str, Any]:
    """The symbol's stored bars summary (last_date, last_close), or {} before its first ohlcv."""
    try:
        info = store.read_json(bars_info_key(symbol))
    except FileNotFoundError:  # ObjectNotFoundError: the symbol's ohlcv never ran
        return {}
    return info if isinstance(info, dict) else {}


def latest_close(store: ObjectStore, symbol: str) -> float | None:
    """The last close of the newest stored bars, or None when no bars are stored yet."""
    value = bars_info(store, symbol).get("last_close")
    return float(value) if value else None


def fresh_symbols(symbols: Iterable[str], app_db: AppDatabase, store: ObjectStore) -> set[str]:
    """Symbols whose newest usable signal is for their latest stored bar (nothing to redo)."""
    dates = app_db.latest_signal_dates()
    fresh = set()
    for symbol in symbols:
        last = bars_info(store, symbol).get("last_date")
        if symbol in dates and last and str(dates[symbol]) >= str(last):
            fresh.add(symbol)
    return fresh


def bridgeable(keys: Sequence[str], ready: Iterable[str], app_db: AppDatabase,
               store: ObjectStore) -> set[str]:
    """Symbols between ready ones that an orders + portfolio run may cover at no risk.

    Such a symbol has no approved, unexecuted signal (so `orders` only records "nothing waiting"
    and refreshes its portfolio snapshot) and has stored bars (so `orders` does not fail on it).
    Including them turns signals scattered over the partition list into a few runs.
    """
    ready = set(ready)
    spots = [i for i, key in enumerate(keys) if key in ready]
    if len(spots) < 2:
        return set()
    unsafe = app_db.symbols_with_unexecuted_approvals()
    return {key for key in keys[spots[0]:spots[-1] + 1]
            if key not in unsafe and latest_close(store, key) is not None}


def names(symbols: Sequence[str]) -> str:
    """At most LIST_LIMIT names, then how many more."""
    shown = ", ".join(symbols[:LIST_LIMIT])
    return shown + (f" and {len(symbols) - LIST_LIMIT} more" if len(symbols) > LIST_LIMIT else "")


def load_cursor(raw: str | None) -> dict[str, Any] | None:
    """A JSON cursor, or None when there is none yet (or it is unreadable after an upgrade)."""
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def dump_cursor(value: Mapping[str, Any]) -> str:
    """A compact, stable JSON cursor."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
