"""The one Definitions object: assets, checks, automation and resources from the environment."""

from __future__ import annotations

import dagster as dg

from trading_assets import automation
from trading_assets.asset_kinds import with_configured_kinds
from trading_assets.assets.charts import charts
from trading_assets.assets.indicators import indicators
from trading_assets.assets.market_data import ohlcv
from trading_assets.assets.scorecard import signal_outcomes, signal_scorecard
from trading_assets.assets.signals import llm_signal
from trading_assets.assets.trading import orders, portfolio
from trading_assets.checks import indicator_ranges, ohlcv_sanity
from trading_assets.executors import pipeline_executor
from trading_assets.settings import build_resources

SYMBOL_ASSETS = [ohlcv, indicators, charts, llm_signal, orders, portfolio]
SYMBOL_CHECKS = [ohlcv_sanity, indicator_ranges]
# How good the signals were: per-symbol outcomes, then the cross-symbol scorecard.
EVALUATION_ASSETS = [signal_outcomes, signal_scorecard]

# TRADING_EXECUTOR picks how a run executes its steps (trading_assets/executors.py): in process
# by default (one import of this module per run instead of one per step, which is most of a
# run's time), multiprocess, or celery (steps on dagster-celery workers; README "Scale out").
executor = pipeline_executor()
symbol_pipeline_job = dg.define_asset_job(
    name="symbol_pipeline",
    selection=dg.AssetSelection.assets(*SYMBOL_ASSETS),
    description="ohlcv -> indicators -> charts -> llm_signal -> orders -> portfolio per symbol.",
    executor_def=executor,
)

configured_resources = build_resources(automation=automation.config)
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
