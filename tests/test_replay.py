"""Walk-forward replay: no lookahead, determinism, never executable, cost cap, CSV end to end."""

from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from trading_assets import cli
from trading_assets.core.analyst import rules_signal
from trading_assets.core.bars import last_bars_records, simulate_bars
from trading_assets.core.charts import render_chart
from trading_assets.core.indicators import compute_indicators, latest_summary, resample_weekly
from trading_assets.core.replay import replay_dates
from trading_assets.core.signal import AnalysisOutcome, AnalysisRequest, SignalStatus
from trading_assets.replay import Arm, History, build_arms, run_replay
from trading_assets.settings import build_resources

AS_OF = date(2026, 11, 20)
POISON = 1e6
PRICE_KEYS = ("open", "high", "low", "close", "sma_20", "sma_50", "sma_200", "bb_upper",
              "bb_middle", "bb_lower", "atr_14")


class SpyAnalyst:
    """Stands in for LLMAnalyst: records every request, answers with the rules analyst."""

    label = "spy analyst"

    def __init__(self, model: str = "spy-1", cost_usd: float = 0.0) -> None:
        self.model, self.cost_usd = model, cost_usd
        self.batches: list[list[AnalysisRequest]] = []

    def identity(self) -> tuple[str, str, str]:
        return ("spy", self.model, "v1")

    def cache_mode(self, default: str) -> str:
        return default

    def analyze_many(self, requests: list[AnalysisRequest], budget: Any = None,
                     exchanges: Any = None) -> list[AnalysisOutcome]:
        self.batches.append(list(requests))
        outcomes = []
        for request in requests:
            signal = rules_signal(request).model_copy(
                update={"provider": "spy", "model": self.model, "prompt_version": "v1"})
            outcomes.append(AnalysisOutcome(symbol=request.symbol, signal=signal, provider="spy",
                                            model=self.model, prompt_version="v1",
                                            cost_usd=self.cost_usd))
        return outcomes

    @property
    def seen(self) -> list[AnalysisRequest]:
        return [r for batch in self.batches for r in batch]


def arm(name: str, analyst: Any, images: bool = False, variant: str = "") -> Arm:
    return Arm(name, variant, images, lambda _budget: analyst, analyst.identity())


def test_no_bar_after_the_cut_reaches_the_analyst(resources: dict[str, Any]) -> None:
    clean = simulate_bars("LEAK", AS_OF, 700)
    for cut in (clean["date"].iloc[450].date(), clean["date"].iloc[620].date()):
        poisoned = clean.copy()
        later = poisoned["date"] > pd.Timestamp(cut)
        poisoned.loc[later, ["open", "high", "low", "close"]] = POISON
        poisoned.loc[later, "volume"] = np.nan
        with_images, without = SpyAnalyst(), SpyAnalyst("spy-2")
        run_replay([History("LEAK", poisoned, "csv", False)], {"LEAK": [cut]},
                   [arm("images", with_images, True, "images"),
                    arm("no-images", without, False, "no-images")],
                   resources["app_db"], resources["store"])
        (request,), (plain,) = with_images.seen, without.seen
        # What the analyst may see: the last 400 bars up to the cut, computed independently.
        past = clean[clean["date"] <= pd.Timestamp(cut)].tail(400).reset_index(drop=True)
        daily, weekly = compute_indicators(past), compute_indicators(resample_weekly(past))
        assert request.bar_date == cut
        assert all(bar["date"] <= str(cut) for bar in request.last_bars)
        assert request.last_bars == last_bars_records(past)
        assert request.daily_summary == latest_summary(daily)
        assert request.weekly_summary == latest_summary(weekly)
        for summary in (request.daily_summary, request.weekly_summary):
            assert all(summary[key] is None or summary[key] < POISON / 10 for key in PRICE_KEYS)
        assert request.daily_summary["close"] == past["close"].iloc[-1]
        assert request.daily_chart_png == render_chart("LEAK", daily, "daily",
                                                       simulated=False).png
        assert request.weekly_chart_png == render_chart("LEAK", weekly, "weekly",
                                                        simulated=False).png
        # The no-images arm gets the same data and no charts at all.
        assert plain.daily_chart_png is None and plain.weekly_chart_png is None
        assert plain.daily_summary == request.daily_summary


