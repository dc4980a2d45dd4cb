"""Trading policy in one place: who approves, when an approval is stale, what sizing reserves.

The `orders` asset, the approved_signals sensor and the Gradio app all read this module; the
numbers come from the environment once (TradingPolicy.from_env, called by
trading_assets/settings.py).

The approval rule: `min_confidence` gates auto-approval only. A person's approval is final
unless a hard limit refuses it at order time (symbol disabled, exposure, cash, no shares to
sell, a HOLD or LOW-confidence call, a stale approval); a refusal is stored on the signal as
`not_placed` with the reason, and the person may re-approve or reject it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from trading_assets.core.config import BrokerSettings, PolicySettings
from trading_assets.core.signal import Action, SignalStatus, TradingSignal

_BROKER = BrokerSettings()  # the cost defaults, written once in core/config.py


@dataclass(frozen=True)
class TradingCosts:
    """What a fill costs beyond the price: the broker's slippage and commission estimates."""

    slippage_bps: float = _BROKER.slippage_bps
    commission_per_share: float = _BROKER.commission_per_share
    min_commission: float = 1.0

    def commission(self, quantity: float) -> float:
        return max(self.min_commission, self.commission_per_share * quantity)

    def fill_price(self, price: float, buying: bool) -> float:
        """The price plus slippage against us."""
        return price * (1 + self.slippage_bps / 10_000 * (1 if buying else -1))


class TradingPolicy(PolicySettings):
    """The approval, sizing and pre-trade limits; their variables, defaults and ranges are
    PolicySettings' (core/config.py)."""

    def stale_reason(self, *, bar_date: date, as_of: date, reference_close: float | None,
                     latest_close: float | None) -> str:
        """Why an approval should no longer be executed ('' when it still may be).

        An approval is a judgement on the prices the reviewer saw. Its age counts sessions from
        the signal's bar to `as_of`, the newest bar stored for the symbol: the sensor and the
        orders asset read the same stored bars, so they always agree.
        """
        from trading_assets.core.calendar import sessions_after

        age = sessions_after(bar_date, as_of)
        if age > self.approval_max_age_days:
            return (f"signal of bar {bar_date} is {age} trading days old (limit "
                    f"{self.approval_max_age_days}, TRADING_APPROVAL_MAX_AGE_DAYS)")
        if reference_close and latest_close:
            move = abs(latest_close / reference_close - 1) * 100
            if move > self.approval_max_move_pct:
                return (f"price moved {move:.1f}% since the signal ({reference_close:.2f} -> "
                        f"{latest_close:.2f}; limit {self.approval_max_move_pct:g}%, "
                        "TRADING_APPROVAL_MAX_MOVE_PCT)")
        return ""

    def affordable_shares(self, cash: float, price: float, costs: TradingCosts) -> int:
        """Most whole shares a BUY can pay for: slippage, commission and the buffer reserved."""
        budget = max(cash, 0.0) * (1 - self.cash_buffer_pct / 100)
        fill = costs.fill_price(price, buying=True)
        if not (fill > 0 and math.isfinite(fill)):
            return 0
        shares = int(budget // (fill + costs.commission_per_share))
        while shares > 0 and shares * fill + costs.commission(shares) > budget:
            shares -= 1
        return shares


def entry_status(signal: TradingSignal, *, enabled: bool, auto_approve: bool,
                 min_confidence: int, held: float, allow_short: bool) -> tuple[SignalStatus, str]:
    """The status a new signal is stored in, and why when that is worth saying.

    Only a signal a person could act on waits for one: a HOLD, a LOW-confidence call or a SELL
    with nothing to sell (shorting off) is `no_action`. The symbol's policy auto-approves an
    actionable signal at or above min_confidence (the only use of it) that explains itself.
    """
    if signal.action is Action.HOLD:
        return SignalStatus.NO_ACTION, "HOLD: no order to decide"
    if not signal.is_actionable:
        return SignalStatus.NO_ACTION, (f"{signal.action.value} with LOW confidence "
                                        f"({signal.confidence_score}/100): not actionable")
    if signal.action is Action.SELL and held <= 0 and not allow_short:
        return SignalStatus.NO_ACTION, ("SELL with no position to sell and shorting disabled "
                                        "(TRADING_ALLOW_SHORT)")
    if not (enabled and auto_approve and signal.confidence_score >= min_confidence):
        return SignalStatus.PENDING_REVIEW, ""
    unexplained = signal.unexplained()
    if unexplained:
        return SignalStatus.PENDING_REVIEW, (f"not auto-approved: {unexplained}; a person "
                                             "decides")
    return SignalStatus.AUTO_APPROVED, ""
