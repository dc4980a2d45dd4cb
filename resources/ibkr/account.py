"""The account at IBKR: stock positions with their P&L, cash, equity and buying power."""

from __future__ import annotations

import logging

from resources.ibkr.errors import IBKRError
from resources.ibkr.session import IBKRSession, _Connection, _platform_symbol, _price
from trading_assets.core.orders import AccountSnapshot, Position

log = logging.getLogger(__name__)


class AccountRequests(IBKRSession):
    """Positions and the account snapshot (a mixin of IBKRResource)."""

    def positions(self) -> list[Position]:
        """Stock positions of the account, with market price and P&L from the portfolio."""
        conn, account = self._account_updates()
        held = self._call(conn, "the positions request", lambda ib: ib.reqPositions())
        portfolio = {item.contract.conId: item for item in conn.ib.portfolio(account)}
        result = []
        for position in held:
            if position.account != account or not position.position:
                continue
            if position.contract.secType != "STK":  # the platform trades stocks only
                continue
            item = portfolio.get(position.contract.conId)
            result.append(
                Position(
                    symbol=_platform_symbol(position.contract.symbol),
                    quantity=float(position.position),
                    avg_cost=float(position.avgCost),
                    market_price=_price(item.marketPrice) if item else None,
                    market_value=_price(item.marketValue) if item else None,
                    unrealized_pnl=_price(item.unrealizedPNL) if item else None,
                    realized_pnl=(_price(item.realizedPNL) or 0.0) if item else 0.0,
                )
            )
        return result

    def account_snapshot(self) -> AccountSnapshot:
        """Net liquidation, cash, buying power and P&L of the account, in its base currency."""
        conn, account = self._account_updates()
        values: dict[tuple[str, str], float] = {}
        for value in conn.ib.accountValues(account):
            try:
                values[(value.tag, value.currency)] = float(value.value)
            except ValueError:  # text tags such as AccountType
                continue
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
            else sum(_price(i.realizedPNL) or 0.0 for i in items),
            unrealized_pnl=unrealized if unrealized is not None
            else sum(_price(i.unrealizedPNL) or 0.0 for i in items),
            broker="ibkr",
        )

    def _account_updates(self) -> tuple[_Connection, str]:
        """The connection and its account, with the account's values and portfolio updated."""
        conn = self._connection()
        account = self._require_account(conn)
        self._call(conn, "the account update request", lambda ib: ib.reqAccountUpdates(account))
        return conn, account
