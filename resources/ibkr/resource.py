"""IBKRResource: the Dagster resource, its config fields and the rooms its methods live in."""

from __future__ import annotations

import dagster as dg

from resources.ibkr.account import AccountRequests
from resources.ibkr.market_data import MarketDataRequests
from resources.ibkr.orders import OrderRequests
from trading_assets.core.config import BrokerSettings, IBKRSettings, resource_field


class IBKRResource(MarketDataRequests, OrderRequests, AccountRequests, dg.ConfigurableResource):
    """Interactive Brokers via IB Gateway/TWS: daily bars, contracts, orders, positions, account.

    Paper accounts by default: orders against a live account need `live=True` and `account`
    set to that account. Every failure raises an IBKRError subclass with an actionable message.
    """

    host: str = resource_field(IBKRSettings, "host")
    port: int = resource_field(IBKRSettings, "port")
    client_id: int = resource_field(IBKRSettings, "client_id")
    account: str = resource_field(IBKRSettings, "account")
    readonly: bool = resource_field(IBKRSettings, "readonly")
    live: bool = resource_field(BrokerSettings, "live")
    connect_timeout: float = resource_field(IBKRSettings, "connect_timeout")
    request_timeout: float = resource_field(IBKRSettings, "request_timeout")
    allow_delayed_data: bool = resource_field(IBKRSettings, "allow_delayed_data")
    order_timeout: float = resource_field(IBKRSettings, "order_timeout")
