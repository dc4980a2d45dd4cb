"""Sensors that follow the symbol list: ``new_symbols`` analyses a new symbol once, promptly;
``symbol_sync`` keeps the symbol_settings table and the ``symbols`` partitions equal.

Removed vs never added (``symbol_sync``). The sensor's cursor holds the symbols that were present
on both sides at its last tick. A symbol on one side only is a removal from the other side when it
was in that set (delete it here too), and an addition when it was not (copy it: default settings
via ``AppDatabase.ensure_symbol``, or a partition add request). With no cursor (first tick or a
reset) nothing is deleted, only copied, so the sync can never remove a symbol by mistake; the
price is that a symbol removed on one side just before a cursor reset comes back with defaults.
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from resources.app_db import AppDatabase
from resources.broker import Broker
from resources.ibkr import IBKRConnectionError
from resources.market_data import MarketData
from resources.object_store import ObjectStore
from trading_assets.assets.signals import llm_signal
from trading_assets.automation.planning import (
    PIPELINE_JOB,
    analysis_requests,
    dump_cursor,
    fresh_symbols,
    load_cursor,
    names,
    sensor_status,
    symbol_keys,
)
from trading_assets.core.config import AutomationSettings
from trading_assets.partitions import (
    SYMBOLS_PARTITION,
    Removal,
    SymbolRefusedError,
    busy_keys,
    invalid_key_notice,
    invalid_keys,
    register_symbols,
    retire_symbol,
    symbols_partitions,
)
from trading_assets.run_tags import analysing_symbols


def new_symbol_runs(context: dg.SensorEvaluationContext, app_db: AppDatabase,
                    store: ObjectStore, config: AutomationSettings) -> dg.SensorResult:
    """Analysis runs for symbols not seen at the last tick, unless busy, fresh or disabled."""
    keys = symbol_keys(context.instance, context.log)
    cursor = load_cursor(context.cursor)
    if cursor is None:
        # First tick: symbols that already have a signal materialization are not new, so
        # turning the sensor on in a running deployment does not re-run everything.
        seen = context.instance.get_materialized_partitions(llm_signal.key) & set(keys)
        generation = 0
    else:
        seen = set(cursor.get("seen", [])) & set(keys)
        generation = int(cursor.get("generation", 0))
    new = [s for s in keys if s not in seen]
    settings = app_db.settings_by_symbol(new)
    enabled = [s for s in new if settings[s].enabled]
    disabled = [s for s in new if s not in enabled]
    # Another run has it (left unseen: checked again once that run ends) or its signal is
    # already for its latest bar (seen: nothing to redo).
    busy = analysing_symbols(context.instance, keys) & set(enabled) if enabled else set()
    fresh = fresh_symbols([s for s in enabled if s not in busy], app_db, store)
    todo = [s for s in enabled if s not in busy and s not in fresh]
    seen |= set(new) - busy
    notes = [f"{label}: {names(sorted(items))}" for label, items in (
        ("already queued or running", busy), ("signal already fresh", fresh),
        ("disabled, not analysed", disabled)) if items]
    if not todo:
        reason = ("No new symbols." if not new
                  else f"New symbols, none to run: {'; '.join(notes)}.")
        return dg.SensorResult(skip_reason=reason, cursor=dump_cursor(
            {"seen": sorted(seen), "generation": generation}))
    generation += 1  # re-adding a removed symbol later must not reuse an old run key
    requests = analysis_requests(settings, todo, keys, f"new-symbols-{generation}",
                                 {"trading/trigger": "new_symbols"},
                                 config.max_symbols_per_run, "sensor")
    context.log.info(f"New symbols {names(todo)} in {len(requests)} run(s)"
                     + (f"; {'; '.join(notes)}" if notes else ""))
    return dg.SensorResult(run_requests=requests, cursor=dump_cursor(
        {"seen": sorted(seen), "generation": generation}))


def sync_symbols(context: dg.SensorEvaluationContext, app_db: AppDatabase,
                 resources: Mapping[str, Any]) -> dg.SensorResult:
    """Copy additions and removals between the settings table and the partitions (see above).

    Additions go through partitions.register_symbols, as the CLI's and the app's do (the
    contract is confirmed at IBKR when it is configured); a key a queued or running run names
    is kept until that run ends, since removing it would fail the run inside Dagster. A
    removal ends what the symbol had in flight, as any removal does (partitions.retire_symbol).
    """
    partitions = set(symbol_keys(context.instance))
    configured = {s.symbol for s in app_db.list_settings()}
    cursor = load_cursor(context.cursor)
    was_synced = set(cursor.get("synced", [])) if cursor is not None else set()
    register, delete, removed, notes = [], [], [], []
    # Keys typed in the Dagster UI that are no symbol as written: rename or remove them.
    for key, symbol in invalid_keys(context.instance.get_dynamic_partitions(
            SYMBOLS_PARTITION)).items():
        context.log.warning(invalid_key_notice(key, symbol))
        delete.append(key)
        if symbol is not None and symbol not in partitions:
            register.append(symbol)
    for symbol in sorted(partitions - configured):
        if symbol in was_synced:  # removed in the app: remove the partition too
            delete.append(symbol)
        else:  # added in the Dagster UI: give it default settings
            register.append(symbol)
    for symbol in sorted(configured - partitions):
        if symbol in was_synced:  # partition deleted in the Dagster UI: remove it here too
            report = Removal()
            retire_symbol(app_db, resources["broker"], symbol, report)
            app_db.remove_symbol(symbol)
            removed.append(symbol)
            notes += [f"{symbol} removed in the Dagster UI: {line}" for line in report.lines()]
        elif symbol not in register:  # added in the app only: add the partition
            register.append(symbol)
    registered = []
    for symbol in dict.fromkeys(register):
        try:
            register_symbols(context.instance, app_db, [symbol], resources)
            registered.append(symbol)
        except SymbolRefusedError as exc:
            notes.append(str(exc))
            if not isinstance(exc.__cause__, IBKRConnectionError) and symbol in partitions:
                delete.append(symbol)  # IBKR knows no such stock: the key goes
    busy = busy_keys(context.instance, delete)
    for key, run_ids in busy.items():
        notes.append(f"{key!r} kept while run {', '.join(i[:8] for i in run_ids)} names it "
                     "(removing it would fail that run); removed at a later tick")
    delete = [key for key in dict.fromkeys(delete) if key not in busy]
    for note in notes:
        context.log.warning(note)
    # A deletion put off for a run stays "synced", so the next tick still deletes it.
    synced = (partitions & configured) | set(registered) | (set(busy) & was_synced)
    changes = [f"{label}: {names(items)}" for label, items in (
        ("registered", registered), ("partitions deleted", delete),
        ("removed (settings kept)", removed)) if items]
    new_cursor = dump_cursor({"synced": sorted(synced)})
    if not changes:
        return dg.SensorResult(skip_reason=f"In sync ({len(synced)} symbols)."
                               + (f" {'; '.join(notes)}." if notes else ""), cursor=new_cursor)
    context.log.info("; ".join(changes))
    return dg.SensorResult(cursor=new_cursor, dynamic_partitions_requests=[
        symbols_partitions.build_delete_request(delete)] if delete else [])


def build_symbol_sensors(config: AutomationSettings) -> list[dg.SensorDefinition]:
    """``new_symbols`` and ``symbol_sync``."""

    @dg.sensor(
        name="new_symbols",
        job=PIPELINE_JOB,
        # A symbol added in the app or the CLI has its signal within ~30 s: at most 10 s to the
        # tick, then one in-process run.
        minimum_interval_seconds=10,
        default_status=sensor_status(config),
        description="A symbol added anywhere (Dagster UI, app, CLI) is analysed once, promptly, "
                    "unless a run for it is already queued or running or its signal is fresh.",
    )
    def new_symbols(context: dg.SensorEvaluationContext, app_db: AppDatabase,
                    store: ObjectStore) -> dg.SensorResult:
        return new_symbol_runs(context, app_db, store, config)

    @dg.sensor(
        name="symbol_sync",
        minimum_interval_seconds=60,
        default_status=sensor_status(config),
        description="Keeps the app's symbol settings and the Dagster symbols partitions equal.",
    )
    def symbol_sync(context: dg.SensorEvaluationContext, app_db: AppDatabase,
                    market_data: MarketData, broker: Broker) -> dg.SensorResult:
        return sync_symbols(context, app_db, {"market_data": market_data, "broker": broker})

    return [new_symbols, symbol_sync]