def rules_replay(data_dir: Path, symbols: list[str]) -> list[tuple[Any, ...]]:
    """Replay the rules analyst into a fresh data directory; the stored signals as tuples."""
    env = {"TRADING_DATA_DIR": str(data_dir), "MLFLOW_TRACKING_URI": ""}
    resources = build_resources(env)
    histories = [History(s, simulate_bars(s, AS_OF, 500), "simulated", True) for s in symbols]
    dates = {h.symbol: replay_dates(h.frame, date(2026, 1, 5), AS_OF, every=10)
             for h in histories}
    report = run_replay(histories, dates, build_arms(env, "rules", None, False),
                        resources["app_db"], resources["store"], batch_size=7)
    assert report.stored() == sum(len(d) for d in dates.values()) > 10
    rows = [r for s in symbols for r in resources["app_db"].signals_to_score(s)]
    return [(r.symbol, r.bar_date, r.mode, r.status, r.variant, r.action, r.confidence_score,
             {k: v for k, v in (r.signal_json or {}).items() if k != "generated_at"})
            for r in rows]


def test_a_rules_replay_is_deterministic(tmp_path: Path) -> None:
    first = rules_replay(tmp_path / "one", ["TSLA", "NVDA"])
    second = rules_replay(tmp_path / "two", ["TSLA", "NVDA"])
    assert first == second
    assert {row[2:5] for row in first} == {("replay", "replay", "")}
    assert {row[5] for row in first} <= {"BUY", "SELL", "HOLD"}


def test_replaying_again_stores_nothing_twice(tmp_path: Path) -> None:
    first = rules_replay(tmp_path / "same", ["TSLA"])
    env = {"TRADING_DATA_DIR": str(tmp_path / "same"), "MLFLOW_TRACKING_URI": ""}
    resources = build_resources(env)
    history = History("TSLA", simulate_bars("TSLA", AS_OF, 500), "simulated", True)
    dates = {"TSLA": replay_dates(history.frame, date(2026, 1, 5), AS_OF, every=10)}
    run_replay([history], dates, build_arms(env, "rules", None, False), resources["app_db"],
               resources["store"])
    assert len(resources["app_db"].signals_to_score("TSLA")) == len(first)


def test_replay_signals_can_never_be_executed(resources: dict[str, Any]) -> None:
    app_db = resources["app_db"]
    history = History("MSFT", simulate_bars("MSFT", AS_OF, 450), "simulated", True)
    dates = {"MSFT": replay_dates(history.frame, date(2026, 6, 1), AS_OF, every=20)}
    run_replay([history], dates, [arm("spy", SpyAnalyst())], app_db, resources["store"])
    rows = app_db.signals_to_score("MSFT")
    assert rows and {(r.mode, r.status) for r in rows} == {("replay", "replay")}
    assert app_db.list_signals(symbol="MSFT") == []  # the review list shows live signals only
    assert app_db.executable_signals("MSFT") == []
    with pytest.raises(ValueError, match="replay"):
        app_db.review_signal(rows[0].id, SignalStatus.APPROVED, reviewer="tester")
    # Even a replay row whose status was somehow set to approved is not executable.
    from resources.app_db import SignalRow

    with app_db.session() as session:
        session.get(SignalRow, rows[0].id).status = SignalStatus.APPROVED.value
    assert app_db.executable_signals("MSFT") == []


