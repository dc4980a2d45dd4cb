"""What happened after each signal: forward returns, direction hits, stop/target, R and MAE.

Pure arithmetic on daily bars, no I/O. The conventions, which the scorecard documents:

- The reference price is the close of the signal's bar (the last price the analyst saw);
  forward returns are close-to-close after 1, 5 and 20 bars.
- Direction: BUY is right when the forward return is > 0, SELL when it is < 0 (a flat move
  is right for neither), HOLD when the move stays inside a band. The band is
  `hold_band_atr` x ATR(14)/close x sqrt(bars) ("atr", the default), widening with the
  square root of time as a random walk does, or a fixed +/-`hold_band_pct` % ("pct", also
  the fallback when the signal has no ATR). The default 0.5 ATR is about the median absolute
  move of a random walk (ATR is ~1.2-1.5 daily standard deviations), so HOLD, like BUY and
  SELL, is right about half the time by chance: the three hit rates stay comparable. A
  1-ATR band would make HOLD right ~85% of the time whatever the market did.
- Stop and target are measured from the reference close, for at most `trade_horizon` bars
  from the next bar on. A bar that opens through a level fills at the open (a gap can fill
  worse than the stop or better than the target). A bar whose range touches both levels
  counts as the stop first: the order inside a daily bar is unknown, so the conservative
  reading is taken. Neither level within the horizon: exit at that bar's close ("timeout").
- R multiple = the exit's profit / the initial risk |close - stop|. MAE (maximum adverse
  excursion) = the worst move against the position while it was open, in % and in R.
- The stated horizon: a signal that names its holding horizon (horizon_days, prompt
  signal_v2 and the rules analyst) is also judged at that many bars (`*_stated` columns),
  with the same direction rule and band.
- Nothing is guessed: a horizon with too few later bars leaves its fields empty and the
  signal "pending" until the bars exist.
- Each row carries the model's training period (core/training.py): a signal dated on or
  before the model's training cutoff may have been "predicted" from memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from trading_assets.core.training import training_period

if TYPE_CHECKING:  # pandas loads on first use, not when the definitions load
    import pandas as pd

HORIZONS = (1, 5, 20)
# The suffix of the columns judged at the signal's own horizon (fwd_return_stated, ...), so
# the scorecard reads them as it reads fwd_return_5.
STATED = "stated"
HOLD_BANDS = ("atr", "pct")
# outcome_status: scored (every horizon passed), pending (some not yet), no_bars (the bar
# date is in no stored history, e.g. a replay whose history was since deleted).
OUTCOME_COLUMNS = [
    "signal_id", "symbol", "bar_date", "mode", "variant", "provider", "model",
    "prompt_version", "status", "action", "confidence_level", "confidence_score",
    "simulated", "data_source", "series", "outcome_status", "bars_after", "entry",
    "stop_loss", "take_profit", "planned_r", "atr",
    *(f"fwd_return_{h}" for h in HORIZONS),
    *(f"hold_band_{h}" for h in HORIZONS),
    *(f"hit_{h}" for h in HORIZONS),
    "trade_outcome", "exit_date", "exit_price", "bars_held", "r_multiple", "mae_pct", "mae_r",
    "horizon_days", "timeframes_agree", f"fwd_return_{STATED}", f"hold_band_{STATED}",
    f"hit_{STATED}", "training_cutoff", "training_period", "cached",
]


@dataclass(frozen=True)
class OutcomeRules:
    """How outcomes are judged (Dagster config of signal_outcomes)."""

    hold_band: str = "atr"
    hold_band_atr: float = 0.5
    hold_band_pct: float = 2.0
    trade_horizon: int = 20

    def __post_init__(self) -> None:
        if self.hold_band not in HOLD_BANDS:
            raise ValueError(f"hold_band={self.hold_band!r}: use 'atr' or 'pct'.")
        if self.hold_band_atr <= 0 or self.hold_band_pct <= 0:
            raise ValueError("hold_band_atr and hold_band_pct must be positive.")
        if self.trade_horizon < 1:
            raise ValueError("trade_horizon must be at least 1 bar.")

    def band(self, entry: float, atr: float | None, bars: int) -> float:
        """The HOLD band at `bars` bars, as a fraction of the entry price."""
        if self.hold_band == "atr" and atr is not None and math.isfinite(atr) and atr > 0:
            return self.hold_band_atr * atr / entry * math.sqrt(bars)
        return self.hold_band_pct / 100.0


@dataclass(frozen=True)
class SignalFacts:
    """The parts of a stored signal that its outcome depends on."""

    signal_id: str
    symbol: str
    bar_date: date
    action: str | None
    mode: str = "live"
    variant: str = ""
    provider: str = "rules"
    model: str = ""
    prompt_version: str = ""
    status: str = ""
    confidence_level: str | None = None
    confidence_score: int | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    planned_r: float | None = None
    atr: float | None = None
    simulated: bool = False
    data_source: str = ""
    horizon_days: int | None = None  # the signal's stated holding horizon, in bars
    timeframes_agree: bool | None = None
    training_cutoff: date | None = None
    cached: bool = False  # the answer came from the recorded exchange store


@dataclass(frozen=True)
class TradeResult:
    """How a BUY/SELL with its stop and target would have played out."""

    outcome: str  # target | stop | timeout | pending | invalid_levels | no_trade
    exit_date: pd.Timestamp | None = None
    exit_price: float | None = None
    bars_held: int | None = None
    r_multiple: float | None = None
    mae_pct: float | None = None
    mae_r: float | None = None


def direction_hit(action: str, forward_return: float, band: float) -> bool:
    """BUY up, SELL down, HOLD inside +/-band; a zero move is a miss for BUY and SELL."""
    if action == "BUY":
        return forward_return > 0
    if action == "SELL":
        return forward_return < 0
    return abs(forward_return) <= band


def simulate_trade(action: str, entry: float, stop: float | None, target: float | None,
                   later: pd.DataFrame, horizon: int) -> TradeResult:
    """Walk the bars after the signal (`later`, oldest first) until stop, target or horizon."""
    import pandas as pd

    if action not in ("BUY", "SELL"):
        return TradeResult("no_trade")
    long = action == "BUY"
    if stop is None or target is None or not (
            (long and stop < entry < target) or (not long and target < entry < stop)):
        # Levels on the wrong side of the reference close (an entry far from the last price).
        return TradeResult("invalid_levels")
    risk = abs(entry - stop)
    sign = 1.0 if long else -1.0  # profit per unit of price move

    def beyond_stop(price: float) -> bool:
        return price <= stop if long else price >= stop  # type: ignore[operator]

    def reach_target(price: float) -> bool:
        return price >= target if long else price <= target  # type: ignore[operator]

    worst = 0.0  # largest adverse move so far, in price
    for held, bar in enumerate(later.head(horizon).itertuples(index=False), start=1):
        open_, high, low = float(bar.open), float(bar.high), float(bar.low)
        against = low if long else high  # the bar's extreme against the position
        if beyond_stop(open_):  # gapped through the stop: filled at the open
            exit_price, outcome, adverse = open_, "stop", sign * (entry - open_)
        elif reach_target(open_):  # gapped through the target: filled at the (better) open
            exit_price, outcome, adverse = open_, "target", 0.0
        elif beyond_stop(against):  # also when the target was touched: stop first
            exit_price, outcome, adverse = stop, "stop", risk
        elif reach_target(high if long else low):
            # The bar's adverse extreme may have come before the target.
            exit_price, outcome, adverse = target, "target", sign * (entry - against)
        elif held == horizon:
            exit_price, outcome, adverse = float(bar.close), "timeout", sign * (entry - against)
        else:
            worst = max(worst, sign * (entry - against))
            continue
        worst = max(worst, adverse)
        profit = sign * (exit_price - entry)
        return TradeResult(outcome, pd.Timestamp(bar.date), round(exit_price, 6), held,
                           round(profit / risk, 4), round(worst / entry, 6),
                           round(worst / risk, 4))
    return TradeResult("pending")


def _pick_series(bar_date: pd.Timestamp, frames: Sequence[tuple[str, pd.DataFrame]]
                 ) -> tuple[str, pd.DataFrame, int] | None:
    """The stored history holding the bar date with the most bars after it (ties: first)."""

    best: tuple[str, pd.DataFrame, int] | None = None
    for name, frame in frames:
        matches = (frame["date"] == bar_date).to_numpy().nonzero()[0]
        if len(matches) == 0:
            continue
        index = int(matches[0])
        if best is None or len(frame) - index > len(best[1]) - best[2]:
            best = (name, frame, index)
    return best


def score_signal(facts: SignalFacts, frames: Sequence[tuple[str, pd.DataFrame]],
                 rules: OutcomeRules) -> dict[str, object]:
    """One outcome row for a signal with an action (see the module docstring for the rules)."""
    import pandas as pd

    row: dict[str, object] = {column: None for column in OUTCOME_COLUMNS}
    row.update(
        signal_id=facts.signal_id, symbol=facts.symbol, bar_date=pd.Timestamp(facts.bar_date),
        mode=facts.mode, variant=facts.variant, provider=facts.provider, model=facts.model,
        prompt_version=facts.prompt_version, status=facts.status, action=facts.action,
        confidence_level=facts.confidence_level, confidence_score=facts.confidence_score,
        simulated=facts.simulated, data_source=facts.data_source, stop_loss=facts.stop_loss,
        take_profit=facts.take_profit, planned_r=facts.planned_r, atr=facts.atr,
        horizon_days=facts.horizon_days, timeframes_agree=facts.timeframes_agree,
        training_cutoff=facts.training_cutoff, cached=facts.cached,
        training_period=training_period(facts.provider, facts.training_cutoff, facts.bar_date),
    )
    picked = _pick_series(pd.Timestamp(facts.bar_date), frames)
    if picked is None:
        row.update(outcome_status="no_bars", bars_after=0, trade_outcome="pending")
        return row
    series, frame, index = picked
    closes = frame["close"].to_numpy(dtype=float)
    entry = float(closes[index])
    bars_after = len(frame) - 1 - index
    row.update(series=series, entry=entry, bars_after=bars_after)
    action = str(facts.action)
    horizons: list[tuple[int | str, int]] = [(h, h) for h in HORIZONS]
    if facts.horizon_days:
        horizons.append((STATED, int(facts.horizon_days)))
    for name, bars in horizons:
        band = rules.band(entry, facts.atr, bars)
        row[f"hold_band_{name}"] = round(band, 6)
        if bars_after >= bars:
            forward = float(closes[index + bars]) / entry - 1.0
            row[f"fwd_return_{name}"] = round(forward, 6)
            row[f"hit_{name}"] = direction_hit(action, forward, band)
    trade = simulate_trade(action, entry, facts.stop_loss, facts.take_profit,
                           frame.iloc[index + 1:], rules.trade_horizon)
    row.update(trade_outcome=trade.outcome, exit_date=trade.exit_date,
               exit_price=trade.exit_price, bars_held=trade.bars_held,
               r_multiple=trade.r_multiple, mae_pct=trade.mae_pct, mae_r=trade.mae_r)
    finished = bars_after >= max(bars for _, bars in horizons) and trade.outcome != "pending"
    row["outcome_status"] = "scored" if finished else "pending"
    return row


def score_signals(signals: Sequence[SignalFacts], frames: Sequence[tuple[str, pd.DataFrame]],
                  rules: OutcomeRules | None = None) -> pd.DataFrame:
    """Outcome rows for every signal with an action; analyst errors have nothing to score."""
    rules = rules or OutcomeRules()
    rows = [score_signal(s, frames, rules) for s in signals if s.action]
    return outcomes_frame(rows)


def outcomes_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    """Rows in OUTCOME_COLUMNS order with stable dtypes (parquet round-trips, empty too)."""
    import pandas as pd

    # Outcomes stored before a column existed read back with it empty.
    frame = pd.DataFrame(rows, columns=OUTCOME_COLUMNS)
    judged = (*HORIZONS, STATED)
    for column in (*(f"hit_{h}" for h in judged), "simulated", "timeframes_agree", "cached"):
        frame[column] = frame[column].astype("boolean")
    numeric = ["confidence_score", "bars_after", "entry", "stop_loss", "take_profit",
               "planned_r", "atr", "exit_price", "bars_held", "r_multiple", "mae_pct", "mae_r",
               "horizon_days", *(f"fwd_return_{h}" for h in judged),
               *(f"hold_band_{h}" for h in judged)]
    for column in numeric:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in ("bar_date", "exit_date", "training_cutoff"):
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    # training_period came later: rows without it leave the column float NaN, not object.
    text = [c for c in OUTCOME_COLUMNS if frame[c].dtype == object or c == "training_period"]
    frame[text] = frame[text].astype("string")
    return frame


def simulated_count(outcomes: pd.DataFrame) -> int:
    """How many outcome rows were scored on generated bars (a missing flag counts as market
    data): every simulated warning (assets, scorecard, app) reads it from here."""
    return int(outcomes["simulated"].fillna(False).astype(bool).sum())
