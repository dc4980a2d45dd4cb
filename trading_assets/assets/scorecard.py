"""`signal_outcomes` and `signal_scorecard`: how good the signals were, on the user's symbols.

signal_outcomes scores every stored signal (live and replay) of a symbol against the bars
that followed it (trading_assets.core.outcomes) and stores the rows as parquet;
signal_scorecard aggregates all symbols' outcomes (trading_assets.core.scorecard) into
tables and plots in the Dagster UI and, best effort, an MLflow run.
"""


import math
import re
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from resources.app_db import AppDatabase, SignalRow
from resources.object_store import ObjectNotFoundError, ObjectStore
from resources.outcomes import read_outcomes
from resources.tracking import RunRecord, Tracking
from trading_assets.assets.market_data import ohlcv
from trading_assets.assets.metadata import png_markdown
from trading_assets.assets.signals import llm_signal
from trading_assets.assets.symbol_loop import SymbolLoop
from trading_assets.core.keys import outcomes_key, replay_bars_key
from trading_assets.core.outcomes import (
    HORIZONS,
    OutcomeRules,
    SignalFacts,
    score_signals,
    simulated_count,
)
from trading_assets.core.scorecard import (
    SCORECARD_TABLE_TITLES,
    rate_text,
    render_scorecard_plots,
    scorecard_tables,
    training_period_warning,
    with_analyst,
)
from trading_assets.partitions import list_symbols, symbol_asset

if TYPE_CHECKING:  # pandas loads when a scorecard is built, not with the definitions
    import pandas as pd

SCORECARD_EXPERIMENT_SUFFIX = "-scorecard"


class OutcomeConfig(dg.Config):
    """How outcomes are judged: see core/outcomes.py and docs/scorecard.md."""

    hold_band: str = Field(default="atr", description="HOLD is right inside this band: 'atr' "
                           "(hold_band_atr x ATR14/close x sqrt(bars)) or 'pct' (fixed).")
    hold_band_atr: float = Field(default=0.5, description="ATR multiple of the 1-bar HOLD "
                                 "band (0.5: about a random walk's median move).")
    hold_band_pct: float = Field(default=2.0, description="Fixed HOLD band in %, also the "
                                 "fallback when a signal has no ATR.")
    trade_horizon: int = Field(default=20, description="Bars a BUY/SELL may run before it is "
                               "closed at the close (timeout).")

    def rules(self) -> OutcomeRules:
        """The pure rules object (validates the values, naming the bad one)."""
        return OutcomeRules(self.hold_band, self.hold_band_atr, self.hold_band_pct,
                            self.trade_horizon)


class ScorecardConfig(dg.Config):
    """Which horizon the scorecard judges (the outcomes hold all three)."""

    horizon: int = Field(default=5, description="Bars after the signal at which hit rates, "
                         "calibration and returns are measured: 1, 5 or 20.")


# --- reading -----------------------------------------------------------------------------------


def signal_facts(row: SignalRow) -> SignalFacts:
    """The outcome-relevant parts of a stored signal (levels, ATR it was given, who made it)."""
    signal = row.signal_json or {}
    daily = (row.indicators or {}).get("daily") or {}
    atr = daily.get("atr_14")
    return SignalFacts(
        signal_id=row.id, symbol=row.symbol, bar_date=row.bar_date, action=row.action,
        mode=row.mode, variant=row.variant or "", provider=row.provider, model=row.model,
        prompt_version=row.prompt_version or "", status=row.status,
        confidence_level=row.confidence_level, confidence_score=row.confidence_score,
        stop_loss=signal.get("stop_loss"), take_profit=signal.get("take_profit"),
        planned_r=signal.get("r_multiple"), atr=float(atr) if atr is not None else None,
        simulated=bool(row.simulated), data_source=row.data_source or "",
        # Absent from signals stored before prompt signal_v2: unknown, not guessed.
        horizon_days=signal.get("horizon_days"), timeframes_agree=signal.get("timeframes_agree"),
        training_cutoff=row.training_cutoff, cached=bool(row.cached),
    )


def bar_histories(store: ObjectStore, symbol: str) -> "list[tuple[str, pd.DataFrame]]":
    """The stored daily histories of a symbol: ohlcv's bars and the last replay's history."""
    frames = []
    for name, key in (("ohlcv", store.bars_key(symbol, missing_ok=True)),
                      ("replay", replay_bars_key(symbol))):
        if key and store.exists(key):
            frames.append((name, store.read_frame(key)))
    return frames


# --- metadata ----------------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    """A table cell Dagster can store: plain Python, NaN/NA as None, floats rounded."""
    import pandas as pd

    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return str(value.date())
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    return value


def _column_type(series: "pd.Series") -> str:
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        return "float"
    return "string"


