"""Where orders go: one class per broker behind one small interface.

`Broker` is the interface the assets, sensors and the Gradio app use; `PaperBroker`
(resources/paper_broker.py, the default) and `IBKRBroker` implement it, and
trading_assets/settings.py picks one per environment by TRADING_BROKER. Policy (staleness,
sizing reserve, approval rules) is not here: it lives in trading_assets/core/policy.py.
"""

from typing import ClassVar

import dagster as dg

from resources.ibkr import IBKRResource
from trading_assets.core.orders import (
    AccountSnapshot,
    BrokerOrder,
    OrderRequest,
    Position,
    SymbolSettings,
)
from trading_assets.core.policy import TradingCosts

# TRADING_BROKER values (trading_assets/settings.py picks the class by these).
BROKER_KINDS = ("paper", "ibkr")


class Broker(dg.ConfigurableResource):
    """What every broker offers: find and place orders by orderRef, positions and account."""

    kind: ClassVar[str] = ""
    allow_short: bool = False
    order_type: str = "MKT"  # MKT | LMT | BRACKET
    # The fill costs sizing reserves (the paper broker charges exactly these).
    slippage_bps: float = 5.0
    commission_per_share: float = 0.005
    min_commission: float = 1.0

    @property
    def label(self) -> str:
        raise NotImplementedError

    def costs(self) -> TradingCosts:
        return TradingCosts(self.slippage_bps, self.commission_per_share, self.min_commission)

    def find_order(self, order_ref: str) -> BrokerOrder | None:
        """The broker's own record of an order with this reference, if it has one."""
        raise NotImplementedError

    def place_order(self, request: OrderRequest, market_price: float,
                    settings: SymbolSettings | None = None) -> BrokerOrder:
        """Place the order; a broker that already knows the orderRef returns that order."""
        raise NotImplementedError

    def mark_price(self, symbol: str, price: float) -> None:
        """Give the broker the latest price (only a simulated broker needs it)."""

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

    def find_order(self, order_ref: str) -> BrokerOrder | None:
        # Open orders, completed orders and executions, matched by orderRef.
        return self.ibkr.find_order(order_ref)

    def place_order(self, request: OrderRequest, market_price: float,
                    settings: SymbolSettings | None = None) -> BrokerOrder:
        # IBKR checks its own open/completed orders and executions for the orderRef first.
        return self.ibkr.place_order(request, settings)

    def positions(self) -> list[Position]:
        return self.ibkr.positions()

    def account(self) -> AccountSnapshot:
        return self.ibkr.account_snapshot()
