"""Schedules and sensors that run the platform by themselves.

What runs, and why this shape (checked on Dagster 1.13.27):

* ``daily_refresh`` (schedule, default 16:30 America/New_York, Monday to Friday): on a day the
  XNYS calendar (exchange_calendars) says traded, and once that session has closed, it refreshes
  every enabled symbol through ``ohlcv -> indicators -> charts -> llm_signal`` (with the data
  checks and ``signal_freshness``). Holidays and weekends skip with the holiday's name; an
  early-close day (13:00) runs at 16:30 as usual.
* ``approved_signals`` (sensor): every approved signal, and every auto-approved one whose
  analysis run has finished, gets exactly one ``orders`` + ``portfolio`` run unless it is stale,
  in which case it is expired (reviewer ``sensor:stale``, with the reason). So orders for
  auto-approved signals follow the tick within one sensor interval, through the same path and
  the same staleness rules as a human approval; the tick itself never places orders.
* ``new_symbols`` (sensor, every 10 s): a partition that appears from anywhere (Dagster UI,
  Gradio, CLI, ``symbol_sync``) gets the analysis chain once, promptly; never when a run covering
  the symbol is already queued or running (Gradio's "Add + Run now", ``trading-signals
  materialize``: re-checked next tick) or its signal is for its latest stored bar.
* ``symbol_sync`` (sensor): keeps the symbol_settings table and the ``symbols`` partitions equal,
  and repairs partition keys added in the Dagster UI that are not symbols (``nvda`` becomes
  NVDA, ``../etc`` is removed), saying so in the tick log.
* ``symbol_run_failures`` (run-failure sensor): records a failed run against its symbols in the
  application database and posts an optional, secret-free JSON alert to ALERT_WEBHOOK_URL.
* ``signal_freshness`` (asset check on ``llm_signal`` plus a sensor reporting it): flags symbols
  whose newest usable signal is more than TRADING_SIGNAL_MAX_AGE_DAYS trading days behind.

Runs over many symbols. Every asset has ``BackfillPolicy.single_run()`` and loops over
``context.partition_keys``, so a RunRequest tagged ``dagster/asset_partition_range_start`` /
``_end`` covers a range of symbols in ONE run (a single symbol uses ``partition_key``). Dagster
resolves such a range over the dynamic partition list in insertion order, so a selection with gaps
(disabled symbols) is split into gap-free batches (``partitions.contiguous_batches``, shared with
the CLI) and each batch is capped at TRADING_MAX_SYMBOLS_PER_RUN (default 200): hundreds of symbols
make a handful of runs. ``approved_signals`` also lets a batch span symbols with nothing to
execute (no unexecuted approval, bars stored: ``orders`` only notes "nothing waiting" for them),
so signals scattered over the list still share a few runs. Plain run requests were chosen over
sensor-launched backfills (``RunRequest.for_asset_graph_subset``) because that constructor is
private in 1.13, and run requests keep run keys, tags and tests (execute the request with
``dg.materialize``) simple. Verified on 1.13.27 under ``dagster dev``: the daemon launched
``new_symbols``'s range request as one run (multiprocess executor) that materialized every symbol.

Priority. Batches are requested highest priority first (a batch ranks by its highest-priority
symbol, ties by partition order), which is the order the run queue starts them. Inside a run the
symbols go in partition (insertion) order: splitting ranges by priority would multiply the runs.

Removed vs never added (``symbol_sync``). The sensor's cursor holds the symbols that were present
on both sides at its last tick. A symbol on one side only is a removal from the other side when it
was in that set (delete it here too), and an addition when it was not (copy it: default settings
via ``AppDatabase.ensure_symbol``, or a partition add request). With no cursor (first tick or a
reset) nothing is deleted, only copied, so the sync can never remove a symbol by mistake; the
price is that a symbol removed on one side just before a cursor reset comes back with defaults.
No table or column is needed for this (the cursor lives in the Dagster instance).
"""

