"""The account at IBKR: stock positions with their P&L, cash, equity and buying power."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from resources.ibkr.errors import IBKRError
from resources.ibkr.session import IBKRSession, _Connection, _platform_symbol
from resources.ibkr.values import ib_number
from trading_assets.core.orders import AccountSnapshot, Position

if TYPE_CHECKING:
    from ib_async import PortfolioItem
    from ib_async import Position as IBPosition

log = logging.getLogger(__name__)


def _avg_cost(position: IBPosition, item: PortfolioItem | None, account: str) -> float:
    """The position's average cost, else the portfolio's. The risk checks value a position
    by it when IBKR sends no market value, so an unknown cost is an error, never 0."""
    for value in (position.avgCost, item.averageCost if item else None):
        cost = ib_number(value)
        if cost is not None:
            return cost
    raise IBKRError(
        f"IBKR sent no average cost for the {_platform_symbol(position.contract.symbol)} "
        f"position of account {account}. The gateway may still be loading the portfolio; "
        "retry in a minute."
    )


class AccountRequests(IBKRSession):
    """Positions and the account snapshot (a mixin of IBKRResource)."""

    def positions(self) -> list[Position]:
        """Stock positions of the account, with market price and P&L from the portfolio."""
        conn, account = self._account_updates()
        held = self._call(conn, "the positions request", lambda ib: ib.reqPositions())
        portfolio = {item.contract.conId: item for item in conn.ib.portfolio(account)}
        result = []
        for position in held:
            quantity = ib_number(position.position)
            if position.account != account or not quantity:
                continue
            if position.contract.secType != "STK":  # the platform trades stocks only
                continue
            item = portfolio.get(position.contract.conId)
            result.append(
                Position(
                    symbol=_platform_symbol(position.contract.symbol),
                    quantity=quantity,
                    avg_cost=_avg_cost(position, item, account),
                    market_price=ib_number(item.marketPrice) if item else None,
                    market_value=ib_number(item.marketValue) if item else None,
                    unrealized_pnl=ib_number(item.unrealizedPNL) if item else None,
                    realized_pnl=(ib_number(item.realizedPNL) or 0.0) if item else 0.0,
                )
            )
        return result

    def account_snapshot(self) -> AccountSnapshot:
        """Net liquidation, cash, buying power and P&L of the account, in its base currency."""
        conn, account = self._account_updates()
        values: dict[tuple[str, str], float] = {}
        for value in conn.ib.accountValues(account):
            try:
                number = ib_number(value.value)
            except ValueError:  # text tags such as AccountType
                continue
            if number is not None:
                values[(value.tag, value.currency)] = number
        log.debug("IBKR account update: %d numeric values", len(values))
        base = next((cur for tag, cur in values if tag == "NetLiquidation" and cur != "BASE"),
                    "USD")

        def pick(tag: str) -> float | None:
            # Ledger tags arrive per currency and as a BASE total; account tags in base only.
            for currency in ("BASE", base):
                if (tag, currency) in values:
                    return values[(tag, currency)]
            return None

        equity, cash = pick("NetLiquidation"), pick("TotalCashValue")
        if equity is None or cash is None:
            raise IBKRError(
                f"IBKR sent no NetLiquidation/TotalCashValue for account {account}. Check that "
                "the gateway is logged in and the account is funded, then retry."
            )
        items = conn.ib.portfolio(account)
        realized = pick("RealizedPnL")
        unrealized = pick("UnrealizedPnL")
        return AccountSnapshot(
            account=account,
            cash=cash,
            equity=equity,
            buying_power=pick("BuyingPower") or 0.0,
            currency=base,
            realized_pnl=realized if realized is not None
            else sum(ib_number(i.realizedPNL) or 0.0 for i in items),
            unrealized_pnl=unrealized if unrealized is not None
            else sum(ib_number(i.unrealizedPNL) or 0.0 for i in items),
            broker="ibkr",
        )

    def _account_updates(self) -> tuple[_Connection, str]:
        """The connection and its account, with the account's values and portfolio updated."""
        conn = self._connection()
        account = self._require_account(conn)
        self._call(conn, "the account update request", lambda ib: ib.reqAccountUpdates(account))
        return conn, account
