"""``approved_signals``: every approved (or auto-approved, once its analysis run ended) signal
gets an ``orders`` + ``portfolio`` run, unless it is stale: then it is expired with the reason.

Orders for auto-approved signals thus follow the tick within one sensor interval, through the
same path and staleness rules (core/policy.py) as a human approval; the tick never places
orders. A run that ends without settling its signal is followed by another, up to
MAX_ORDER_RUNS, then the signal is settled ``not_placed`` (the ledger keeps any retry from
placing twice). A batch may also span symbols with nothing to execute (``bridgeable``), so
signals scattered over the partition list still share a few runs.
"""

import hashlib
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import dagster as dg

import trading_assets.core.clock as clock
from resources.app_db import AppDatabase, SignalRow
from resources.object_store import ObjectStore
from resources.policy import PolicyResource
from trading_assets.automation.planning import (
    EXECUTION_ASSETS,
    PIPELINE_JOB,
    bars_info,
    batch_request,
    bridgeable,
    dump_cursor,
    load_cursor,
    plan_batches,
    sensor_status,
    symbol_keys,
)
from trading_assets.core.calendar import exchange_date
from trading_assets.core.config import AutomationSettings
from trading_assets.core.policy import TradingPolicy
from trading_assets.core.signal import SignalStatus

STALE_REVIEWER = "sensor:stale"
# Orders runs one approved signal gets before it is settled as not_placed (a person may then
# re-approve or reject it): a run that ends without settling it (failed before deciding,
# or a placement still unresolved) is retried, never left in the cursor forever.
MAX_ORDER_RUNS = 3
ORDER_REQUEST_TAG = "trading/order_request"


def stale_reason(row: SignalRow, now: datetime, store: ObjectStore,
                 policy: TradingPolicy) -> str:
    """Why an approved signal should no longer be executed, or '' when it still may be.

    The rule is the orders asset's (core/policy.py) on the same stored bars; the sensor also
    counts today's session, so bars that stopped refreshing cannot keep an approval alive.
    """
    info = bars_info(store, row.symbol)
    stored = date.fromisoformat(str(info["last_date"])) if info.get("last_date") else row.bar_date
    value = info.get("last_close")
    return policy.stale_reason(bar_date=row.bar_date, as_of=max(stored, exchange_date(now)),
                               reference_close=row.reference_close(),
                               latest_close=float(value) if value else None)


def cursor_requests(cursor: Mapping[str, Any] | None, waiting: set[str]
                    ) -> dict[str, dict[str, Any]]:
    """The cursor's requests for signals still waiting (an older list cursor counts once)."""
    raw = (cursor or {}).get("requested", {})
    if isinstance(raw, list):
        raw = {signal_id: {"n": 1, "key": ""} for signal_id in raw}
    return {sid: dict(entry) for sid, entry in raw.items() if sid in waiting}


def order_run_due(context: dg.SensorEvaluationContext, app_db: AppDatabase, row: SignalRow,
                  requested: dict[str, dict[str, Any]]) -> bool:
    """Whether the signal needs an orders run now: never requested, or its last run ended
    without settling it (after MAX_ORDER_RUNS it is settled as not_placed instead)."""
    entry = requested.get(row.id)
    if entry is None:
        return True
    runs = context.instance.get_runs(
        dg.RunsFilter(tags={ORDER_REQUEST_TAG: entry["key"]}), limit=1) if entry["key"] else []
    if not runs or not runs[0].is_finished:
        return False  # queued, starting or running: its outcome is not known yet
    if entry["n"] < MAX_ORDER_RUNS:
        return True
    reason = (f"{entry['n']} orders runs ended without settling it (last run {runs[0].run_id}, "
              f"{runs[0].status.value}); re-approve or reject it")
    if app_db.settle_signal(row.id, SignalStatus.NOT_PLACED, reason):
        context.log.warning(f"Gave up on {row.symbol} {row.id}: {reason}")
    requested.pop(row.id, None)
    return False


def order_run_key(rows: Sequence[SignalRow], requested: Mapping[str, Mapping[str, Any]]) -> str:
    """A run key per set of signals and attempt (Dagster launches a run key only once)."""
    tries = [f"{row.id}:{requested.get(row.id, {}).get('n', 0)}" for row in rows]
    retry = any(requested.get(row.id) for row in rows)
    if len(rows) == 1:
        n = requested.get(rows[0].id, {}).get("n", 0)
        return f"signal-{rows[0].id}" + (f"-run{n + 1}" if retry else "")
    digest = hashlib.sha256(",".join(sorted(tries)).encode()).hexdigest()[:16]
    return f"signals-{len(rows)}-{digest}"