import hashlib
import json
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from resources.app_db import AppDatabase, SignalRow
from resources.object_store import ObjectStore
from trading_assets.assets.charts import charts
from trading_assets.assets.indicators import indicators
from trading_assets.assets.market_data import ohlcv
from trading_assets.assets.signals import llm_signal
from trading_assets.assets.trading import orders, portfolio
from trading_assets.checks import indicator_ranges, ohlcv_sanity
from trading_assets.core.calendar import tick_session, trading_days_old
from trading_assets.core.errors import root_error
from trading_assets.core.keys import bars_info_key
from trading_assets.core.orders import SymbolSettings, approval_stale_reason
from trading_assets.core.signal import SignalStatus
from trading_assets.core.symbols import InvalidSymbolError, validate_symbol
from trading_assets.partitions import (
    SYMBOLS_PARTITION,
    contiguous_batches,
    invalid_key_notice,
    invalid_keys,
    symbols_partitions,
)
from trading_assets.runs import RANGE_END, RANGE_START, analysing_symbols, run_symbols
from trading_assets.settings import AutomationConfig

ANALYSIS_ASSETS = [ohlcv, indicators, charts, llm_signal]
EXECUTION_ASSETS = [orders, portfolio]
FRESHNESS_CHECK = "signal_freshness"
STALE_REVIEWER = "sensor:stale"
# Names listed in a message or in metadata, so a tick over 500 symbols stays readable.
_LIST_LIMIT = 50


def utc_now() -> datetime:
    """The sensors' clock (tests replace it)."""
    return datetime.now(UTC)


# --- planning: which symbols, in which runs -----------------------------------------------


def symbol_keys(instance: dg.DagsterInstance, log: Any = None) -> list[str]:
    """The partition keys that are valid symbols, in partition order; others are reported."""
    keys: list[str] = []
    for key in instance.get_dynamic_partitions(SYMBOLS_PARTITION):
        try:
            valid = validate_symbol(key) == key
        except InvalidSymbolError:
            valid = False
        if valid:
            keys.append(key)
        elif log is not None:
            log.warning(f"Partition {key!r} is not a valid symbol (upper-case ticker such as "
                        "AAPL or BRK.B); it is ignored. Delete it in the Dagster UI.")
    return keys


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


def check_keys_for(assets: Sequence[dg.AssetsDefinition],
                   checks: Sequence[dg.AssetChecksDefinition]) -> list[dg.AssetCheckKey]:
    """The keys of the checks that target one of `assets`."""
    asset_keys = {a.key for a in assets}
    return [key for check in checks for key in check.check_keys if key.asset_key in asset_keys]


def batch_request(batch: Sequence[str], run_key: str, assets: Sequence[dg.AssetsDefinition],
                  check_keys: Sequence[dg.AssetCheckKey], tags: Mapping[str, str]
                  ) -> dg.RunRequest:
    """One run for the batch: a partition key for one symbol, a partition range for several."""
    tags = {**tags, "trading/symbol_count": str(len(batch))}
    common: dict[str, Any] = {"run_key": run_key, "asset_selection": [a.key for a in assets],
                              "asset_check_keys": list(check_keys)}
    if len(batch) == 1:
        return dg.RunRequest(partition_key=batch[0], tags=tags, **common)
    return dg.RunRequest(tags={**tags, RANGE_START: batch[0], RANGE_END: batch[-1]}, **common)


def fresh_symbols(symbols: Iterable[str], app_db: AppDatabase, store: ObjectStore) -> set[str]:
    """Symbols whose newest usable signal is for their latest stored bar (nothing to redo)."""
    dates = app_db.latest_signal_dates()
    fresh = set()
    for symbol in symbols:
        try:
            last = store.read_json(bars_info_key(symbol)).get("last_date")
        except FileNotFoundError:
            continue
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


def _names(symbols: Sequence[str]) -> str:
    shown = ", ".join(symbols[:_LIST_LIMIT])
    return shown + (f" and {len(symbols) - _LIST_LIMIT} more" if len(symbols) > _LIST_LIMIT else "")


