"""Order, position, account and book types shared by every broker (the checks that decide an
order are in core/pretrade.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from trading_assets.core.policy import TradingCosts, TradingPolicy
from trading_assets.core.signal import Action

DEFAULT_COSTS = TradingCosts()
DEFAULT_POLICY = TradingPolicy()


class OrderType(StrEnum):
    MARKET = "MKT"
    LIMIT = "LMT"
    BRACKET = "BRACKET"


@dataclass(frozen=True)
class OrderRequest:
    """What we ask a broker to do. `order_ref` is the signal id: the idempotency key. Prices
    are on the contract's tick grid (core/pretrade.py rounds and checks them)."""

    symbol: str
    action: Action
    quantity: int
    order_type: OrderType
    order_ref: str
    limit_price: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    entry_days: int = 1  # sessions an unfilled entry works: 1 = DAY, more = good till date
    bar_date: date | None = None  # the last bar when it was placed: its sessions count after


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
    exits: list[ExitReport] = field(default_factory=list)  # a bracket's children
    filled_on: date | None = None  # the session the entry filled in, where the broker says
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
class WorkingOrder:
    """An order the broker still works: an entry that may still add to a position, or a
    bracket's exit (take-profit, stop-loss) waiting to close one."""

    order_ref: str
    symbol: str
    action: str  # BUY | SELL
    remaining: float  # shares not filled yet
    price: float | None  # its limit or stop price; None for a market order
    exit: bool = False


@dataclass(frozen=True)
class Book:
    """Everything the pre-trade checks count: the account, filled positions and working orders
    (paper book or IBKR open orders, whoever placed them)."""

    account: AccountSnapshot
    positions: dict[str, Position]
    working: tuple[WorkingOrder, ...] = ()

    def held(self, symbol: str) -> float:
        position = self.positions.get(symbol)
        return position.quantity if position else 0.0

    def working_for(self, symbol: str) -> list[WorkingOrder]:
        return [w for w in self.working if w.symbol == symbol]


@dataclass(frozen=True)
class Market:
    """What the market says about a symbol when an order is decided."""

    symbol: str
    last_close: float
    bar_date: date
    quote: float | None = None  # the broker's live price, where it gives one
    tick: float = 0.01  # the contract's price increment (IBKR's minTick)


@dataclass(frozen=True)
class ExitReport:
    """A bracket child as the broker reports it: the take-profit or the stop-loss."""

    order_ref: str
    role: str  # take_profit | stop_loss
    order_type: str
    status: str
    price: float | None
    filled: float = 0.0
    avg_fill_price: float | None = None
    commission: float = 0.0
    filled_on: date | None = None
    reason: str = ""  # why it was cancelled (the other exit filled, its entry expired, ...)


@dataclass(frozen=True)
class OrderDecision:
    """Whether to place an order for a signal, and why (recorded either way).

    `retry` says whether the reason can change by itself (cash, exposure, working orders), so
    a person may usefully re-approve later; a refusal of the signal's own numbers cannot.
    """

    place: bool
    reason: str
    request: OrderRequest | None = None
    retry: bool = False
