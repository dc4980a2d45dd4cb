"""The one Definitions object: assets, checks, automation and resources from the environment."""

from __future__ import annotations

import dagster as dg

from trading_assets.assets.charts import charts
from trading_assets.assets.indicators import indicators
from trading_assets.assets.market_data import ohlcv
from trading_assets.assets.signals import llm_signal
from trading_assets.assets.trading import orders, portfolio
from trading_assets.checks import indicator_ranges, ohlcv_sanity
from trading_assets.settings import build_resources

SYMBOL_ASSETS = [ohlcv, indicators, charts, llm_signal, orders, portfolio]
SYMBOL_CHECKS = [ohlcv_sanity, indicator_ranges]

symbol_pipeline_job = dg.define_asset_job(
    name="symbol_pipeline",
    selection=dg.AssetSelection.assets(*SYMBOL_ASSETS),
    description="ohlcv -> indicators -> charts -> llm_signal -> orders -> portfolio per symbol.",
)

defs = dg.Definitions(
    assets=SYMBOL_ASSETS,
    asset_checks=SYMBOL_CHECKS,
    jobs=[symbol_pipeline_job],
    resources=build_resources(),
)