def _load_cursor(raw: str | None) -> dict[str, Any] | None:
    """A JSON cursor, or None when there is none yet (or it is unreadable after an upgrade)."""
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _dump_cursor(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# --- staleness of approvals and freshness of signals -------------------------------------


def stale_reason(row: SignalRow, now: datetime, latest_close: float | None,
                 config: AutomationConfig) -> str:
    """Why an approved signal should no longer be executed, or '' when it still may be."""
    return approval_stale_reason(
        bar_date=row.bar_date, age_sessions=trading_days_old(row.bar_date, now),
        reference_close=row.reference_close(), latest_close=latest_close,
        max_age_sessions=config.approval_max_age_days,
        max_move_pct=config.approval_max_move_pct,
    )


def latest_close(store: ObjectStore, symbol: str) -> float | None:
    """The last close of the newest stored bars, or None when no bars are stored yet."""
    try:
        info = store.read_json(bars_info_key(symbol))
    except FileNotFoundError:  # ObjectNotFoundError: the symbol's ohlcv never ran
        return None
    value = info.get("last_close") if isinstance(info, dict) else None
    return float(value) if value else None


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


# --- alerts ---------------------------------------------------------------------------------


def post_alert(url: str, payload: Mapping[str, Any], timeout_s: float, log: Any = None) -> bool:
    """POST a small JSON message; any failure is logged (without the URL) and swallowed."""
    if not url:
        return False
    body = json.dumps(payload).encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": "trading-signals-alerts"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            response.read(1024)
        return True
    except Exception as exc:  # an alert must never break the sensor that sends it
        # The URL often embeds a token, and some exception texts repeat it: name the type only.
        if log is not None:
            code = getattr(exc, "code", "")
            log.warning(f"Alert webhook POST failed: {type(exc).__name__} {code}".strip())
        return False


def failure_alert(run: dg.DagsterRun, symbols: Sequence[str],
                  failed_steps: Mapping[str, str]) -> dict[str, Any]:
    """What the webhook gets: run, job, symbols and failing steps with their error types only.

    Error messages are left out on purpose: they can quote paths, URLs or keys. The Dagster run
    and the symbols table in the app hold the details.
    """
    return {
        "source": "trading-signals",
        "event": "run_failure",
        "run_id": run.run_id,
        "job": run.job_name,
        "symbol_count": len(symbols),
        "symbols": list(symbols[:_LIST_LIMIT]),
        "failed_steps": dict(failed_steps),
        "at": utc_now().isoformat(timespec="seconds"),
    }


# --- the definitions ------------------------------------------------------------------------


@dataclass(frozen=True)
class Automation:
    """Everything definitions.py adds for automation."""

    schedules: list[dg.ScheduleDefinition]
    sensors: list[dg.SensorDefinition]
    checks: list[dg.AssetChecksDefinition]


def build_freshness_check(config: AutomationConfig) -> dg.AssetChecksDefinition:
    """`signal_freshness` on llm_signal: in a run, names the run's symbols left without a fresh
    signal (stale data source, analysis error); the freshness sensor reports it between runs."""

    @dg.asset_check(asset=llm_signal, name=FRESHNESS_CHECK, partitions_def=symbols_partitions,
                    blocking=False,
                    description="Newest usable signal at most TRADING_SIGNAL_MAX_AGE_DAYS "
                                f"(now {config.signal_max_age_days}) XNYS trading days behind.")
    def signal_freshness(context: dg.AssetCheckExecutionContext,
                         app_db: AppDatabase) -> dg.AssetCheckResult:
        stale = stale_signals(context.partition_keys, app_db.latest_signal_dates(), utc_now(),
                              config.signal_max_age_days)
        return dg.AssetCheckResult(
            passed=not stale,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"symbols_checked": len(context.partition_keys),
                      "stale_symbols": dg.MetadataValue.json(stale),
                      "max_age_trading_days": config.signal_max_age_days},
            description=("Stale: " + _names(sorted(stale))) if stale else None,
        )

    return signal_freshness


