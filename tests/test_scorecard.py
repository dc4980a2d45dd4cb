"""Scorecard statistics: Wilson and Newcombe intervals, calibration buckets, tables, plots."""

import math
from datetime import date

import pandas as pd
import pytest

from trading_assets.core.outcomes import outcomes_frame
from trading_assets.core.scorecard import (
    confidence_bucket,
    newcombe_difference,
    render_calibration_plot,
    render_hit_rate_plot,
    scorecard_tables,
    wilson_interval,
)


def outcome(day: int, action: str, hit: bool | None, *, score: int = 60, ret: float = 0.01,
            provider: str = "rules", model: str = "rules-v1", variant: str = "",
            symbol: str = "AAA", mode: str = "replay", **extra: object) -> dict[str, object]:
    """One outcome row at the 5-bar horizon (hit None = pending)."""
    row: dict[str, object] = {
        "signal_id": f"{provider}{variant}{symbol}{day}", "symbol": symbol,
        "bar_date": pd.Timestamp(date(2024, 1, 1)) + pd.offsets.BDay(day), "mode": mode,
        "variant": variant, "provider": provider, "model": model, "prompt_version": model,
        "status": "replay", "action": action, "confidence_score": score,
        "confidence_level": "HIGH" if score >= 80 else "MEDIUM" if score >= 50 else "LOW",
        "simulated": False, "outcome_status": "scored" if hit is not None else "pending",
        "fwd_return_5": ret if hit is not None else None, "hold_band_5": 0.02, "hit_5": hit,
        "trade_outcome": "no_trade" if action == "HOLD" else "pending",
    }
    row.update(extra)
    return row


@pytest.mark.parametrize(
    ("hits", "n", "low", "high"),
    [(5, 10, 0.2366, 0.7634), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0),
     (81, 263, 0.2553, 0.3662)],
)
def test_wilson_interval_matches_published_values(hits: int, n: int, low: float,
                                                  high: float) -> None:
    got = wilson_interval(hits, n)
    assert got == pytest.approx((low, high), abs=5e-4)


def test_wilson_interval_of_nothing_is_undefined() -> None:
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_wilson_interval_always_contains_the_observed_rate() -> None:
    # At 0 % and 100 % rounding once left a bound past the rate; the calibration plot's error
    # bars then failed with "'yerr' must not contain negative values".
    for n in range(1, 300):
        for hits in range(n + 1):
            low, high = wilson_interval(hits, n)
            assert low <= hits / n <= high, (hits, n)


def test_newcombe_difference_matches_newcombe_1998() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 vs 48/80.
    diff, low, high = newcombe_difference(56, 70, 48, 80)
    assert diff == pytest.approx(0.2)
    assert (low, high) == pytest.approx((0.0524, 0.3339), abs=5e-4)


@pytest.mark.parametrize(
    ("score", "bucket"),
    [(0, "0-49"), (49, "0-49"), (50, "50-59"), (59, "50-59"), (79, "70-79"), (80, "80-89"),
     (99, "90-100"), (100, "90-100"), (None, None), (float("nan"), None)],
)
def test_confidence_buckets(score: float | None, bucket: str | None) -> None:
    assert confidence_bucket(score) == bucket


def test_calibration_table_sets_stated_confidence_against_realised_hit_rate() -> None:
    rows = ([outcome(i, "BUY", i < 3, score=85) for i in range(4)]          # 3/4 at ~85
            + [outcome(10 + i, "SELL", i < 1, score=55) for i in range(5)]  # 1/5 at 55
            + [outcome(20, "BUY", None, score=90)])                         # pending: left out
    table = scorecard_tables(outcomes_frame(rows))["calibration"]
    assert list(table["bucket"]) == ["50-59", "80-89"]
    high = table[table["bucket"] == "80-89"].iloc[0]
    assert (high["n"], high["hits"], high["hit_rate"]) == (4, 3, 0.75)
    assert high["mean_stated"] == pytest.approx(0.85)
    assert high["gap"] == pytest.approx(-0.10)
    low = table[table["bucket"] == "50-59"].iloc[0]
    assert (low["n"], low["hit_rate"]) == (5, 0.2)
    assert (low["ci_low"], low["ci_high"]) == pytest.approx(wilson_interval(1, 5))