def table_metadata(frame: "pd.DataFrame", description: str = "") -> dg.TableMetadataValue:
    """A DataFrame as a Dagster table (rates and returns stay fractions: 0.53 = 53%)."""
    schema = dg.TableSchema(columns=[
        dg.TableColumn(str(c), _column_type(frame[c]), description=description if i == 0
                       else None) for i, c in enumerate(frame.columns)])
    records = [dg.TableRecord({str(c): _cell(v) for c, v in row.items()})
               for row in frame.to_dict("records")]
    return dg.MetadataValue.table(records, schema=schema)


def outcome_metadata(outcomes: "pd.DataFrame", errors: int, location: str) -> dict[str, Any]:
    """Per-symbol summary of signal_outcomes: counts, 5-bar hit rate, the latest outcomes."""
    scored = outcomes[outcomes["hit_5"].notna()]
    latest = with_analyst(outcomes).sort_values("bar_date").tail(20)[
        ["bar_date", "mode", "analyst", "action", "confidence_score", "fwd_return_5", "hit_5",
         "trade_outcome", "r_multiple", "outcome_status"]]
    simulated = simulated_count(outcomes) > 0
    return {
        "status": "ok",
        "data": "SIMULATED (not market data)" if simulated else "market data",
        "signals": dg.MetadataValue.int(len(outcomes)),
        "analyst_errors_not_scored": dg.MetadataValue.int(errors),
        "scored": dg.MetadataValue.int(int((outcomes["outcome_status"] == "scored").sum())),
        "pending": dg.MetadataValue.int(int((outcomes["outcome_status"] == "pending").sum())),
        "no_bars": dg.MetadataValue.int(int((outcomes["outcome_status"] == "no_bars").sum())),
        "hit_rate_5": dg.MetadataValue.float(float(scored["hit_5"].astype(bool).mean())
                                             if len(scored) else float("nan")),
        "hold_share": dg.MetadataValue.float(float((outcomes["action"] == "HOLD").mean())
                                             if len(outcomes) else float("nan")),
        "latest": table_metadata(latest.reset_index(drop=True)),
        "location": location,
    }



def scorecard_metadata(tables: "dict[str, pd.DataFrame]", images: dict[str, bytes],
                       mlflow_note: str, training_warning: str = "") -> dict[str, Any]:
    """Headline numbers, every table, and the plots inline, for the Dagster UI."""
    summary = dict(zip(tables["summary"]["metric"], tables["summary"]["value"], strict=True))
    simulated = int(summary["simulated_signals"])
    metadata: dict[str, Any] = {
        "data": (f"SIMULATED bars behind {simulated} of {summary['signals']} signals"
                 if simulated else "market data"),
        "horizon_bars": dg.MetadataValue.int(int(summary["horizon_bars"])),
        "signals": dg.MetadataValue.int(int(summary["signals"])),
        "symbols": dg.MetadataValue.int(int(summary["symbols"])),
        "scored": dg.MetadataValue.int(int(summary["scored"])),
        "pending": dg.MetadataValue.int(int(summary["pending"])),
        "hit_rate": dg.MetadataValue.float(float(summary["hit_rate"])),
        "hit_rate_ci_95": f"{rate_text(summary['hit_rate_ci_low'])} - "
                          f"{rate_text(summary['hit_rate_ci_high'])}",
        "directional_hit_rate": dg.MetadataValue.float(float(summary["directional_hit_rate"])),
        "hold_share": dg.MetadataValue.float(float(summary["hold_share"])),
        "dates": f"{summary['first_bar_date']} .. {summary['last_bar_date']}",
        "training_period": training_warning or "no model signal is dated inside its model's "
                                               "training period",
        "cached_answers": dg.MetadataValue.int(int(summary["cached_answers"])),
    }
    for name, title in SCORECARD_TABLE_TITLES.items():
        if name == "summary":  # its numbers are the headline keys above
            continue
        metadata[name] = table_metadata(tables[name], title)
    note = ("Rates are fractions with 95% Wilson intervals; the dashed diagonal is perfect "
            "calibration. Small samples, simulated data, costs and overlapping horizons: see "
            "docs/scorecard.md before drawing conclusions.")
    if training_warning:
        note = f"> **{training_warning}**\n\n" + note
    if simulated:
        note = "> **SIMULATED DATA** - not market data.\n\n" + note
    metadata["plots"] = png_markdown(images, note)
    metadata["mlflow"] = mlflow_note
    return metadata


# --- MLflow ------------------------------------------------------------------------------------


def _metric_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\- /]", "_", text)[:250]


def scorecard_metrics(tables: "dict[str, pd.DataFrame]") -> dict[str, float]:
    """Numeric headline, per-analyst and per-action hit rates as MLflow metrics."""
    metrics: dict[str, float] = {}
    for metric, value in zip(tables["summary"]["metric"], tables["summary"]["value"],
                             strict=True):
        if isinstance(value, int | float) and not isinstance(value, bool):
            metrics[metric] = float(value)
    for row in tables["by_analyst"].itertuples(index=False):
        metrics[_metric_name(f"hit_rate/{row.analyst}")] = float(row.hit_rate)
        metrics[_metric_name(f"hold_share/{row.analyst}")] = float(row.hold_share)
    for row in tables["by_action"].itertuples(index=False):
        metrics[_metric_name(f"hit_rate/{row.analyst}/{row.action}")] = float(row.hit_rate)
    for row in tables["ab"].itertuples(index=False):
        metrics[_metric_name(f"ab_diff/{row.arm_a} - {row.arm_b}")] = float(row.difference)
    return {k: v for k, v in metrics.items() if math.isfinite(v)}


