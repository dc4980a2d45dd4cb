"""The `symbol_pipeline` job: every run over symbols is one of it, whoever launches it (CLI,
Gradio, the sensors, the schedule); only the Dagster UI's Materialize uses its own `__ASSET_JOB`.

Apart from definitions.py so that the sensors and the schedule (part of those definitions) can
target it by name without importing the Definitions object.
"""

from __future__ import annotations

import dagster as dg

from trading_assets.assets.charts import charts
from trading_assets.assets.indicators import indicators
from trading_assets.assets.market_data import ohlcv
from trading_assets.assets.signals import llm_signal
from trading_assets.assets.trading import orders, portfolio
from trading_assets.checks import indicator_ranges, ohlcv_sanity
from trading_assets.executors import pipeline_executor

SYMBOL_ASSETS = [ohlcv, indicators, charts, llm_signal, orders, portfolio]
SYMBOL_CHECKS = [ohlcv_sanity, indicator_ranges]

# TRADING_EXECUTOR picks how a run executes its steps (trading_assets/executors.py): in process
# by default (one import of this module per run instead of one per step, which is most of a
# run's time), multiprocess, or celery (steps on dagster-celery workers; docs/scale-out.md).
executor = pipeline_executor()
symbol_pipeline_job = dg.define_asset_job(
    name="symbol_pipeline",
    selection=dg.AssetSelection.assets(*SYMBOL_ASSETS),
    description="ohlcv -> indicators -> charts -> llm_signal -> orders -> portfolio per symbol.",
    executor_def=executor,
)