def test_hit_rates_hold_share_base_rates_and_pending() -> None:
    rows = [outcome(0, "BUY", True, ret=0.03), outcome(1, "BUY", False, ret=-0.01),
            outcome(2, "SELL", True, ret=-0.02), outcome(3, "HOLD", True, ret=0.005),
            outcome(4, "HOLD", False, ret=0.05), outcome(5, "HOLD", None)]
    tables = scorecard_tables(outcomes_frame(rows))
    summary = dict(zip(tables["summary"]["metric"], tables["summary"]["value"], strict=True))
    assert summary["signals"] == 6 and summary["scored"] == 5 and summary["pending"] == 1
    assert summary["hit_rate"] == pytest.approx(3 / 5)
    assert summary["directional_hit_rate"] == pytest.approx(2 / 3)
    assert summary["hold_share"] == pytest.approx(3 / 6)
    by_action = tables["by_action"].set_index("action")
    assert list(by_action.index) == ["BUY", "SELL", "HOLD"]
    assert by_action.loc["BUY", "hit_rate"] == 0.5
    # On the five scored dates 3 moves were up, 2 down and 3 inside the +/-2% band.
    assert by_action.loc["BUY", "base_rate"] == pytest.approx(3 / 5)
    assert by_action.loc["SELL", "base_rate"] == pytest.approx(2 / 5)
    assert by_action.loc["HOLD", "base_rate"] == pytest.approx(3 / 5)
    assert by_action.loc["HOLD", "share"] == pytest.approx(3 / 6)
    analyst = tables["by_analyst"].iloc[0]
    assert (analyst["signals"], analyst["n"], analyst["pending"]) == (6, 5, 1)
    confidence = tables["by_confidence"]
    assert list(confidence["confidence_level"]) == ["MEDIUM"]


def test_returns_against_buy_and_hold_on_the_same_dates() -> None:
    rows = [outcome(0, "BUY", True, ret=0.04), outcome(1, "SELL", True, ret=-0.02),
            outcome(2, "HOLD", True, ret=0.01)]
    returns = scorecard_tables(outcomes_frame(rows))["returns"].set_index("action")
    assert returns.loc["ALL", "buy_hold_mean"] == pytest.approx(0.01)
    assert returns.loc["BUY", "excess"] == pytest.approx(0.03)
    assert returns.loc["SELL", "traded_mean"] == pytest.approx(0.02)  # short: -(-2%)
    assert returns.loc["ALL", "traded_mean"] == pytest.approx((0.04 + 0.02 + 0.0) / 3)


def test_ab_compares_arms_only_on_their_common_dates() -> None:
    rows = []
    for day in range(10):
        rows.append(outcome(day, "BUY", day < 8, provider="openai", model="m",
                            variant="images"))
        rows.append(outcome(day, "BUY", day < 4, provider="openai", model="m",
                            variant="no-images"))
    rows.append(outcome(50, "BUY", True, provider="openai", model="m", variant="images"))
    ab = scorecard_tables(outcomes_frame(rows))["ab"]
    assert len(ab) == 1
    row = ab.iloc[0]
    assert row["arm_a"] == "openai m [images]" and row["arm_b"] == "openai m [no-images]"
    assert row["common_dates"] == 10
    assert (row["hit_rate_a"], row["hit_rate_b"]) == (0.8, 0.4)
    diff, low, high = newcombe_difference(8, 10, 4, 10)
    assert (row["difference"], row["ci_low"], row["ci_high"]) == pytest.approx((diff, low, high))


def test_trades_table_counts_stop_and_target_first() -> None:
    rows = [outcome(0, "BUY", True, trade_outcome="target", r_multiple=2.0, mae_pct=0.01),
            outcome(1, "BUY", False, trade_outcome="stop", r_multiple=-1.0, mae_pct=0.05),
            outcome(2, "BUY", False, trade_outcome="pending")]
    trades = scorecard_tables(outcomes_frame(rows))["trades"].iloc[0]
    assert (trades["trades"], trades["target_first"], trades["stop_first"]) == (2, 0.5, 0.5)
    assert trades["pending"] == 1
    assert trades["mean_r"] == pytest.approx(0.5)


def test_empty_outcomes_give_empty_tables_and_plots_still_render() -> None:
    tables = scorecard_tables(outcomes_frame([]))
    assert tables["by_action"].empty and tables["calibration"].empty
    for png in (render_calibration_plot(tables["calibration"], 5),
                render_hit_rate_plot(tables["by_action"], 5)):
        assert png.startswith(b"\x89PNG")


def test_plots_render_with_data() -> None:
    rows = [outcome(i, ("BUY", "SELL", "HOLD")[i % 3], i % 2 == 0, score=40 + i * 3)
            for i in range(20)]
    tables = scorecard_tables(outcomes_frame(rows))
    assert render_calibration_plot(tables["calibration"], 5, simulated=True) \
        .startswith(b"\x89PNG")
    assert render_hit_rate_plot(tables["by_action"], 5).startswith(b"\x89PNG")


def test_unknown_horizon_is_refused() -> None:
    with pytest.raises(ValueError, match="horizon=3"):
        scorecard_tables(outcomes_frame([]), horizon=3)


def test_a_scorecard_is_one_mlflow_run_record_and_says_when_tracking_is_off() -> None:
    from resources.tracking import Tracking
    from trading_assets.assets.scorecard import (
        log_scorecard,
        scorecard_experiment,
        scorecard_record,
    )

    rows = [outcome(i, ("BUY", "SELL", "HOLD")[i % 3], i % 2 == 0) for i in range(12)]
    tables = scorecard_tables(outcomes_frame(rows))
    record = scorecard_record(tables, {"calibration": b"\x89PNG c"}, {"kind": "signal_scorecard"})
    assert record.run_name == "signal scorecard" and record.params == {"horizon_bars": "5"}
    assert record.metrics["hit_rate"] == pytest.approx(0.5)
    assert record.artifacts["calibration.png"] == b"\x89PNG c"
    assert record.artifacts["tables/summary.csv"] == tables["summary"].to_csv(index=False) \
        .encode()
    assert set(record.artifacts) == {"calibration.png"} | {f"tables/{n}.csv" for n in tables}
    assert scorecard_experiment(Tracking(experiment="lab")) == "lab-scorecard"
    assert log_scorecard(Tracking(), tables, {}, {}).startswith("MLflow off")


