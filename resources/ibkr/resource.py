"""IBKRResource: the Dagster resource, its config fields and the rooms its methods live in."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from resources.ibkr.account import AccountRequests
from resources.ibkr.market_data import MarketDataRequests
from resources.ibkr.orders import OrderRequests


class IBKRResource(MarketDataRequests, OrderRequests, AccountRequests, dg.ConfigurableResource):
    """Interactive Brokers via IB Gateway/TWS: daily bars, contracts, orders, positions, account.

    Paper accounts by default: orders against a live account need `live=True` and `account`
    set to that account. Every failure raises an IBKRError subclass with an actionable message.
    """

    host: str = Field(default="127.0.0.1", description="IB Gateway/TWS host (IBKR_HOST).")
    port: int = Field(
        default=4002,
        description="API port (IBKR_PORT): IB Gateway 4002 paper / 4001 live, TWS 7497 / 7496.",
    )
    client_id: int = Field(default=17, description="API client id; the next few are tried too.")
    account: str = Field(default="", description="Account to trade and report (IBKR_ACCOUNT).")
    readonly: bool = Field(default=False, description="Refuse every order (IBKR_READONLY).")
    live: bool = Field(default=False, description="Allow orders on a live account (TRADING_LIVE).")
    connect_timeout: float = Field(default=10.0, description="Seconds to connect and sync.")
    request_timeout: float = Field(default=30.0, description="Seconds to wait for one request.")
    allow_delayed_data: bool = Field(
        default=False, description="Use delayed data when there is no subscription (error 354)."
    )
    order_timeout: float = Field(
        default=15.0, description="Seconds to wait for the gateway to acknowledge an order."
    )
