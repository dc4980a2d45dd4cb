"""Schedules and sensors that run the platform by themselves (checked on Dagster 1.13.27).

* ``daily_refresh`` (schedule.py): after the close on XNYS trading days, every enabled symbol
  through ``ohlcv -> indicators -> charts -> llm_signal`` with the data checks.
* ``new_symbols`` and ``symbol_sync`` (symbols.py): a new symbol is analysed once, promptly;
  the symbol_settings table and the ``symbols`` partitions stay equal.
* ``approved_signals`` (approvals.py): approved and auto-approved signals get an ``orders`` +
  ``portfolio`` run, stale ones are expired.
* ``symbol_run_failures`` (failures.py, alerts.py): a failed run is recorded against its
  symbols and posted, secret-free, to ALERT_WEBHOOK_URL.
* ``signal_freshness`` (freshness.py): asset check on ``llm_signal`` plus a sensor reporting it.

Runs over many symbols (planning.py): every asset has ``BackfillPolicy.single_run()``, so a run
request tagged ``dagster/asset_partition_range_start`` / ``_end`` covers a range of symbols in
ONE run. Dagster resolves such a range over the dynamic partition list in insertion order, so a
selection with gaps (disabled symbols) is split into gap-free batches (shared with the CLI),
each capped at TRADING_MAX_SYMBOLS_PER_RUN, highest priority first. Plain run requests were
chosen over sensor-launched backfills because ``RunRequest.for_asset_graph_subset`` is private
in 1.13, and run requests keep run keys, tags and tests (execute the request with
``dg.materialize``) simple. Inside a run the symbols go in partition order.

The definitions below are built once, at import, from the environment (``automation_config``:
TRADING_SCHEDULE_*, TRADING_MAX_SYMBOLS_PER_RUN, ALERT_WEBHOOK_URL...); ``build_automation``
builds the same set from any config (tests use it for small batches or a local webhook).
"""

from dataclasses import dataclass

import dagster as dg

from trading_assets.automation.alerts import failure_alert, post_alert
from trading_assets.automation.approvals import (
    MAX_ORDER_RUNS,
    ORDER_REQUEST_TAG,
    STALE_REVIEWER,
    build_approved_signals,
    stale_reason,
)
from trading_assets.automation.failures import build_run_failure_sensor
from trading_assets.automation.freshness import (
    build_freshness_check,
    build_freshness_sensor,
    stale_signals,
)
from trading_assets.automation.planning import (
    ANALYSIS_ASSETS,
    EXECUTION_ASSETS,
    FRESHNESS_CHECK,
    plan_batches,
    symbol_keys,
)
from trading_assets.automation.schedule import build_daily_refresh
from trading_assets.automation.symbols import build_symbol_sensors
from trading_assets.core.config import AutomationSettings
from trading_assets.run_tags import RANGE_END, RANGE_START, run_symbols
from trading_assets.settings import automation_config

__all__ = ["ANALYSIS_ASSETS", "EXECUTION_ASSETS", "FRESHNESS_CHECK", "MAX_ORDER_RUNS",
           "ORDER_REQUEST_TAG", "RANGE_END", "RANGE_START", "STALE_REVIEWER", "Automation",
           "AutomationSettings", "build_automation", "checks", "config", "failure_alert",
           "plan_batches", "post_alert", "run_symbols", "schedules", "sensors", "stale_reason",
           "stale_signals", "symbol_keys"]


@dataclass(frozen=True)
class Automation:
    """Everything definitions.py adds for automation."""

    schedules: list[dg.ScheduleDefinition]
    sensors: list[dg.SensorDefinition]
    checks: list[dg.AssetChecksDefinition]


def build_automation(config: AutomationSettings) -> Automation:
    """The schedule, sensors and freshness check, configured by `config` (settings.py)."""
    new_symbols, symbol_sync = build_symbol_sensors(config)
    return Automation(
        schedules=[build_daily_refresh(config)],
        sensors=[new_symbols, build_approved_signals(config), symbol_sync,
                 build_run_failure_sensor(config), build_freshness_sensor(config)],
        checks=[build_freshness_check(config)],
    )


# The deployment's automation, from the environment: the one place it is read at load.
config = automation_config()
_automation = build_automation(config)
schedules = _automation.schedules
sensors = _automation.sensors
checks = _automation.checks
