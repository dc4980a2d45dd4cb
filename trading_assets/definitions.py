"""The one Definitions object: assets, checks, automation and resources from the environment."""

from __future__ import annotations

import dagster as dg

from trading_assets import automation
from trading_assets.asset_kinds import with_configured_kinds
from trading_assets.assets.scorecard import signal_outcomes, signal_scorecard
from trading_assets.jobs import SYMBOL_ASSETS, SYMBOL_CHECKS, executor, symbol_pipeline_job
from trading_assets.settings import build_resources

# How good the signals were: per-symbol outcomes, then the cross-symbol scorecard.
EVALUATION_ASSETS = [signal_outcomes, signal_scorecard]
__all__ = ["EVALUATION_ASSETS", "SYMBOL_ASSETS", "SYMBOL_CHECKS", "configured_resources",
           "defs", "executor", "symbol_pipeline_job"]

configured_resources = build_resources()
defs = dg.Definitions(
    # Kind tags for the configured model, broker, tracking and store (no "openai" for rules).
    assets=with_configured_kinds([*SYMBOL_ASSETS, *EVALUATION_ASSETS],
                                 configured_resources),
    # Schedule, sensors and signal_freshness (env: TRADING_SCHEDULE_*, ALERT_WEBHOOK_URL...).
    asset_checks=[*SYMBOL_CHECKS, *automation.checks],
    jobs=[symbol_pipeline_job],
    schedules=automation.schedules,
    sensors=automation.sensors,
    resources=configured_resources,
    executor=executor,  # also the UI's "Materialize" (the implicit asset job)
)