def test_model_replays_go_through_analyze_many_in_batches_under_the_cost_cap(
        resources: dict[str, Any]) -> None:
    history = History("NVDA", simulate_bars("NVDA", AS_OF, 450), "simulated", True)
    dates = {"NVDA": replay_dates(history.frame, date(2026, 1, 5), AS_OF, every=5)[:6]}
    spy = SpyAnalyst(cost_usd=0.4)
    budgets: list[float] = []

    def make(budget: float) -> SpyAnalyst:
        budgets.append(budget)
        return spy

    free = SpyAnalyst("free-rules")
    report = run_replay([history], dates, [Arm("model", "no-images", False, make,
                                               spy.identity()),
                                           Arm("rules", "", False, lambda _: free,
                                               free.identity(), paid=False)],
                        resources["app_db"], resources["store"], batch_size=2,
                        max_cost_usd=1.0)
    assert [len(b) for b in spy.batches] == [2, 2]
    assert len(free.seen) == 6  # the free analyst is never stopped by the cap
    assert budgets == pytest.approx([1.0, 0.2])  # each batch may spend only what is left
    assert report.spent_usd == pytest.approx(1.6)
    assert report.not_run == 2
    assert report.stored() == 4 + 6


def write_csv(path: Path, symbol: str, as_of: date, rows: int) -> None:
    bars = simulate_bars(symbol, as_of, rows).rename(columns=str.title)
    bars.to_csv(path / f"{symbol}.csv", index=False, date_format="%Y-%m-%d")


def test_replay_over_a_csv_history_builds_the_scorecard(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    csv_dir, data_dir = tmp_path / "csv", tmp_path / "data"
    csv_dir.mkdir()
    for symbol in ("ACME", "BETA"):
        write_csv(csv_dir, symbol, date(2024, 12, 31), 480)
    for name, value in {"TRADING_DATA_SOURCE": "csv", "TRADING_CSV_DIR": str(csv_dir),
                        "TRADING_DATA_DIR": str(data_dir),
                        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
                        "MLFLOW_TIMEOUT_S": "90"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the local SQLite store

    code = cli.main(["replay", "--symbols", "ACME,BETA", "--start", "2024-03-01",
                     "--every", "5"])
    assert code == 0

    resources = build_resources()
    stored = resources["app_db"].signals_to_score("ACME")
    assert stored and {(r.mode, r.status, r.data_source) for r in stored} == \
        {("replay", "replay", "csv")}
    instance = dg.DagsterInstance.get()
    try:
        outcomes = {}
        for record in instance.fetch_materializations(dg.AssetKey("signal_outcomes"),
                                                      limit=10).records:
            mat = record.asset_materialization
            outcomes[mat.partition] = {k: v.value for k, v in mat.metadata.items()}
        assert set(outcomes) == {"ACME", "BETA"}
        assert outcomes["ACME"]["scored"] > 0 and outcomes["ACME"]["pending"] > 0
        assert outcomes["ACME"]["data"] == "market data"

        event = instance.get_latest_materialization_event(dg.AssetKey("signal_scorecard"))
        assert event is not None and event.asset_materialization is not None
        meta = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    finally:
        instance.dispose()
    assert meta["signals"] == len(stored) + len(resources["app_db"].signals_to_score("BETA"))
    assert meta["symbols"] == 2
    assert 0.0 <= meta["hit_rate"] <= 1.0 and 0.0 <= meta["hold_share"] <= 1.0
    by_action = [r.data for r in meta["by_action"].records]
    assert {r["action"] for r in by_action} <= {"BUY", "SELL", "HOLD"}
    assert all(r["ci_low"] <= r["hit_rate"] <= r["ci_high"] for r in by_action)
    assert sum(r["n"] for r in by_action) == meta["scored"]
    assert [c.name for c in meta["calibration"].schema.columns][:3] == \
        ["analyst", "bucket", "mean_stated"]
    assert meta["calibration"].records
    assert {r.data["action"] for r in meta["returns"].records} >= {"ALL"}
    assert meta["by_analyst"].records[0].data["analyst"] == "rules rules-v1"
    assert meta["plots"].count("data:image/png;base64,") == 2
    assert meta["mlflow"].startswith("logged"), meta["mlflow"]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{data_dir.resolve() / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("trading-signals-scorecard")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.metrics["hit_rate"] == pytest.approx(meta["hit_rate"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"calibration.png", "hit_rate.png", "tables"} <= artifacts