def ready_signals(context: dg.SensorEvaluationContext, app_db: AppDatabase, store: ObjectStore,
                  rules: TradingPolicy, keys: Sequence[str], waiting: Sequence[SignalRow],
                  requested: dict[str, dict[str, Any]]
                  ) -> tuple[dict[str, list[SignalRow]], list[str]]:
    """Waiting signals due for an orders run, by symbol; stale ones are expired (and listed)."""
    now = clock.utc_now()
    ready: dict[str, list[SignalRow]] = {}
    expired: list[str] = []
    for row in waiting:
        if row.symbol not in keys or not order_run_due(context, app_db, row, requested):
            continue
        if row.status == SignalStatus.AUTO_APPROVED.value and row.dagster_run_id:
            run = context.instance.get_run_by_id(row.dagster_run_id)
            if run is not None and not run.is_finished:
                continue  # its own analysis run is still going; orders follow when it ends
        why = stale_reason(row, now, store, rules)
        if why:
            try:
                app_db.review_signal(row.id, SignalStatus.EXPIRED, reviewer=STALE_REVIEWER,
                                     note=why, actor="system")
                expired.append(f"{row.symbol} {row.id}: {why}")
            except (KeyError, ValueError) as exc:  # reviewed meanwhile: leave it
                context.log.info(f"Not expiring {row.id}: {exc}")
            continue
        ready.setdefault(row.symbol, []).append(row)
    return ready, expired


def order_runs(context: dg.SensorEvaluationContext, app_db: AppDatabase, store: ObjectStore,
               policy: PolicyResource, config: AutomationSettings) -> dg.SensorResult:
    """One orders + portfolio run per batch of ready signals; stale approvals expired."""
    keys = symbol_keys(context.instance)
    # Signal id -> {"n": orders runs requested, "key": the last request's tag}. A signal
    # waits while its run is pending or running; once that run ended without settling it,
    # it is requested again, and after MAX_ORDER_RUNS it is settled as not_placed.
    waiting = app_db.signals_awaiting_execution()
    requested = cursor_requests(load_cursor(context.cursor), {row.id for row in waiting})
    ready, expired = ready_signals(context, app_db, store, policy.rules, keys, waiting,
                                   requested)
    for line in expired:
        context.log.warning(f"Expired stale approval {line}")
    settings = app_db.settings_by_symbol(ready)
    priority = {s: settings[s].priority for s in ready}
    requests = []
    for batch in plan_batches(keys, ready, priority, config.max_symbols_per_run,
                              bridgeable(keys, ready, app_db, store)):
        rows = [row for symbol in batch for row in ready.get(symbol, [])]
        run_key = order_run_key(rows, requested)
        tags = {"trading/trigger": "approved_signals", "trading/signal_count": str(len(rows)),
                ORDER_REQUEST_TAG: run_key}
        if len(rows) == 1:
            tags["trading/signal_id"] = rows[0].id
        requests.append(batch_request(batch, run_key, EXECUTION_ASSETS, [], tags, "sensor"))
        for row in rows:
            requested[row.id] = {"n": requested.get(row.id, {}).get("n", 0) + 1,
                                 "key": run_key}
    new_cursor = dump_cursor({"requested": requested})
    if not requests:
        return dg.SensorResult(skip_reason=(
            f"Expired {len(expired)} stale approval(s); nothing to execute." if expired
            else "No approved signals waiting."), cursor=new_cursor)
    return dg.SensorResult(run_requests=requests, cursor=new_cursor)


def build_approved_signals(config: AutomationSettings) -> dg.SensorDefinition:
    """The sensor that turns approvals into orders runs."""

    @dg.sensor(
        name="approved_signals",
        job=PIPELINE_JOB,
        minimum_interval_seconds=30,
        default_status=sensor_status(config),
        description="Each approved (or auto-approved, once its run ended) unexecuted signal gets "
                    "one orders + portfolio run; stale approvals are expired instead.",
    )
    def approved_signals(context: dg.SensorEvaluationContext, app_db: AppDatabase,
                         store: ObjectStore, policy: PolicyResource) -> dg.SensorResult:
        return order_runs(context, app_db, store, policy, config)

    return approved_signals
