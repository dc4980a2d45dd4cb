"""Order, position and account types shared by every broker, and the pre-trade risk checks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from trading_assets.core.policy import TradingCosts, TradingPolicy
from trading_assets.core.signal import EXECUTABLE_STATUSES, Action, SignalStatus, TradingSignal

DEFAULT_COSTS = TradingCosts()
DEFAULT_POLICY = TradingPolicy()


class OrderType(StrEnum):
    MARKET = "MKT"
    LIMIT = "LMT"
    BRACKET = "BRACKET"


@dataclass(frozen=True)
class OrderRequest:
    """What we ask a broker to do. `order_ref` is the signal id: the idempotency key."""

    symbol: str
    action: Action
    quantity: int
    order_type: OrderType
    order_ref: str
    limit_price: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None


@dataclass
class BrokerOrder:
    """What a broker reports about an order it knows."""

    order_ref: str
    symbol: str
    action: str
    quantity: float
    order_type: str
    status: str
    broker_order_id: str = ""
    filled: float = 0.0
    avg_fill_price: float | None = None
    commission: float = 0.0
    limit_price: float | None = None
    broker: str = "paper"
    reason: str = ""  # the broker's words when it rejects or cancels
    raw: dict[str, object] = field(default_factory=dict)


@dataclass
class Position:
    symbol: str
    quantity: float
    avg_cost: float
    market_price: float | None = None
    market_value: float | None = None
    unrealized_pnl: float | None = None
    realized_pnl: float = 0.0


@dataclass
class AccountSnapshot:
    account: str
    cash: float
    equity: float
    buying_power: float
    currency: str = "USD"
    realized_pnl: float = 0.0
    unrealized_pnl: float = 0.0
    broker: str = "paper"


@dataclass(frozen=True)
class SymbolSettings:
    """Per-symbol policy; defaults apply to a symbol nobody configured."""

    symbol: str
    enabled: bool = True
    priority: int = 0
    position_size_pct: float = 5.0
    risk_level: str = "medium"
    max_exposure_pct: float = 20.0
    auto_approve: bool = False
    min_confidence: int = 60
    exchange: str = "SMART"
    primary_exchange: str = ""
    currency: str = "USD"


@dataclass(frozen=True)
class OrderDecision:
    """Whether to place an order for a signal, and why (recorded either way)."""

    place: bool
    reason: str
    request: OrderRequest | None = None


def decide_order(
    *,
    signal_id: str,
    signal: TradingSignal,
    status: SignalStatus,
    settings: SymbolSettings,
    account: AccountSnapshot,
    position: Position | None,
    price: float,
    allow_short: bool = False,
    order_type: OrderType = OrderType.MARKET,
    costs: TradingCosts = DEFAULT_COSTS,
    policy: TradingPolicy = DEFAULT_POLICY,
) -> OrderDecision:
    """Apply review state, actionability and risk limits; return an order or the reason for none.

    min_confidence is not checked here: it gates auto-approval only (core/policy.py), and a
    person's approval stands unless a hard limit refuses it. A BUY reserves slippage,
    commission and the cash buffer, so an order sized to the cash still fills.
    """
    if status not in EXECUTABLE_STATUSES:
        return OrderDecision(False, f"signal is {status.value}, not approved")
    if not signal.is_actionable:
        return OrderDecision(
            False, f"signal is not actionable ({signal.action.value}, {signal.confidence_level})"
        )
    if not settings.enabled:
        return OrderDecision(False, f"{settings.symbol} is disabled")
    if not (price > 0 and math.isfinite(price)):
        return OrderDecision(False, f"no valid price for {signal.symbol}")
    held = position.quantity if position else 0.0
    equity = max(account.equity, 0.0)
    size_pct = min(signal.position_size_pct or settings.position_size_pct,
                   settings.position_size_pct)
    target_value = equity * size_pct / 100.0
    if signal.action is Action.BUY:
        max_value = equity * settings.max_exposure_pct / 100.0
        room = max_value - held * price
        quantity = min(int(min(target_value, room) // price),
                       policy.affordable_shares(account.cash, price, costs))
        if room <= price:
            return OrderDecision(
                False, f"exposure limit reached: holding {held:g} shares, max "
                f"{settings.max_exposure_pct:g}% of equity"
            )
        if quantity < 1:
            return OrderDecision(False, f"not enough cash for one share at {price:.2f} with "
                                 f"slippage, commission and the {policy.cash_buffer_pct:g}% "
                                 f"cash buffer reserved (cash {account.cash:.2f})")
    else:
        quantity = int(target_value // price)
        if not allow_short:
            quantity = min(quantity, int(held))
            if quantity < 1:
                return OrderDecision(False, "SELL with no position to sell and shorting disabled")
        if quantity < 1:
            return OrderDecision(False, f"position size too small for one share at {price:.2f}")
    is_bracket = order_type is OrderType.BRACKET
    # Limit and bracket orders enter at the signal's entry price (the close when it has none).
    limit = None if order_type is OrderType.MARKET else round(signal.entry_price or price, 2)
    return OrderDecision(
        True,
        f"{signal.action.value} {quantity} {signal.symbol} ({size_pct:g}% of equity)",
        OrderRequest(
            symbol=signal.symbol,
            action=signal.action,
            quantity=quantity,
            order_type=order_type,
            order_ref=signal_id,
            limit_price=limit,
            stop_loss=signal.stop_loss if is_bracket else None,
            take_profit=signal.take_profit if is_bracket else None,
        ),
    )
