"""A signal's trade: what its filled order entered at, how it ended, its P&L and R multiple.

Pure: resources/ledger.py keeps the trades table from the broker's reports through these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from trading_assets.core.orders import BrokerOrder

# Why a trade ended, as the trades table says it.
EXIT_REASONS = {"take_profit": "target reached (take-profit filled)",
                "stop_loss": "stopped out (stop-loss filled)"}


@dataclass(frozen=True)
class TradeUpdate:
    """What the broker's report of one filled entry says about its trade."""

    order_ref: str
    signal_id: str
    symbol: str
    side: str
    quantity: float
    entry_price: float
    entry_on: date | None
    stop_loss: float | None
    take_profit: float | None
    commission: float
    exit_quantity: float = 0.0
    exit_price: float | None = None
    exit_on: date | None = None
    exit_reason: str = ""


def trade_from_order(order_ref: str, signal_id: str, order: BrokerOrder,
                     stop_loss: float | None, take_profit: float | None) -> TradeUpdate | None:
    """The trade an entry order made, with a bracket exit that filled; None while unfilled."""
    if order.filled <= 0 or not order.avg_fill_price:
        return None
    exit_fill = next((e for e in order.exits if e.filled > 0 and e.avg_fill_price), None)
    commission = order.commission + sum(e.commission for e in order.exits)
    return TradeUpdate(
        order_ref=order_ref, signal_id=signal_id, symbol=order.symbol, side=order.action,
        quantity=order.filled, entry_price=order.avg_fill_price, entry_on=order.filled_on,
        stop_loss=stop_loss, take_profit=take_profit, commission=commission,
        exit_quantity=exit_fill.filled if exit_fill else 0.0,
        exit_price=exit_fill.avg_fill_price if exit_fill else None,
        exit_on=exit_fill.filled_on if exit_fill else None,
        exit_reason=EXIT_REASONS.get(exit_fill.role, exit_fill.role) if exit_fill else "",
    )


def trade_result(side: str, entry: float, exit_price: float, quantity: float,
                 stop_loss: float | None, commission: float) -> tuple[float, float | None]:
    """(realized P&L after commission, R multiple) of `quantity` shares closed at exit_price.

    R is the move in units of the planned risk (entry to stop); None without a stop."""
    direction = 1.0 if side == "BUY" else -1.0
    pnl = (exit_price - entry) * quantity * direction - commission
    risk = abs(entry - stop_loss) if stop_loss else 0.0
    r = round((exit_price - entry) * direction / risk, 2) if risk > 0 else None
    return round(pnl, 2), r
