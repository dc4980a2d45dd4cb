"""Bench section 1: one symbol's work per stage, in this process, minus Dagster."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from trading_assets.bench.charts import compare_renderers
from trading_assets.bench.common import AS_OF, bench_env, median, run_child, timed, workspace

if TYPE_CHECKING:
    from resources.app_db import SignalRow

def stage_symbols(resources: dict[str, Any], count: int) -> list[str]:
    """`count` bench symbols whose rules signal is BUY or SELL, so `orders` really places an
    order (a HOLD stops at the risk check); falls back to any symbols when few qualify."""
    from trading_assets.core.analyst import rules_signal
    from trading_assets.core.replay import build_replay_request
    from trading_assets.core.signal import Action

    market = resources["market_data"]
    chosen: list[str] = []
    for i in range(200):
        symbol = f"BS{i:03d}"
        bars = market.fetch(symbol)
        # The request as of the last bar over the whole history: what llm_signal will be shown.
        request = build_replay_request(symbol, bars.frame, bars.last_date,
                                       data_source=bars.source, simulated=bars.simulated,
                                       with_charts=False, window=len(bars.frame))
        if rules_signal(request).action is not Action.HOLD:
            chosen.append(symbol)
            if len(chosen) == count:
                return chosen
    return chosen + [f"BX{i:03d}" for i in range(count - len(chosen))]


def one_symbol(resources: dict[str, Any], symbol: str) -> dict[str, float]:
    """Every stage of the graph for one symbol through the per-symbol functions the assets
    call, minus Dagster; seconds per stage."""
    from trading_assets.assets.charts import chart_job, store_charts
    from trading_assets.assets.indicators import store_indicators
    from trading_assets.assets.market_data import fetch_and_store_bars
    from trading_assets.assets.signals import RunPositions, bar_info, build_request, store_signal
    from trading_assets.assets.trading import snapshot_portfolio, trade_symbol
    from trading_assets.core.charts import render_job
    from trading_assets.core.signal import SignalStatus

    market, store, app_db = resources["market_data"], resources["store"], resources["app_db"]
    broker, analyst = resources["broker"], resources["analyst"]
    run_id = "bench"
    app_db.ensure_symbol(symbol)
    settings = app_db.settings_for(symbol)
    times: dict[str, float] = {}

    def stage(name: str, fn: Callable[..., Any], *args: Any) -> Any:
        times[name], result = timed(lambda: fn(*args))
        return result

    def analyse() -> SignalRow:
        # llm_signal for one symbol, its analysis batch being this one request (the asset
        # reads the broker's positions once per run: here once per symbol).
        info, bar_date = bar_info(store, symbol)
        request = build_request(store, RunPositions(broker).get(symbol), symbol, bar_date, info)
        [outcome] = analyst.analyze_many([request])
        return store_signal(store, app_db, request, outcome, settings, run_id)

    def snapshot() -> None:
        # portfolio reads the account and the positions once per run: here once per symbol.
        snapshot_portfolio(store, app_db, broker.label, symbol, broker.account(),
                           broker.position(symbol))

    stage("ohlcv", fetch_and_store_bars, market, store, symbol, settings, run_id)
    stage("indicators", store_indicators, store, symbol)
    job = stage("chart_inputs", chart_job, store, symbol)
    images = stage("charts", render_job, job)
    stage("chart_store_previews", store_charts, store, job, images)
    signal = stage("rules_signal", analyse)
    if signal.status == SignalStatus.PENDING_REVIEW.value and signal.action != "HOLD":
        app_db.review_signal(signal.id, SignalStatus.APPROVED, reviewer="bench")  # a human's click
    decided, _ = stage("orders", trade_symbol, broker, app_db, store, symbol, run_id, settings,
                       resources["policy"])
    stage("portfolio", snapshot)
    times["total"] = sum(times.values())
    times["orders_placed"] = sum(decision.place for _, decision in decided)
    return times


def bench_stages(runs: int, keep: bool) -> dict[str, Any]:
    """Median per-stage seconds over `runs` fresh symbols, after one untimed warm-up symbol."""
    from trading_assets.settings import build_resources

    with workspace(keep, "stages") as work:
        resources = build_resources(bench_env(work))
        warm_up, *symbols = stage_symbols(resources, runs + 1)
        # The first symbol pays the one-off costs: imports, the reused figure, the SQLite
        # files and their migrations, the exchange calendar.
        cold = one_symbol(resources, warm_up)
        measured = [one_symbol(resources, s) for s in symbols]
    keys = [k for k in cold if k != "orders_placed"]
    return {
        "runs": len(measured),
        "median_s": {k: median([m[k] for m in measured]) for k in keys},
        "cold_first_symbol_s": {k: round(cold[k], 4) for k in keys},
        "orders_placed": int(sum(m["orders_placed"] for m in measured)),
        "definitions_import_s": definitions_import(min(runs, 3)),
        "charts_vs_mplfinance": compare_renderers(runs, AS_OF),
    }


def definitions_import(runs: int) -> float | None:
    """Median wall time of `python -c "import trading_assets.definitions"` (fresh process)."""
    times = []
    with workspace(False, "import") as work:
        for _ in range(max(1, runs)):
            child = run_child([sys.executable, "-c", "import trading_assets.definitions"],
                              bench_env(work), work / "import.log", 120)
            if child["exit_code"] == 0:
                times.append(child["wall_s"])
    return median(times)