def build_automation(config: AutomationConfig) -> Automation:
    """The schedule, sensors and freshness check, configured by `config` (settings.py)."""
    freshness = build_freshness_check(config)
    analysis_checks = check_keys_for(ANALYSIS_ASSETS, [ohlcv_sanity, indicator_ranges, freshness])
    analysis_target = (dg.AssetSelection.assets(*ANALYSIS_ASSETS)
                       | dg.AssetSelection.checks(*analysis_checks))
    execution_target = dg.AssetSelection.assets(*EXECUTION_ASSETS)
    schedule_status = (dg.DefaultScheduleStatus.RUNNING if config.running
                       else dg.DefaultScheduleStatus.STOPPED)
    sensor_status = (dg.DefaultSensorStatus.RUNNING if config.running
                     else dg.DefaultSensorStatus.STOPPED)

    def analysis_requests(settings: Mapping[str, SymbolSettings], symbols: Sequence[str],
                          keys: Sequence[str], prefix: str, tags: Mapping[str, str]
                          ) -> list[dg.RunRequest]:
        """Analysis runs for `symbols`, batched over the partition order `keys`."""
        priority = {s: settings[s].priority for s in symbols}
        batches = plan_batches(keys, symbols, priority, config.max_symbols_per_run)
        return [batch_request(batch, f"{prefix}-{i:03d}-{batch[0]}-{batch[-1]}",
                              ANALYSIS_ASSETS, analysis_checks, tags)
                for i, batch in enumerate(batches)]

    @dg.schedule(
        name="daily_refresh",
        cron_schedule=config.schedule_cron,
        execution_timezone=config.schedule_timezone,
        target=analysis_target,
        default_status=schedule_status,
        description="After the US close on XNYS trading days: every enabled symbol through "
                    "llm_signal, highest priority first, in as few runs as possible.",
    )
    def daily_refresh(context: dg.ScheduleEvaluationContext,
                      app_db: AppDatabase) -> list[dg.RunRequest] | dg.SkipReason:
        now = context.scheduled_execution_time or utc_now()
        decision = tick_session(now)
        if decision.session is None:
            return dg.SkipReason(decision.reason)
        keys = symbol_keys(context.instance, context.log)
        settings = app_db.settings_by_symbol(keys)
        enabled = [s for s in keys if settings[s].enabled]
        if not enabled:
            return dg.SkipReason(f"No enabled symbols ({len(keys)} partitions). Add symbols in "
                                 "the app or the Dagster UI, or enable them.")
        session = decision.session.isoformat()
        requests = analysis_requests(settings, enabled, keys,
                                     f"refresh-{session}",
                                     {"trading/trigger": "schedule", "trading/session": session,
                                      "trading/launched_by": "schedule"})
        context.log.info(f"{decision.reason} Refreshing {len(enabled)} symbol(s) in "
                         f"{len(requests)} run(s); {len(keys) - len(enabled)} disabled.")
        return requests

    @dg.sensor(
        name="new_symbols",
        target=analysis_target,
        # A symbol added in the app or the CLI has its signal within ~30 s: at most 10 s to the
        # tick, then one in-process run.
        minimum_interval_seconds=10,
        default_status=sensor_status,
        description="A symbol added anywhere (Dagster UI, app, CLI) is analysed once, promptly, "
                    "unless a run for it is already queued or running or its signal is fresh.",
    )
    def new_symbols(context: dg.SensorEvaluationContext, app_db: AppDatabase,
                    store: ObjectStore) -> dg.SensorResult:
        keys = symbol_keys(context.instance, context.log)
        cursor = _load_cursor(context.cursor)
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
        notes = [f"{label}: {_names(sorted(items))}" for label, items in (
            ("already queued or running", busy), ("signal already fresh", fresh),
            ("disabled, not analysed", disabled)) if items]
        if not todo:
            reason = ("No new symbols." if not new
                      else f"New symbols, none to run: {'; '.join(notes)}.")
            return dg.SensorResult(skip_reason=reason, cursor=_dump_cursor(
                {"seen": sorted(seen), "generation": generation}))
        generation += 1  # re-adding a removed symbol later must not reuse an old run key
        requests = analysis_requests(settings, todo, keys,
                                     f"new-symbols-{generation}",
                                     {"trading/trigger": "new_symbols",
                                      "trading/launched_by": "sensor"})
        context.log.info(f"New symbols {_names(todo)} in {len(requests)} run(s)"
                         + (f"; {'; '.join(notes)}" if notes else ""))
        return dg.SensorResult(run_requests=requests, cursor=_dump_cursor(
            {"seen": sorted(seen), "generation": generation}))

    @dg.sensor(
        name="approved_signals",
        target=execution_target,
        minimum_interval_seconds=30,
        default_status=sensor_status,
        description="Each approved (or auto-approved, once its run ended) unexecuted signal gets "
                    "one orders + portfolio run; stale approvals are expired instead.",
    )
    def approved_signals(context: dg.SensorEvaluationContext, app_db: AppDatabase,
                         store: ObjectStore) -> dg.SensorResult:
        now = utc_now()
        keys = symbol_keys(context.instance)
        waiting = app_db.signals_awaiting_execution()
        cursor = _load_cursor(context.cursor) or {}
        # Signals already given a run stay here until an orders run has acted on them, so a
        # run that fails before deciding is not repeated (one run per signal, never two).
        requested = set(cursor.get("requested", [])) & {row.id for row in waiting}
        ready: dict[str, list[SignalRow]] = {}
        expired: list[str] = []
        for row in waiting:
            if row.id in requested or row.symbol not in keys:
                continue
            if row.status == SignalStatus.AUTO_APPROVED.value and row.dagster_run_id:
                run = context.instance.get_run_by_id(row.dagster_run_id)
                if run is not None and not run.is_finished:
                    continue  # its own analysis run is still going; orders follow when it ends
            why = stale_reason(row, now, latest_close(store, row.symbol), config)
            if why:
                try:
                    app_db.review_signal(row.id, SignalStatus.EXPIRED, reviewer=STALE_REVIEWER,
                                         note=why)
                    expired.append(f"{row.symbol} {row.id}: {why}")
                except (KeyError, ValueError) as exc:  # reviewed meanwhile: leave it
                    context.log.info(f"Not expiring {row.id}: {exc}")
                continue
            ready.setdefault(row.symbol, []).append(row)
        for line in expired:
            context.log.warning(f"Expired stale approval {line}")
        settings = app_db.settings_by_symbol(ready)
        priority = {s: settings[s].priority for s in ready}
        requests = []
        for batch in plan_batches(keys, ready, priority, config.max_symbols_per_run,
                                  bridgeable(keys, ready, app_db, store)):
            ids = sorted(row.id for symbol in batch for row in ready.get(symbol, []))
            digest = hashlib.sha256(",".join(ids).encode()).hexdigest()[:16]
            run_key = f"signal-{ids[0]}" if len(ids) == 1 else f"signals-{len(ids)}-{digest}"
            tags = {"trading/trigger": "approved_signals", "trading/signal_count": str(len(ids)),
                    "trading/launched_by": "sensor"}
            if len(ids) == 1:
                tags["trading/signal_id"] = ids[0]
            requests.append(batch_request(batch, run_key, EXECUTION_ASSETS, [], tags))
            requested.update(ids)
        new_cursor = _dump_cursor({"requested": sorted(requested)})
        if not requests:
            return dg.SensorResult(skip_reason=(
                f"Expired {len(expired)} stale approval(s); nothing to execute." if expired
                else "No approved signals waiting."), cursor=new_cursor)
        return dg.SensorResult(run_requests=requests, cursor=new_cursor)

    @dg.sensor(
        name="symbol_sync",
        minimum_interval_seconds=60,
        default_status=sensor_status,
        description="Keeps the app's symbol settings and the Dagster symbols partitions equal.",
    )
    def symbol_sync(context: dg.SensorEvaluationContext, app_db: AppDatabase) -> dg.SensorResult:
        partitions = set(symbol_keys(context.instance))
        configured = {s.symbol for s in app_db.list_settings()}
        cursor = _load_cursor(context.cursor)
        was_synced = set(cursor.get("synced", [])) if cursor is not None else set()
        add, delete, ensured, removed = [], [], [], []
        # Keys typed in the Dagster UI that are no symbol as written: rename or remove them.
        for key, symbol in invalid_keys(context.instance.get_dynamic_partitions(
                SYMBOLS_PARTITION)).items():
            context.log.warning(invalid_key_notice(key, symbol))
            delete.append(key)
            if symbol is not None and symbol not in partitions:
                partitions.add(symbol)
                add.append(symbol)
        for symbol in sorted(partitions - configured):
            if symbol in add:  # renamed from an invalid key: a new symbol with default settings
                app_db.ensure_symbol(symbol)
                ensured.append(symbol)
            elif symbol in was_synced:  # removed in the app: remove the partition too
                delete.append(symbol)
            else:  # added in the Dagster UI: give it default settings
                app_db.ensure_symbol(symbol)
                ensured.append(symbol)
        for symbol in sorted(configured - partitions):
            if symbol in was_synced:  # partition deleted in the Dagster UI: forget the settings
                app_db.remove_symbol(symbol)
                removed.append(symbol)
            elif symbol not in add:  # added in the app only: add the partition
                add.append(symbol)
        synced = ((partitions & configured) | set(ensured) | set(add))
        requests = []
        if add:
            requests.append(symbols_partitions.build_add_request(add))
        if delete:
            requests.append(symbols_partitions.build_delete_request(delete))
        changes = [f"{label}: {_names(items)}" for label, items in (
            ("partitions added", add), ("partitions deleted", delete),
            ("default settings created", ensured), ("settings removed", removed)) if items]
        new_cursor = _dump_cursor({"synced": sorted(synced)})
        if not changes:
            return dg.SensorResult(skip_reason=f"In sync ({len(synced)} symbols).",
                                   cursor=new_cursor)
        context.log.info("; ".join(changes))
        return dg.SensorResult(dynamic_partitions_requests=requests, cursor=new_cursor)

    symbol_asset_keys = {a.key for a in [*ANALYSIS_ASSETS, *EXECUTION_ASSETS]}

    # monitor_all_code_locations: runs the CLI and the Gradio app execute in-process (no daemon
    # up) carry no code-location origin; the asset filter below keeps it to ours.
    @dg.run_failure_sensor(
        name="symbol_run_failures",
        monitor_all_code_locations=True,
        default_status=sensor_status,
        description="Records a failed run against its symbols (shown in the app) and posts a "
                    "short alert to ALERT_WEBHOOK_URL when set.",
    )
    def symbol_run_failures(context: dg.RunFailureSensorContext, app_db: AppDatabase) -> None:
        run = context.dagster_run
        # An in-process run (dg.materialize) records an empty selection: judge by its tags.
        if run.asset_selection and not set(run.asset_selection) & symbol_asset_keys:
            return
        symbols = run_symbols(run.tags, list(context.instance.get_dynamic_partitions(
            SYMBOLS_PARTITION)))
        if not symbols:
            return
        failed_steps: dict[str, str] = {}
        messages: list[str] = []
        for event in context.get_step_failure_events():
            error = root_error(event.step_failure_data.error)
            failed_steps[event.step_key or "run"] = error.cls_name if error else "error"
            if error is not None:
                messages.append(f"{event.step_key}: {error.message.strip()[:500]}")
        error_text = "; ".join(messages) or (context.failure_event.message or "run failed")
        asset = next(iter(failed_steps), "run")
        already = app_db.failed_symbols(run.run_id)
        recorded = 0
        for symbol in symbols:
            try:
                validate_symbol(symbol)
            except InvalidSymbolError:
                continue
            if symbol not in already:  # keep the symbol's own, more precise failure
                app_db.record_failure(run.run_id, symbol, asset, f"run failed: {error_text}")
                recorded += 1
        context.log.info(f"Run {run.run_id} failed for {len(symbols)} symbol(s); recorded "
                         f"{recorded} new failure(s).")
        post_alert(config.alert_webhook_url, failure_alert(run, symbols, failed_steps),
                   config.alert_timeout_s, context.log)

    @dg.sensor(
        name="signal_freshness_sensor",
        minimum_interval_seconds=900,
        default_status=sensor_status,
        description="Reports the signal_freshness check per symbol between runs (a stale symbol "
                    "is one the daily refresh missed).",
    )
    def signal_freshness_sensor(context: dg.SensorEvaluationContext,
                                app_db: AppDatabase) -> dg.SensorResult:
        keys = symbol_keys(context.instance)
        settings = app_db.settings_by_symbol(keys)
        enabled = [s for s in keys if settings[s].enabled]
        stale = stale_signals(enabled, app_db.latest_signal_dates(), utc_now(),
                              config.signal_max_age_days)
        cursor = _load_cursor(context.cursor) or {}
        before = {s: "stale" for s in cursor.get("stale", [])}
        before.update({s: "fresh" for s in cursor.get("fresh", [])})
        names = sorted(stale)
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
                    names[:_LIST_LIMIT]), "stale_count": len(names),
                    "max_age_trading_days": config.signal_max_age_days},
            ))
        new_cursor = _dump_cursor({"stale": names,
                                   "fresh": sorted(s for s in keys if s not in stale)})
        if not events:
            return dg.SensorResult(skip_reason=(f"{len(names)} stale: {_names(names)}" if names
                                                else "All enabled symbols fresh."),
                                   cursor=new_cursor)
        if names:
            context.log.warning(f"Stale signals: {_names(names)}")
        return dg.SensorResult(asset_events=events, cursor=new_cursor)

    return Automation(
        schedules=[daily_refresh],
        sensors=[new_symbols, approved_signals, symbol_sync, symbol_run_failures,
                 signal_freshness_sensor],
        checks=[freshness],
    )
