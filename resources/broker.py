"""Where orders go: one class per broker behind one small interface.

`Broker` is the interface the assets, sensors and the Gradio app use; `PaperBroker`
(resources/paper_broker.py, the default) and `IBKRBroker` implement it, and
trading_assets/settings.py picks one per environment by TRADING_BROKER. Policy (staleness,
sizing reserve, approval rules) is not here: it lives in trading_assets/core/policy.py.
"""

from collections.abc import Iterable
from datetime import date
from typing import ClassVar

import dagster as dg

from resources.ibkr import IBKRResource
from trading_assets.core.config import BrokerSettings
from trading_assets.core.fills import Bar
from trading_assets.core.orders import (
    AccountSnapshot,
    Book,
    BrokerOrder,
    Market,
    OrderRequest,
    Position,
    SymbolSettings,
    WorkingOrder,
)
from trading_assets.core.policy import TradingCosts

# TRADING_BROKER values (trading_assets/settings.py picks the class by these).
_DEFAULTS = BrokerSettings()  # written once, in core/config.py


class Broker(dg.ConfigurableResource):
    """What every broker offers: find and place orders by orderRef, positions and account."""

    kind: ClassVar[str] = ""
    allow_short: bool = _DEFAULTS.allow_short
    # BRACKET (entry + take-profit + stop-loss) | LMT | MKT
    order_type: str = _DEFAULTS.order_type.upper()
    # The fill costs sizing reserves (the paper broker charges exactly these).
    slippage_bps: float = _DEFAULTS.slippage_bps
    commission_per_share: float = _DEFAULTS.commission_per_share
    min_commission: float = 1.0

    @property
    def label(self) -> str:
        raise NotImplementedError

    def connection_metadata(self) -> dict[str, object]:
        """What the broker's connection agreed on (IBKR: API server version, gateway time),
        for the materialization's metadata; {} for a broker without one."""
        return {}

    def costs(self) -> TradingCosts:
        return TradingCosts(self.slippage_bps, self.commission_per_share, self.min_commission)

    def find_order(self, order_ref: str, bracket: bool = False) -> BrokerOrder | None:
        """The broker's own record of an order with this reference, if it has one (`bracket`:
        it was sent as one, so an entry that arrived without its exits must not stand)."""
        raise NotImplementedError

    def place_order(self, request: OrderRequest, market: Market,
                    settings: SymbolSettings | None = None) -> BrokerOrder:
        """Place the order; a broker that already knows the orderRef returns that order."""
        raise NotImplementedError

    def cancel_order(self, order_ref: str, reason: str = "cancelled") -> BrokerOrder | None:
        """Cancel the order with this orderRef (and a bracket's exits) where it still works;
        the broker's record of it afterwards, None when the broker has no such order."""
        raise NotImplementedError

    def working_orders(self) -> list[WorkingOrder]:
        """Every order of the account that can still fill (whoever placed it)."""
        raise NotImplementedError

    def market(self, symbol: str, last_close: float, bar_date: date,
               settings: SymbolSettings | None = None) -> Market:
        """The market an order for the symbol is checked against: the last stored close, plus
        the live quote and the contract's tick where the broker knows them."""
        return Market(symbol=symbol, last_close=last_close, bar_date=bar_date)

    def mark(self, symbol: str, bars: Iterable[Bar]) -> None:
        """Give the broker the stored bars (only a simulated broker works its book on them)."""

    def book(self) -> Book:
        """The account, its filled positions and its working orders, for the pre-trade checks."""
        return Book(account=self.account(), positions={p.symbol: p for p in self.positions()},
                    working=tuple(self.working_orders()))

    def positions(self) -> list[Position]:
        raise NotImplementedError

    def position(self, symbol: str) -> Position | None:
        return next((p for p in self.positions() if p.symbol == symbol), None)

    def account(self) -> AccountSnapshot:
        raise NotImplementedError

    def orders(self, symbol: str | None = None) -> list[BrokerOrder]:
        """The broker's order book where we keep one (the ledger lives in the app database)."""
        return []


class IBKRBroker(Broker):
    """Orders at IBKR through the shared gateway connection (TRADING_BROKER=ibkr)."""

    kind: ClassVar[str] = "ibkr"
    ibkr: dg.ResourceDependency[IBKRResource]

    @property
    def label(self) -> str:
        return f"IBKR {self.ibkr.port}"

    def connection_metadata(self) -> dict[str, object]:
        return self.ibkr.handshake_metadata()

    def find_order(self, order_ref: str, bracket: bool = False) -> BrokerOrder | None:
        # Open orders, completed orders and executions, matched by orderRef.
        return self.ibkr.find_order(order_ref, bracket)

    def place_order(self, request: OrderRequest, market: Market,
                    settings: SymbolSettings | None = None) -> BrokerOrder:
        # IBKR checks its own open/completed orders and executions for the orderRef first.
        return self.ibkr.place_order(request, settings)

    def cancel_order(self, order_ref: str, reason: str = "cancelled") -> BrokerOrder | None:
        return self.ibkr.cancel_order(order_ref)

    def working_orders(self) -> list[WorkingOrder]:
        return self.ibkr.working_orders()

    def market(self, symbol: str, last_close: float, bar_date: date,
               settings: SymbolSettings | None = None) -> Market:
        # The contract's tick (IBKR rejects prices off it) and a snapshot quote when the
        # account has market data for it; without one the stored close is the reference.
        tick, quote = self.ibkr.tick_and_quote(symbol, settings)
        return Market(symbol=symbol, last_close=last_close, bar_date=bar_date, quote=quote,
                      tick=tick)

    def positions(self) -> list[Position]:
        return self.ibkr.positions()

    def account(self) -> AccountSnapshot:
        return self.ibkr.account_snapshot()