def scorecard_experiment(tracking: Tracking) -> str:
    """The MLflow experiment of the scorecards: the signals experiment's name plus a suffix."""
    return f"{tracking.experiment}{SCORECARD_EXPERIMENT_SUFFIX}"


def scorecard_record(tables: "dict[str, pd.DataFrame]", images: dict[str, bytes],
                     tags: dict[str, str]) -> RunRecord:
    """One scorecard as one MLflow run: metrics, the horizon, tables as CSV, the plots."""
    artifacts = {f"tables/{name}.csv": table.to_csv(index=False).encode()
                 for name, table in tables.items()}
    artifacts |= {f"{name}.png": png for name, png in images.items()}
    return RunRecord(run_name="signal scorecard", tags=tags,
                     params={"horizon_bars": str(tables["summary"]["value"].iloc[0])},
                     metrics=scorecard_metrics(tables), artifacts=artifacts)


def log_scorecard(tracking: Tracking, tables: "dict[str, pd.DataFrame]",
                  images: dict[str, bytes], tags: dict[str, str]) -> str:
    """Log the scorecard (best effort, bounded by the tracking timeout); says what happened."""
    if not tracking.active:
        return "MLflow off (MLFLOW_TRACKING_URI is empty or off)"
    experiment = scorecard_experiment(tracking)
    try:
        record = scorecard_record(tables, images, tags)
    except Exception as exc:  # best effort like the logging itself: reported, never raised
        return f"MLflow run not built: {type(exc).__name__}: {str(exc)[:300]}"
    result = tracking.log_run(record, experiment=experiment)
    if not result.run_id:
        return result.error or "scorecard not logged"
    return (f"logged to {tracking.label}, experiment {experiment!r}, run {result.run_id} "
            f"(experiment id {result.experiment_id})")


# --- assets ------------------------------------------------------------------------------------


@symbol_asset(
    deps=[ohlcv, llm_signal],
    group_name="evaluation",
    kinds={"pandas", "parquet"},
    description="What followed every stored signal (live and replay): forward returns after "
                f"{', '.join(map(str, HORIZONS))} bars, direction hit, stop or target first, R "
                "multiple, adverse excursion; pending until the bars exist.",
)
def signal_outcomes(context: dg.AssetExecutionContext, config: OutcomeConfig,
                    store: ObjectStore, app_db: AppDatabase) -> None:
    rules = config.rules()
    loop = SymbolLoop(context, app_db)
    for symbol in loop:
        with loop.attempt(symbol):
            rows = app_db.signals_to_score(symbol)
            histories = bar_histories(store, symbol)
            if rows and not histories:
                raise ObjectNotFoundError(
                    f"No stored bars for {symbol}: materialize ohlcv or run "
                    f"`trading-signals replay --symbols {symbol} ...` first.")
            outcomes = score_signals([signal_facts(r) for r in rows], histories, rules)
            key = store.write_frame(outcomes_key(symbol), outcomes)
            errors = sum(1 for r in rows if not r.action)
            loop.record(symbol, outcome_metadata(outcomes, errors, store.location(key)))
    loop.finish()


@dg.asset(
    deps=[signal_outcomes],
    group_name="evaluation",
    kinds={"matplotlib", "mlflow"},
    description="Track record of the signals across all symbols: hit rate by action, "
                "confidence and analyst with 95% intervals, calibration, returns against "
                "buy-and-hold, share of HOLDs, A/B differences. Also logged to MLflow.",
)
def signal_scorecard(context: dg.AssetExecutionContext, config: ScorecardConfig,
                     store: ObjectStore, tracking: Tracking) -> dg.MaterializeResult:
    outcomes = read_outcomes(store, list_symbols(context.instance))
    tables = scorecard_tables(outcomes, config.horizon)
    simulated = simulated_count(outcomes) > 0
    training_warning = training_period_warning(outcomes)
    if training_warning:
        context.log.warning(training_warning)
    images = render_scorecard_plots(tables, config.horizon, simulated=simulated)
    mlflow_note = log_scorecard(
        tracking, tables, images,
        {"dagster.run_id": context.run.run_id, "kind": "signal_scorecard",
         "simulated": str(simulated).lower()})
    if not mlflow_note.startswith(("logged", "MLflow off")):
        context.log.warning(mlflow_note)
    return dg.MaterializeResult(metadata=scorecard_metadata(tables, images, mlflow_note,
                                                            training_warning))
