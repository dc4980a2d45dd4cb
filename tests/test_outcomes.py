"""Outcome arithmetic on hand-made bars: returns, hits, bands, stop/target order, gaps, R, MAE."""

import io
import math
from datetime import date

import pandas as pd
import pytest

from trading_assets.core.outcomes import (
    OutcomeRules,
    SignalFacts,
    direction_hit,
    score_signal,
    score_signals,
    simulate_trade,
)

DAY0 = date(2024, 1, 1)


def make_bars(rows: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    """Daily bars from (open, high, low, close) tuples, one business day apart from DAY0."""
    dates = pd.bdate_range(DAY0, periods=len(rows))
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"])
    frame.insert(0, "date", dates.astype("datetime64[ns]"))
    frame["volume"] = 1_000.0
    return frame


def flat_then(later: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    """A signal bar closing at 100, then the given bars."""
    return make_bars([(100, 100, 100, 100), *later])


def facts(action: str | None, **extra: object) -> SignalFacts:
    return SignalFacts(signal_id="s1", symbol="TEST", bar_date=DAY0, action=action,
                       **extra)  # type: ignore[arg-type]


def trade(action: str, stop: float, target: float, later: list[tuple[float, float, float, float]],
          horizon: int = 20):
    bars = flat_then(later)
    return simulate_trade(action, 100.0, stop, target, bars.iloc[1:], horizon)


def test_forward_returns_and_direction_hits_at_each_horizon() -> None:
    closes = [100 + i for i in range(25)]  # rises one point a day
    bars = make_bars([(c, c, c, c) for c in closes])
    buy = score_signal(facts("BUY", stop_loss=95.0, take_profit=130.0), [("ohlcv", bars)],
                       OutcomeRules())
    assert buy["entry"] == 100
    assert buy["fwd_return_1"] == pytest.approx(0.01)
    assert buy["fwd_return_5"] == pytest.approx(0.05)
    assert buy["fwd_return_20"] == pytest.approx(0.20)
    assert buy["hit_1"] is True and buy["hit_20"] is True
    sell = score_signal(facts("SELL", stop_loss=105.0, take_profit=90.0), [("ohlcv", bars)],
                        OutcomeRules())
    assert sell["hit_5"] is False
    assert sell["outcome_status"] == "scored"


def test_a_flat_move_is_a_miss_for_buy_and_sell_and_a_hit_for_hold() -> None:
    assert direction_hit("BUY", 0.0, 0.01) is False
    assert direction_hit("SELL", 0.0, 0.01) is False
    assert direction_hit("HOLD", 0.0, 0.01) is True
    assert direction_hit("HOLD", 0.011, 0.01) is False
    assert direction_hit("HOLD", -0.01, 0.01) is True


@pytest.mark.parametrize(
    ("rules", "atr", "bars", "expected"),
    [
        (OutcomeRules(hold_band="atr", hold_band_atr=0.5), 2.0, 1, 0.01),
        (OutcomeRules(hold_band="atr", hold_band_atr=0.5), 2.0, 4, 0.02),  # sqrt(4) = 2
        (OutcomeRules(hold_band="atr", hold_band_atr=1.0), 2.0, 1, 0.02),
        (OutcomeRules(hold_band="atr", hold_band_pct=3.0), None, 5, 0.03),  # no ATR: fixed
        (OutcomeRules(hold_band="pct", hold_band_pct=2.0), 2.0, 20, 0.02),
    ],
)
def test_hold_band(rules: OutcomeRules, atr: float | None, bars: int, expected: float) -> None:
    assert rules.band(100.0, atr, bars) == pytest.approx(expected)


def test_hold_is_right_inside_the_band_and_wrong_outside() -> None:
    bars = make_bars([(100, 100, 100, 100)] + [(100.5, 100.5, 100.5, 100.5)] * 4
                     + [(103, 103, 103, 103)] * 20)
    row = score_signal(facts("HOLD", atr=2.0), [("ohlcv", bars)], OutcomeRules())
    assert row["hold_band_1"] == pytest.approx(0.01)
    assert row["hit_1"] is True  # +0.5% inside +/-1%
    assert row["hit_5"] is False  # +3% outside +/-2.24%
    assert row["trade_outcome"] == "no_trade"


def test_buy_reaches_target_inside_a_bar() -> None:
    result = trade("BUY", 95, 110, [(100, 104, 98, 103), (103, 111, 102, 108)])
    assert (result.outcome, result.exit_price, result.bars_held) == ("target", 110, 2)
    assert result.r_multiple == pytest.approx(2.0)
    assert result.mae_pct == pytest.approx(0.02)  # the low of 98
    assert result.mae_r == pytest.approx(0.4)


def test_a_bar_touching_both_stop_and_target_counts_as_stop_first() -> None:
    result = trade("BUY", 95, 110, [(100, 112, 94, 105)])
    assert (result.outcome, result.exit_price) == ("stop", 95)
    assert result.r_multiple == pytest.approx(-1.0)
    assert result.mae_r == pytest.approx(1.0)
    short = trade("SELL", 105, 90, [(100, 106, 89, 95)])
    assert (short.outcome, short.exit_price, short.r_multiple) == ("stop", 105, -1.0)


def test_a_gap_through_the_stop_fills_at_the_open_worse_than_the_stop() -> None:
    result = trade("BUY", 95, 110, [(101, 102, 99, 100), (92, 93, 90, 91)])
    assert (result.outcome, result.exit_price, result.bars_held) == ("stop", 92, 2)
    assert result.r_multiple == pytest.approx(-1.6)
    assert result.mae_r == pytest.approx(1.6)
    short = trade("SELL", 105, 90, [(108, 109, 107, 108)])
    assert (short.outcome, short.exit_price) == ("stop", 108)
    assert short.r_multiple == pytest.approx(-1.6)


def test_a_gap_through_the_target_fills_at_the_open_better_than_the_target() -> None:
    result = trade("BUY", 95, 110, [(115, 116, 113, 114)])
    assert (result.outcome, result.exit_price) == ("target", 115)
    assert result.r_multiple == pytest.approx(3.0)
    assert result.mae_pct == 0.0


def test_sell_is_mirrored() -> None:
    result = trade("SELL", 105, 90, [(100, 104, 96, 97), (97, 98, 89, 90)])
    assert (result.outcome, result.exit_price) == ("target", 90)
    assert result.r_multiple == pytest.approx(2.0)
    assert result.mae_pct == pytest.approx(0.04)  # the high of 104


def test_neither_level_within_the_horizon_exits_at_the_close() -> None:
    later = [(100, 102, 98, 101)] * 2 + [(101, 103, 99, 102)]
    result = trade("BUY", 95, 110, later, horizon=3)
    assert (result.outcome, result.exit_price, result.bars_held) == ("timeout", 102, 3)
    assert result.r_multiple == pytest.approx(0.4)
    assert result.mae_pct == pytest.approx(0.02)


def test_too_few_bars_is_pending_not_guessed() -> None:
    result = trade("BUY", 95, 110, [(100, 102, 98, 101)] * 3, horizon=20)
    assert result.outcome == "pending"
    assert result.r_multiple is None
    row = score_signal(facts("BUY", stop_loss=95.0, take_profit=110.0),
                       [("ohlcv", flat_then([(100, 102, 98, 101)] * 3))], OutcomeRules())
    assert row["outcome_status"] == "pending"
    assert row["fwd_return_1"] == pytest.approx(0.01)
    assert row["fwd_return_5"] is None and row["hit_5"] is None


def test_levels_on_the_wrong_side_of_the_close_are_reported_not_traded() -> None:
    assert trade("BUY", 101, 110, [(100, 102, 98, 101)]).outcome == "invalid_levels"
    assert trade("SELL", 105, 100.5, [(100, 102, 98, 101)]).outcome == "invalid_levels"


def test_a_signal_outside_the_stored_history_has_no_bars() -> None:
    bars = make_bars([(100, 100, 100, 100)] * 5)
    row = score_signal(SignalFacts("s9", "TEST", date(2019, 1, 2), "BUY"), [("ohlcv", bars)],
                       OutcomeRules())
    assert row["outcome_status"] == "no_bars"


def test_the_history_with_the_most_later_bars_is_used() -> None:
    short = make_bars([(100, 100, 100, 100)] * 3)
    long = make_bars([(100, 100, 100, 100)] + [(90, 90, 90, 90)] * 30)
    row = score_signal(facts("SELL", stop_loss=105.0, take_profit=80.0),
                       [("ohlcv", short), ("replay", long)], OutcomeRules())
    assert row["series"] == "replay"
    assert row["hit_20"] is True
    assert row["trade_outcome"] == "timeout"


def test_analyst_errors_are_not_scored_and_the_frame_survives_parquet() -> None:
    bars = make_bars([(100 + i, 101 + i, 99 + i, 100 + i) for i in range(30)])
    signals = [facts(None), facts("BUY", stop_loss=95.0, take_profit=103.5, confidence_score=70,
                                  confidence_level="MEDIUM")]
    frame = score_signals(signals, [("ohlcv", bars)])
    assert len(frame) == 1
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    back = pd.read_parquet(io.BytesIO(buffer.getvalue()))
    assert bool(back["hit_5"].iloc[0]) is True
    assert back["trade_outcome"].iloc[0] == "target"
    assert back["exit_price"].iloc[0] == pytest.approx(103.5)  # touched on the third bar
    assert math.isclose(float(back["r_multiple"].iloc[0]), 0.7)
    assert str(back["bar_date"].dtype).startswith("datetime64")
    empty = score_signals([], [("ohlcv", bars)])
    assert list(empty.columns) == list(frame.columns) and empty.empty


# --- the signal's own horizon ---------------------------------------------------------------


def test_a_signal_is_also_judged_at_the_horizon_it_stated() -> None:
    closes = [100 + i for i in range(25)]  # rises one point a day
    bars = make_bars([(c, c, c, c) for c in closes])
    short = score_signal(facts("BUY", stop_loss=95.0, take_profit=130.0, horizon_days=3),
                         [("ohlcv", bars)], OutcomeRules())
    assert short["fwd_return_stated"] == pytest.approx(0.03)
    assert short["hit_stated"] is True and short["horizon_days"] == 3
    assert short["hit_5"] is True  # the fixed horizons are still there
    # A horizon longer than the bars after the signal stays pending, never guessed.
    long = score_signal(facts("BUY", stop_loss=95.0, take_profit=130.0, horizon_days=60),
                        [("ohlcv", bars)], OutcomeRules())
    assert long["fwd_return_stated"] is None and long["hit_stated"] is None
    assert long["hold_band_stated"] is not None
    assert long["outcome_status"] == "pending" and long["hit_20"] is True
    # A signal stored before horizons existed has none to be judged at.
    unstated = score_signal(facts("BUY", stop_loss=95.0, take_profit=130.0), [("ohlcv", bars)],
                            OutcomeRules())
    assert unstated["hit_stated"] is None and unstated["outcome_status"] == "scored"
    frame = score_signals([facts("BUY", stop_loss=95.0, take_profit=130.0, horizon_days=3,
                                 timeframes_agree=False)], [("ohlcv", bars)])
    assert bool(frame["hit_stated"].iloc[0]) and not bool(frame["timeframes_agree"].iloc[0])


def test_outcomes_stored_before_the_new_columns_read_back() -> None:
    from trading_assets.core.outcomes import OUTCOME_COLUMNS, outcomes_frame

    bars = make_bars([(100 + i, 101 + i, 99 + i, 100 + i) for i in range(30)])
    old = score_signals([facts("BUY", stop_loss=95.0, take_profit=103.5)], [("ohlcv", bars)])
    new_columns = ["horizon_days", "timeframes_agree", "fwd_return_stated", "hold_band_stated",
                   "hit_stated", "training_cutoff", "training_period", "cached"]
    old = old.drop(columns=new_columns)
    frame = outcomes_frame(old.to_dict("records"))
    assert list(frame.columns) == OUTCOME_COLUMNS
    assert frame["hit_stated"].isna().all() and frame["training_period"].isna().all()


def _summary(up: bool) -> dict[str, float | None]:
    """Indicators of a clear up (or down) trend with momentum to match."""
    sign = 1 if up else -1
    return {"close": 100.0 + 10 * sign, "sma_50": 100.0 - 5 * sign, "sma_200": 100.0 - 10 * sign,
            "rsi_14": 50 + 10 * sign, "macd_hist": sign * 1.0, "atr_14": 2.0}


STRONG_DAILY_UP = {"close": 110.0, "sma_50": 105.0, "sma_200": 100.0, "rsi_14": 25.0,
                   "macd_hist": 1.0, "atr_14": 2.0, "bb_upper": 120.0, "bb_lower": 111.0}
WEEKLY_SLIGHTLY_DOWN = {"close": 100.0, "sma_50": None, "rsi_14": 50.0, "macd_hist": -0.5}


@pytest.mark.parametrize("daily, weekly, action, agree, horizon", [
    (_summary(True), _summary(True), "BUY", True, 20),
    (_summary(False), _summary(False), "SELL", True, 20),
    (STRONG_DAILY_UP, WEEKLY_SLIGHTLY_DOWN, "BUY", False, 5),  # against the weekly: shorter
    (_summary(True), _summary(False), "HOLD", False, 5),
])
def test_the_rules_analyst_states_its_horizon_and_whether_the_timeframes_agree(
        daily: dict[str, float | None], weekly: dict[str, float | None], action: str,
        agree: bool, horizon: int) -> None:
    from trading_assets.core.analyst import rules_signal
    from trading_assets.core.signal import AnalysisRequest

    request = AnalysisRequest(symbol="TEST", bar_date=DAY0, data_source="simulated",
                              simulated=True, daily_summary=daily, weekly_summary=weekly,
                              last_bars=[])
    signal = rules_signal(request)
    assert signal.action.value == action
    assert (signal.timeframes_agree, signal.horizon_days) == (agree, horizon)
    assert f"horizon {horizon} trading days" in signal.reasoning
