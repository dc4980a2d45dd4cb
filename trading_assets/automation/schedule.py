"""``daily_refresh``: after the US close on XNYS trading days, every enabled symbol is analysed.

Holidays and weekends skip with the holiday's name (exchange_calendars); an early-close day
runs at the usual time. Batches go highest priority first, in as few runs as possible.
"""

import dagster as dg

import trading_assets.core.clock as clock
from resources.app_db import AppDatabase
from trading_assets.automation.planning import (
    PIPELINE_JOB,
    analysis_requests,
    schedule_status,
    symbol_keys,
)
from trading_assets.core.calendar import tick_session
from trading_assets.core.config import AutomationSettings


def refresh_requests(context: dg.ScheduleEvaluationContext, app_db: AppDatabase,
                     config: AutomationSettings) -> list[dg.RunRequest] | dg.SkipReason:
    """The tick's analysis runs, or why there are none (no session, no enabled symbol)."""
    now = context.scheduled_execution_time or clock.utc_now()
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
    requests = analysis_requests(settings, enabled, keys, f"refresh-{session}",
                                 {"trading/trigger": "schedule", "trading/session": session},
                                 config.max_symbols_per_run, "schedule")
    context.log.info(f"{decision.reason} Refreshing {len(enabled)} symbol(s) in "
                     f"{len(requests)} run(s); {len(keys) - len(enabled)} disabled.")
    return requests


def build_daily_refresh(config: AutomationSettings) -> dg.ScheduleDefinition:
    """The schedule at TRADING_SCHEDULE_CRON in TRADING_SCHEDULE_TZ (default 16:30 New York)."""

    @dg.schedule(
        name="daily_refresh",
        cron_schedule=config.schedule_cron,
        execution_timezone=config.schedule_timezone,
        job=PIPELINE_JOB,
        default_status=schedule_status(config),
        description="After the US close on XNYS trading days: every enabled symbol through "
                    "llm_signal, highest priority first, in as few runs as possible.",
    )
    def daily_refresh(context: dg.ScheduleEvaluationContext,
                      app_db: AppDatabase) -> list[dg.RunRequest] | dg.SkipReason:
        return refresh_requests(context, app_db, config)

    return daily_refresh