# --- the model's training period ---------------------------------------------------------------

CUTOFF = date(2024, 1, 9)


def model_outcome(day: int, hit: bool, **extra: object) -> dict[str, object]:
    """An openai outcome whose model's training cutoff is CUTOFF."""
    from trading_assets.core.training import training_period

    row = outcome(day, "BUY", hit, provider="openai", model="gpt-test", **extra)
    row["training_cutoff"] = pd.Timestamp(CUTOFF)
    row["training_period"] = training_period("openai", CUTOFF, row["bar_date"].date())
    return row


def test_signals_before_and_after_the_training_cutoff_are_reported_apart() -> None:
    from trading_assets.core.scorecard import training_period_warning

    # Days 0-6 fall on or before 2024-01-09 (business days from 2024-01-01): right 6 of 7,
    # as a model that remembers would be; after it, right 2 of 6.
    before = [model_outcome(day, day != 3) for day in range(7)]
    after = [model_outcome(day, day in (8, 11)) for day in range(7, 13)]
    rules = [outcome(day, "BUY", day % 2 == 0) for day in range(4)]
    frame = outcomes_frame(before + after + rules)
    tables = scorecard_tables(frame)
    periods = tables["by_training_period"].set_index(["analyst", "training_period"])
    assert periods.loc[("openai gpt-test", "before cutoff"), ["n", "hits"]].tolist() == [7, 6]
    assert periods.loc[("openai gpt-test", "after cutoff"), ["n", "hits"]].tolist() == [6, 2]
    assert periods.loc[("rules rules-v1", "no model"), "n"] == 4
    summary = dict(zip(tables["summary"]["metric"], tables["summary"]["value"], strict=True))
    assert summary["in_training_period"] == 7
    warning = training_period_warning(frame)
    assert warning.startswith("WARNING: 7 of 13 model signal(s) (2024-01-01 .. 2024-01-09)")
    assert "after cutoff" in warning
    assert training_period_warning(outcomes_frame(after + rules)) == ""
    unknown = outcomes_frame([outcome(0, "BUY", True, provider="openai", model="local-llm")])
    assert "training cutoff is unknown" in training_period_warning(unknown)
    assert scorecard_tables(unknown)["by_training_period"]["training_period"].tolist() == \
        ["cutoff unknown"]


def test_the_stated_horizon_table_splits_by_daily_weekly_agreement() -> None:
    rows = [outcome(day, "BUY", True, horizon_days=20, timeframes_agree=True,
                    hit_stated=day != 0, fwd_return_stated=0.01) for day in range(4)]
    rows += [outcome(day, "BUY", False, horizon_days=5, timeframes_agree=False,
                     hit_stated=False, fwd_return_stated=-0.01) for day in range(4, 6)]
    rows += [outcome(9, "HOLD", True)]  # stored before horizons existed: not in the table
    table = scorecard_tables(outcomes_frame(rows))["stated_horizon"].set_index("timeframes")
    assert table.loc["agree", ["signals", "n", "hits"]].tolist() == [4, 4, 3]
    assert table.loc["agree", "median_horizon_days"] == 20
    assert table.loc["agree", "fixed_horizon_hit_rate"] == 1.0
    assert table.loc["disagree", ["signals", "hit_rate"]].tolist() == [2, 0.0]


@pytest.mark.parametrize("model, configured, expected", [
    ("gpt-4o-mini", None, date(2023, 10, 1)),
    ("gpt-4o-mini-2024-07-18", None, date(2023, 10, 1)),
    ("gpt-4.1-mini", None, date(2024, 6, 1)),
    ("llama3.1:8b", None, None),
    ("llama3.1:8b", date(2023, 12, 1), date(2023, 12, 1)),
])
def test_a_models_cutoff_is_the_setting_else_the_published_one_else_unknown(
        model: str, configured: date | None, expected: date | None) -> None:
    from trading_assets.core.training import cutoff_for

    assert cutoff_for(model, configured) == expected


def test_a_replay_inside_the_training_period_is_warned_about() -> None:
    from trading_assets.core.training import replay_period_warning

    days = [date(2023, 9, 1), date(2023, 10, 1), date(2023, 11, 1)]
    warning = replay_period_warning("gpt-4o-mini", date(2023, 10, 1), days)
    assert warning.startswith("WARNING: 2 of 3 replay date(s) (2023-09-01 .. 2023-10-01)")
    assert replay_period_warning("gpt-4o-mini", date(2023, 10, 1), days[2:]) == ""
    assert "LLM_TRAINING_CUTOFF" in replay_period_warning("local", None, days)
