"""The TradingSignal schema shared by the rules analyst and every language-model provider."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

# A level above the dearest share any source may deliver is no price (core/bars.py); the
# pre-trade checks (core/pretrade.py) compare the rest with the market.
from trading_assets.core.bars import MAX_PRICE


class Action(StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    HOLD = "HOLD"


class ConfidenceLevel(StrEnum):
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"


class Trend(StrEnum):
    UP = "UP"
    DOWN = "DOWN"
    SIDEWAYS = "SIDEWAYS"


def level_for_score(score: int) -> ConfidenceLevel:
    """HIGH >= 80, MEDIUM 50-79, LOW < 50."""
    if score >= 80:
        return ConfidenceLevel.HIGH
    if score >= 50:
        return ConfidenceLevel.MEDIUM
    return ConfidenceLevel.LOW


class SignalStatus(StrEnum):
    """Lifecycle of a stored signal; an analyst failure is `error`, never a HOLD."""

    PENDING_REVIEW = "pending_review"
    AUTO_APPROVED = "auto_approved"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXECUTED = "executed"
    NO_ACTION = "no_action"  # HOLD, LOW confidence or nothing to sell: nothing to review
    WORKING = "working"  # the entry order is at the broker and not (fully) filled yet
    NOT_PLACED = "not_placed"  # approved, but refused by a risk limit or found absent after a crash
    ORDER_FAILED = "order_failed"  # the broker rejected, cancelled or expired the order
    EXPIRED = "expired"
    ERROR = "error"
    REPLAY = "replay"


EXECUTABLE_STATUSES = frozenset({SignalStatus.APPROVED, SignalStatus.AUTO_APPROVED})


def _price_field(description: str) -> Any:
    """A price level: positive, finite and below MAX_PRICE, or absent. JSON's Infinity and NaN
    are refused here, so instructor re-asks instead of a level that cannot be stored."""
    return Field(default=None, gt=0, lt=MAX_PRICE, allow_inf_nan=False, description=description)


class TradingSignal(BaseModel):
    """One analyst's structured view of one symbol at one bar date.

    The validators are the contract a language model must meet; instructor re-asks with
    their messages when an answer breaks them.
    """

    symbol: str = Field(description="Ticker the signal is about.")
    action: Action = Field(description="BUY, SELL or HOLD.")
    confidence_level: ConfidenceLevel = Field(description="HIGH (score>=80), MEDIUM (50-79), LOW.")
    confidence_score: int = Field(ge=0, le=100, description="0-100, must agree with the level.")
    reasoning: str = Field(min_length=1, description="Why, in a few sentences.")
    key_factors: list[str] = Field(default_factory=list, description="Short bullet points.")
    trend: Trend = Field(description="Prevailing trend: UP, DOWN or SIDEWAYS.")
    support: float | None = _price_field("Nearest support price.")
    resistance: float | None = _price_field("Nearest resistance price.")
    entry_price: float | None = _price_field("Suggested entry.")
    stop_loss: float | None = _price_field("Suggested stop-loss.")
    take_profit: float | None = _price_field("Suggested take-profit.")
    r_multiple: float | None = Field(default=None, ge=0, allow_inf_nan=False,
                                     description="Reward/risk of the levels.")
    position_size_pct: float = Field(default=0.0, ge=0, le=100, description="% of equity.")
    timeframe: str = Field(default="daily+weekly", description="Timeframes analysed.")
    provider: str = Field(default="rules", description="Who produced it: rules, openai, ...")
    model: str = Field(default="rules-v1", description="Model or rules version.")
    prompt_version: str = Field(default="", description="Prompt name@hash or rules version.")
    bar_date: date | None = Field(default=None, description="Date of the last bar analysed.")
    generated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    # Both came with prompt signal_v2; signals stored before them read back as None (unknown).
    horizon_days: int | None = Field(
        default=None, ge=1, le=260,
        description="Holding horizon in trading days: how long the call is meant to hold "
                    "(1 = the next session, 5 = about a week, 20 = about a month).")
    timeframes_agree: bool | None = Field(
        default=None, description="Whether the daily and the weekly picture point the same "
                                  "way (true) or disagree (false).")

    @field_validator("symbol")
    @classmethod
    def _upper_symbol(cls, value: str) -> str:
        return value.strip().upper()

    @model_validator(mode="after")
    def _consistent(self) -> TradingSignal:
        expected = level_for_score(self.confidence_score)
        if expected != self.confidence_level:
            raise ValueError(
                f"confidence_score {self.confidence_score} means {expected.value}, "
                f"but confidence_level is {self.confidence_level.value}"
            )
        entry, stop, target = self.entry_price, self.stop_loss, self.take_profit
        if self.action is Action.BUY and None not in (entry, stop, target):
            if not (stop < entry < target):  # type: ignore[operator]
                raise ValueError("for BUY the stop_loss must be below entry_price and "
                                 "take_profit above it")
        if self.action is Action.SELL and None not in (entry, stop, target):
            if not (target < entry < stop):  # type: ignore[operator]
                raise ValueError("for SELL the stop_loss must be above entry_price and "
                                 "take_profit below it")
        if self.action is not Action.HOLD and None in (entry, stop, target):
            raise ValueError("BUY and SELL need entry_price, stop_loss and take_profit")
        if self.r_multiple is None and None not in (entry, stop, target):
            risk = abs(entry - stop)  # type: ignore[operator]
            if risk > 0:
                self.r_multiple = round(abs(target - entry) / risk, 2)  # type: ignore[operator]
        return self

    @property
    def is_actionable(self) -> bool:
        """Not HOLD and at least MEDIUM confidence."""
        return self.action is not Action.HOLD and self.confidence_level is not ConfidenceLevel.LOW

    def unexplained(self) -> str:
        """Why the signal does not explain itself well enough to skip a person ('' when it
        does): auto-approval needs reasoning with words in it and at least one key factor."""
        missing = [what for what, absent in (
            ("the reasoning is blank", not self.reasoning.strip()),
            ("no key factor is given", not any(f.strip() for f in self.key_factors)))
            if absent]
        return "; ".join(missing)


class AnalysisRequest(BaseModel):
    """Everything an analyst may look at for one symbol at one bar date (and nothing later)."""

    model_config = {"arbitrary_types_allowed": True}

    symbol: str
    bar_date: date
    data_source: str
    simulated: bool
    daily_summary: dict[str, float | None]
    weekly_summary: dict[str, float | None]
    last_bars: list[dict[str, object]] = Field(description="Last 50 daily bars, oldest first.")
    position: dict[str, float] = Field(default_factory=dict)
    daily_chart_png: bytes | None = None
    weekly_chart_png: bytes | None = None


class AnalysisOutcome(BaseModel):
    """An analyst's answer: a valid signal, or an error text (never a made-up HOLD)."""

    symbol: str
    signal: TradingSignal | None = None
    error: str | None = None
    provider: str
    model: str
    prompt_version: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    transcript: dict[str, object] | None = None
    # From the recorded exchange store (LLM_CACHE): cost_usd is what this call paid (0 for a
    # recorded answer), original_cost_usd what the answer cost when it was first recorded.
    cached: bool = False
    original_cost_usd: float = 0.0
    request_key: str = ""  # the request digest (core/exchanges.py); "" without a model call
    training_cutoff: date | None = None  # the model's training cutoff (core/training.py)

    @property
    def ok(self) -> bool:
        return self.signal is not None and self.error is None
